"""Several processes, one run: PyTorch's DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m gankit train ...`` starts N copies of the program with RANK,
WORLD_SIZE and LOCAL_RANK set; :func:`setup` joins them into one process group (NCCL on GPUs, gloo on
CPUs). Each rank trains on its slice of the global batch (data.batch_size x world size) and DDP
averages the gradients, so N processes take the same steps as one process with the whole batch.
Only rank 0 writes the run folder. Without torchrun every function here is a no-op for one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from gankit.errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun (even with one process): data and noise drawn globally

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs, samples and the summary."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place in the run, read from torchrun's environment variables."""
    if "WORLD_SIZE" not in os.environ:
        return World()
    return World(int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"]),
                 int(os.environ.get("LOCAL_RANK", "0")), launched=True)


def setup(device: torch.device) -> World:
    """Join the process group (once) and return this process's :class:`World`."""
    w = world()
    if w.active and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return w


def local_device(device: torch.device) -> torch.device:
    """A CUDA device becomes this process's own GPU (``cuda:LOCAL_RANK``); a CPU stays a CPU."""
    w = world()
    if device.type == "cuda" and w.launched:
        return torch.device("cuda", w.local_rank)
    return device


class DDP(DistributedDataParallel):
    """DistributedDataParallel that forwards unknown attributes to the wrapped network, so task code
    reads ``G.z_dim`` or calls ``G.map`` whether or not G is wrapped."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(net: nn.Module) -> nn.Module:
    """``net`` in DDP when several processes train, else ``net`` itself."""
    if not world().active:
        return net
    device_ids = [net_device(net).index] if net_device(net).type == "cuda" else None
    return DDP(net, device_ids=device_ids)


def sync_batchnorm(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` with every BatchNorm layer computing its statistics over the global batch (SyncBatchNorm),
    when several processes train; unchanged in one process. The parameters and buffers stay the same
    tensors and keep their names, so optimizers, EMA and checkpoints are unaffected."""
    if not world().active:
        return net
    if device.type != "cuda":
        # PyTorch's SyncBatchNorm only synchronises CUDA tensors; on CPU it would fail inside the first step.
        raise UserError("train.sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on CPU); "
                        "leave it off for gloo runs")
    return nn.SyncBatchNorm.convert_sync_batchnorm(net)


def net_device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mean_over_ranks(values: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each value averaged over the ranks (one all-reduce for all of them); unchanged in one process."""
    if not values or not dist.is_initialized():
        return values
    keys = sorted(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    return dict(zip(keys, flat))


def sum_over_ranks(t: Tensor) -> Tensor:
    """``t`` summed over the ranks, in place (one all-reduce); unchanged in one process."""
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def shard(n: int) -> slice:
    """This rank's contiguous share of ``n`` items (all of them in one process); ranks in order cover 0..n."""
    w = world()
    if not w.active or not dist.is_initialized():  # the same test as gather_rows: shares are always gathered
        return slice(0, n)
    bounds = [n * r // w.size for r in range(w.size + 1)]
    return slice(bounds[w.rank], bounds[w.rank + 1])


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_rows(a: Any) -> Any:
    """Rows from every rank, concatenated in rank order (a NumPy array or tensor of any row count per rank;
    None stays None); unchanged in one process. Every rank receives the whole result."""
    if a is None or not dist.is_initialized():
        return a
    t = torch.as_tensor(a)
    dev = _comm_device()
    size = torch.tensor([t.shape[0]], device=dev)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    rows = max(int(s) for s in sizes)
    padded = torch.zeros((rows, *t.shape[1:]), dtype=t.dtype, device=dev)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    out = torch.cat([p[: int(s)] for p, s in zip(parts, sizes)]).cpu()
    return out.numpy() if isinstance(a, np.ndarray) else out


def all_ranks(flag: bool) -> bool:
    """True when ``flag`` holds on every rank (so that ranks take the same branch)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def from_rank0(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank: for decisions that end in a collective call (a checkpoint's
    barrier), where last-bit differences between machines must not split the ranks."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device=_comm_device())
    dist.broadcast(t, src=0)
    return bool(t.item())
