"""Training data: built-in sets, image folders and arrays, all loaded into one in-memory :class:`Dataset`.

Nothing outside this package knows a file format. Images are scaled to [-1, 1]; vectors are standardised
and the scale is kept so samples can be returned in data units.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.config import DataConfig
from gankit.errors import UserError


@dataclass
class Dataset:
    x: Tensor  # (N, C, H, W) in [-1, 1] for images, (N, D) standardised for vectors
    y: Tensor | None = None  # (N,) int64 class indices, or None
    classes: list[str] = field(default_factory=list)
    kind: str = "image"  # image | vector
    name: str = ""
    mean: list[float] | None = None  # vectors: x_data = x * std + mean
    std: list[float] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return self.x.shape[0]

    def meta(self) -> dict[str, Any]:
        """What a run must remember about its data to sample in data units and name classes."""
        return {"kind": self.kind, "shape": list(self.shape), "classes": self.classes, "name": self.name,
                "mean": self.mean, "std": self.std}


def to_data_units(x: Tensor, meta: dict[str, Any]) -> Tensor:
    """Undo the standardisation of vector data (images stay in [-1, 1])."""
    if meta.get("kind") == "vector" and meta.get("mean") is not None:
        return x * torch.tensor(meta["std"], dtype=x.dtype) + torch.tensor(meta["mean"], dtype=x.dtype)
    return x


def standardise(x: Tensor, **kw: Any) -> Dataset:
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-8)
    return Dataset(x=(x - mean) / std, kind="vector", mean=mean.tolist(), std=std.tolist(), **kw)


def load_data(cfg: DataConfig) -> Dataset:
    """Load ``cfg.source``: a built-in name, an image folder, or a ``.npy`` / ``.npz`` file."""
    from gankit.data import arrays, builtin, images

    source = cfg.source
    if source in builtin.BUILTINS:
        ds = builtin.BUILTINS[source](cfg)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            hint = f"; built-in data sets are {', '.join(builtin.BUILTINS)}" if "/" not in source else ""
            raise UserError(f"data not found: {source}{hint}")
        if path.is_dir():
            ds = images.load_folder(path, cfg)
        elif path.suffix.lower() in (".npy", ".npz"):
            ds = arrays.load_array(path, cfg)
        else:
            raise UserError(f"{path}: expected an image folder, a .npy or a .npz file")
    if cfg.conditional:
        if ds.y is None:
            raise UserError(f"data.conditional is set but {source} has no labels (use class sub-folders or an "
                            "npz array 'labels')")
        if ds.num_classes < 2:
            raise UserError(f"a conditional model needs at least two classes; {source} has {ds.num_classes}")
    return ds


DEVICE_SHARE = 0.5  # at most this share of the accelerator's free memory goes to the training data


def fits_on_device(ds: Dataset, device: torch.device) -> bool:
    """Whether the whole data set may live on ``device`` (always on a CPU: host memory is where it is)."""
    if device.type != "cuda":
        return True
    nbytes = ds.x.numel() * ds.x.element_size()
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free


class Batches:
    """Endless shuffled mini-batches, reshuffled every epoch, drawn from a dataset held on the device
    (or, when it does not fit there, in host memory with pinned, asynchronous copies: ``placement``).

    Its own random generator makes the order reproducible and resumable (see ``state_dict``).

    Distributed training: every rank draws the same global batch of ``batch_size * world`` samples and
    keeps slice ``rank``, so the position counts global samples and a run resumes on any world size.
    With ``z_dim``, each batch also carries noise ``"z"``, drawn globally and sliced the same way, so
    that N processes train exactly as one process with the whole batch would.
    """

    def __init__(self, ds: Dataset, batch_size: int, device: torch.device, seed: int, *, rank: int = 0,
                 world: int = 1, z_dim: int = 0, placement: str = "auto"):
        if len(ds) < batch_size * world:
            raise UserError(f"the data set has {len(ds)} samples, fewer than data.batch_size={batch_size}"
                            + (f" x {world} processes" if world > 1 else ""))
        self.device = torch.device(device)
        self.on_device = placement == "device" or (placement == "auto" and fits_on_device(ds, self.device))
        if self.on_device:
            self.x = ds.x.to(self.device)
            self.y = ds.y.to(self.device) if ds.y is not None else None
        else:
            # Too big for the accelerator: the data stay in host memory and each batch is gathered into a
            # page-locked staging buffer, from which the copy to the device runs asynchronously. Two buffers
            # take turns; a buffer is reused only once the copy that last read it has finished.
            pin = self.device.type == "cuda"
            self.x, self.y = ds.x, ds.y
            shape = (batch_size, *ds.x.shape[1:])
            self.staging = [torch.empty(shape, dtype=ds.x.dtype, pin_memory=pin) for _ in range(2)]
            self.copied: list[Any] = [None, None]  # CUDA events marking each buffer's last copy
            self.turn = 0
        self.batch_size, self.rank, self.world, self.z_dim = batch_size, rank, world, z_dim
        self.gen = torch.Generator().manual_seed(seed)
        self.z_gen = torch.Generator().manual_seed(seed + 1) if z_dim else None
        self.order = torch.randperm(len(ds), generator=self.gen)
        self.pos = 0

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return self

    def __next__(self) -> dict[str, Tensor]:
        n = self.batch_size * self.world  # the global batch
        if self.pos + n > len(self.order):
            self.order = torch.randperm(len(self.order), generator=self.gen)
            self.pos = 0
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        idx = self.order[self.pos : self.pos + n][mine].to(self.x.device)
        self.pos += n
        batch = {"x": self.x[idx] if self.on_device else self._from_host(idx)}
        if self.y is not None:
            batch["y"] = self.y[idx].to(self.device)
        if self.z_gen is not None:
            batch["z"] = torch.randn(n, self.z_dim, generator=self.z_gen)[mine].to(self.device)
        return batch

    def _from_host(self, idx: Tensor) -> Tensor:
        buf, event = self.staging[self.turn], self.copied[self.turn]
        if event is not None:
            event.synchronize()  # the copy from two batches ago; normally long finished
        torch.index_select(self.x, 0, idx, out=buf)
        x = buf.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            self.copied[self.turn] = torch.cuda.Event()
            self.copied[self.turn].record()
        else:
            x = x.clone()  # on a CPU ``to`` returns the buffer itself, which the next turn overwrites
        self.turn ^= 1
        return x

    def state_dict(self) -> dict[str, Tensor]:
        state = {"gen": self.gen.get_state(), "order": self.order, "pos": torch.tensor(self.pos)}
        if self.z_gen is not None:
            state["z_gen"] = self.z_gen.get_state()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.gen.set_state(state["gen"])
        self.order = state["order"].clone()
        self.pos = int(state["pos"])
        if self.z_gen is not None and "z_gen" in state:
            self.z_gen.set_state(state["z_gen"])
