"""CycleGAN (Zhu et al., 2017): unpaired image-to-image translation between two domains A and B.

Two generators (A->B, B->A) and two PatchGAN discriminators, trained with the paper's defaults:
least-squares adversarial loss, cycle consistency weighted lambda = 10, identity loss 0.5 lambda, a
history pool of 50 generated images for the discriminators, Adam(2e-4, beta1 0.5), the learning rate
constant for the first half of training and then linearly decayed towards zero.

``fit(a, b, out, config)`` trains a run folder; ``load(run_dir)`` gives a :class:`Translator`.
The engine (:class:`gankit.engine.Trainer`) does the updates, checkpoints and logs: this file only
says how the four networks and the losses fit together.

Optional, off by default: CyCADA's semantic consistency (Hoffman et al., 2018). The cycle loss alone lets
a generator change what an image shows as long as it can undo it (Chu et al., 2017, "CycleGAN, a master
of steganography"); with ``lambda_semantic > 0`` a frozen classifier, trained on a labelled domain's real
images before the GAN starts, must read each translation as the class of its source image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import Tensor, nn

from gankit import checkpoint as ckpt
from gankit import losses
from gankit.config import DataConfig, LogConfig, OptimConfig, TrainConfig, from_dict
from gankit.data import Batches, Dataset
from gankit.engine import Batch, Logs, Trainer, linear_decay, resolve_device, seed_everything
from gankit.errors import UserError
from gankit.nets.cyclegan import PatchDiscriminator, ResnetGenerator, default_blocks

KIND = "translate"
MIN_SIZE = 32


@dataclass
class TranslateConfig:
    """A CycleGAN run. Defaults are the paper's, except the image size (128) and step count."""

    size: int = 128  # training images are resized (short side) and centre-cropped to size x size
    channels: int = 0  # 0: RGB if either domain has colour, else grey
    batch_size: int = 1
    g_width: int = 64
    g_blocks: int = 0  # residual blocks; 0 picks the paper's: 9 from 256 px, else 6
    g_down: int = 2  # stride-2 stages in the generator (the paper's 2); fewer keep more of the input's shape
    d_width: int = 64
    d_layers: int = 3  # 3 gives the 70x70 PatchGAN
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # identity loss weight as a fraction of lambda_cycle
    pool_size: int = 50  # history of generated images shown to D; 0 disables
    lambda_semantic: float = 0.0  # CyCADA semantic consistency; needs class labels in A and/or B (0 = the paper)
    semantic_epochs: int = 8  # training epochs of the frozen classifier(s) the semantic loss uses
    decay_start: float = 0.5  # fraction of train.steps at constant lr before the linear decay to 0
    opt_g: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, beta1=0.5))
    opt_d: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, beta1=0.5))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, ema=0.0))
    log: LogConfig = field(default_factory=lambda: LogConfig(every=100, sample_every=1000, checkpoint_every=1000,
                                                             n_samples=8))

    @property
    def blocks(self) -> int:
        return self.g_blocks or default_blocks(self.size)

    def validate(self) -> TranslateConfig:
        if self.size < MIN_SIZE or self.size % 4:
            raise UserError(f"size must be a multiple of 4 and at least {MIN_SIZE}, got {self.size}")
        if self.g_down not in (0, 1, 2):
            raise UserError(f"g_down must be 0, 1 or 2, got {self.g_down}")
        for key in ("batch_size", "g_width", "d_width", "d_layers"):
            if getattr(self, key) <= 0:
                raise UserError(f"{key} must be positive, got {getattr(self, key)}")
        if self.channels not in (0, 1, 3):
            raise UserError(f"channels must be 0 (auto), 1 or 3, got {self.channels}")
        if self.lambda_cycle < 0 or self.lambda_identity < 0 or self.pool_size < 0 or self.lambda_semantic < 0:
            raise UserError("lambda_cycle, lambda_identity, lambda_semantic and pool_size must be >= 0")
        if self.semantic_epochs < 1:
            raise UserError(f"semantic_epochs must be >= 1, got {self.semantic_epochs}")
        if not 0.0 <= self.decay_start <= 1.0:
            raise UserError(f"decay_start must be in [0, 1], got {self.decay_start}")
        if self.train.lr_decay_start != 1.0:
            raise UserError("translate decays the lr by its own decay_start; leave train.lr_decay_start at 1")
        if self.train.steps < 0:
            raise UserError(f"train.steps must be >= 0, got {self.train.steps}")
        self.log.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TranslateConfig:
        return from_dict(cls, data, where=where)


# ---------------------------------------------------------------------------------------------
# the task


class ImagePool:
    """Shrivastava et al. (2017): once full, each new fake is returned with probability 1/2, otherwise
    swapped for a random older one, so D also sees what G produced earlier and cannot chase only the
    latest generator."""

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=self.gen) < 0.5:
                i = int(torch.randint(len(self.images), (), generator=self.gen))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor]:
        """The stored images and the swap generator: a resumed run sees the pool it left."""
        images = torch.stack(self.images) if self.images else torch.empty(0)
        return {"images": images.cpu(), "rng": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "images" not in state:  # a checkpoint from before pools were saved: start empty
            return
        self.images = list(state["images"].unbind(0)) if state["images"].numel() else []
        self.gen.set_state(state["rng"])


class CycleGAN:
    """The :class:`gankit.engine.Task`: ``G`` = {a2b, b2a}, ``D`` = {a, b} (D['b'] judges domain B).

    ``judges``: frozen classifiers of the labelled domains (``{"a": net}``, ``{"a": .., "b": ..}``) for the
    semantic loss; a batch then carries ``y_a`` / ``y_b`` for the labelled domains."""

    reuse_fake = True  # generate() is one forward of G: the engine may share it between the two phases

    def __init__(self, G: nn.ModuleDict, D: nn.ModuleDict, cfg: TranslateConfig,
                 judges: dict[str, nn.Module] | None = None):
        self.G, self.D, self.cfg = G, D, cfg
        self.pools = {k: ImagePool(cfg.pool_size, seed=cfg.train.seed + i) for i, k in enumerate("ab")}
        self.judges = judges or {}
        if cfg.lambda_semantic > 0 and not self.judges:
            raise UserError("lambda_semantic > 0 needs a classifier of at least one labelled domain")

    def generate(self, batch: Batch) -> dict[str, Tensor]:
        return {"b": self.G["a2b"](batch["a"]), "a": self.G["b2a"](batch["b"])}

    def state_dict(self) -> dict[str, Tensor]:  # saved in each checkpoint by the engine
        return {f"pool_{dom}.{k}": v for dom, pool in self.pools.items() for k, v in pool.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for dom, pool in self.pools.items():
            prefix = f"pool_{dom}."
            pool.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def d_loss(self, batch: Batch, fake: dict[str, Tensor], step: int) -> tuple[Tensor, Logs]:
        logs: Logs = {}
        total = torch.zeros((), device=batch["a"].device)
        for dom in "ab":
            real_out = self.D[dom](batch[dom])
            fake_out = self.D[dom](self.pools[dom].query(fake[dom]))
            loss = losses.lsgan_d(real_out, fake_out)  # 0.5 (D(x) - 1)^2 + 0.5 D(G(.))^2, as the paper's code
            total = total + loss
            logs[f"loss_d_{dom}"] = loss.detach()
            logs[f"d_real_{dom}"] = real_out.detach().mean()
            logs[f"d_fake_{dom}"] = fake_out.detach().mean()
        logs["loss_d"] = total.detach()
        return total, logs

    def g_loss(self, batch: Batch, fake: dict[str, Tensor], step: int) -> tuple[Tensor, Logs]:
        cfg = self.cfg
        other = {"a": "b", "b": "a"}
        adv = cyc = idt = torch.zeros((), device=batch["a"].device)
        for dom in "ab":  # dom: the domain of the fake
            src = other[dom]
            adv = adv + ((self.D[dom](fake[dom]) - 1.0) ** 2).mean()
            rec = self.G[f"{dom}2{src}"](fake[dom])  # back to the source domain
            cyc = cyc + F.l1_loss(rec, batch[src])
            if cfg.lambda_identity > 0:  # a real image of the target domain should pass unchanged
                idt = idt + F.l1_loss(self.G[f"{src}2{dom}"](batch[dom]), batch[dom])
        loss = adv + cfg.lambda_cycle * cyc + cfg.lambda_cycle * cfg.lambda_identity * idt
        logs = {"loss_g_adv": adv.detach(), "loss_cycle": cyc.detach(), "loss_identity": idt.detach()}
        if cfg.lambda_semantic > 0:
            sem = self.semantic_loss(batch, fake)
            loss = loss + cfg.lambda_semantic * sem
            logs["loss_semantic"] = sem.detach()
        return loss, {"loss_g": loss.detach(), **logs}

    def semantic_loss(self, batch: Batch, fake: dict[str, Tensor]) -> Tensor:
        """CyCADA: cross-entropy of a frozen classifier on each translation against its source's class.
        The classifier is the target domain's when that domain is labelled, else the source's (read
        across the domain gap, as CyCADA does); the class is the source's label, or, for an unlabelled
        source, that classifier's reading of the source image (a pseudo-label)."""
        total = torch.zeros((), device=batch["a"].device)
        for dom, src in (("b", "a"), ("a", "b")):  # fake[dom] was translated from domain src
            judge = self.judges[dom] if dom in self.judges else self.judges[src]
            target = batch.get(f"y_{src}")
            if target is None:
                with torch.no_grad():
                    target = judge(batch[src]).argmax(dim=1)
            total = total + F.cross_entropy(judge(fake[dom]), target)
        return total


def build_nets(cfg: TranslateConfig, channels: int) -> tuple[nn.ModuleDict, nn.ModuleDict]:
    G = nn.ModuleDict({k: ResnetGenerator(channels, channels, cfg.g_width, cfg.blocks, cfg.g_down) for k in ("a2b", "b2a")})
    D = nn.ModuleDict({k: PatchDiscriminator(channels, cfg.d_width, cfg.d_layers) for k in "ab"})
    return G, D


# ---------------------------------------------------------------------------------------------
# data


class PairedBatches:
    """Independent shuffled batches from A and B (unpaired): ``{"a": (N,C,H,W), "b": (N,C,H,W)}``."""

    def __init__(self, a: Dataset, b: Dataset, batch_size: int, device: torch.device, seed: int):
        """Labels (``Dataset.y``) travel along as ``y_a`` / ``y_b``: only the semantic loss reads them."""
        self.a = Batches(Dataset(x=a.x, y=a.y), batch_size, device, seed)
        self.b = Batches(Dataset(x=b.x, y=b.y), batch_size, device, seed + 1)
        self.batch_size = batch_size

    def __iter__(self) -> PairedBatches:
        return self

    def __next__(self) -> dict[str, Tensor]:
        out = {}
        for dom, batches in (("a", self.a), ("b", self.b)):
            batch = next(batches)
            out[dom] = batch["x"]
            if "y" in batch:
                out[f"y_{dom}"] = batch["y"]
        return out

    def state_dict(self) -> dict[str, Tensor]:
        return {**{f"a.{k}": v for k, v in self.a.state_dict().items()},
                **{f"b.{k}": v for k, v in self.b.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.a.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("a.")})
        self.b.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("b.")})


def load_domain(source: str | Path | Dataset | Tensor, size: int, name: str) -> Dataset:
    """A domain from an image folder (resized, centre-cropped), a Dataset or a tensor in [-1, 1]."""
    from gankit.data.images import load_folder

    if isinstance(source, Dataset):
        ds = source
    elif isinstance(source, Tensor):
        ds = Dataset(x=source, name=name)
    else:
        path = Path(source).expanduser()
        if not path.is_dir():
            raise UserError(f"domain {name.upper()} folder not found: {path}")
        ds = load_folder(path, DataConfig(source=str(path), size=size))
    if ds.x.ndim != 4 or ds.x.shape[1] not in (1, 3):
        raise UserError(f"domain {name.upper()}: expected images (N, 1 or 3, H, W), got {tuple(ds.x.shape)}")
    if len(ds) == 0:
        raise UserError(f"domain {name.upper()}: no images")
    if ds.x.shape[-2:] != (size, size):
        ds = Dataset(x=resize_short_side(ds.x, size, crop=True), y=ds.y, classes=ds.classes, name=ds.name)
    return ds


def with_channels(x: Tensor, channels: int) -> Tensor:
    if x.shape[1] == channels:
        return x
    return x.repeat(1, 3, 1, 1) if channels == 3 else x.mean(dim=1, keepdim=True)


def resize_short_side(x: Tensor, size: int, crop: bool = False) -> Tensor:
    """Scale (N, C, H, W) so the short side is ``size``; ``crop`` then takes the centre square."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    if new != (h, w):
        x = F.interpolate(x, size=new, mode="bicubic", align_corners=False, antialias=scale < 1).clamp(-1, 1)
    if crop:
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        x = x[..., top : top + size, left : left + size]
    return x


# ---------------------------------------------------------------------------------------------
# training


def _snapshot(a: Tensor, b: Tensor):
    """Rows of (input, translation, reconstruction) for fixed images of A, then of B."""

    @torch.no_grad()
    def snapshot(G: nn.ModuleDict, path: Path) -> None:
        from gankit.data.images import make_grid

        path.parent.mkdir(parents=True, exist_ok=True)
        make_grid(translation_grid(G, a, b), nrow=3, scale=max(1, 64 // a.shape[-1])).save(path)

    return snapshot


@torch.no_grad()
def translation_grid(G: nn.ModuleDict, a: Tensor, b: Tensor) -> Tensor:
    """(input, translation, reconstruction) triples, A rows first: a tensor for ``make_grid(nrow=3)``."""
    was_training = G.training
    G.eval()
    rows = []
    for x, fwd, back in ((a, "a2b", "b2a"), (b, "b2a", "a2b")):
        y = G[fwd](x)
        rows.append(torch.stack([x, y, G[back](y)], dim=1).flatten(0, 1))
    G.train(was_training)
    return torch.cat(rows).cpu()


def fit(a: str | Path | Dataset | Tensor, b: str | Path | Dataset | Tensor, out: str | Path,
        config: TranslateConfig | None = None, resume: bool = False) -> dict[str, Any]:
    """Train a CycleGAN between domains ``a`` and ``b`` (folders, Datasets or tensors in [-1, 1]) into
    the run folder ``out``. Returns the engine's summary (also in ``summary.json``)."""
    out = Path(out)
    ckpt.check_run_folder(out, resume)
    if resume:
        steps = config.train.steps if config is not None else None
        config = load_config(out)
        if steps is not None:
            config.train.steps = max(steps, config.train.steps)
    cfg = (config or TranslateConfig()).validate()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    da, db = load_domain(a, cfg.size, "a"), load_domain(b, cfg.size, "b")
    channels = cfg.channels or (3 if 3 in (da.x.shape[1], db.x.shape[1]) else 1)
    xa, xb = with_channels(da.x, channels), with_channels(db.x, channels)
    G, D = build_nets(cfg, channels)
    G, D = G.to(device), D.to(device)
    labels: dict[str, Tensor | None] = {"a": None, "b": None}
    judges: dict[str, nn.Module] = {}
    if cfg.lambda_semantic > 0:
        labels = semantic_labels(da, db)
        classifiers = semantic_judges(cfg, {"a": xa, "b": xb}, labels, out, resume)
        judges = {k: c.net.to(device).eval().requires_grad_(False) for k, c in classifiers.items()}
        accuracy = {k: round(float(c.spec.train_accuracy), 4) for k, c in classifiers.items()}
    task = CycleGAN(G, D, cfg, judges)
    batches = PairedBatches(Dataset(x=xa, y=labels["a"]), Dataset(x=xb, y=labels["b"]), cfg.batch_size, device,
                            cfg.train.seed)
    n_show = min(cfg.log.n_samples, len(xa), len(xb))
    data = {"channels": channels, "size": cfg.size, "n_a": len(xa), "n_b": len(xb), "a": da.name, "b": db.name}
    if judges:
        data["semantic"] = {"labelled": sorted(judges), "classes": da.classes or db.classes,
                            "judge_train_accuracy": accuracy}
    meta = {"kind": KIND, "config": cfg.to_dict(), "data": data}
    trainer = Trainer(task, batches, out, cfg.train, cfg.opt_g, cfg.opt_d, cfg.log, meta, d_output="least_squares",
                      snapshot=_snapshot(xa[:n_show].to(device), xb[:n_show].to(device)))
    trainer.lr_schedule = linear_decay(cfg.train.steps, cfg.decay_start)
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        trainer.resume()
    else:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    ckpt.atomic_write_json(out / "data.json", data)
    return trainer.fit(cfg.train.steps)


def semantic_labels(da: Dataset, db: Dataset) -> dict[str, Tensor | None]:
    """The class labels of each domain (None where it has none), checked to mean the same classes."""
    if da.y is None and db.y is None:
        raise UserError("lambda_semantic needs class labels: put the images of domain A and/or B into one "
                        "sub-folder per class (e.g. A/0/, A/1/, ..., with the same names in B)")
    check_same_classes(da, db, "the semantic loss")
    return {"a": da.y, "b": db.y}


def check_same_classes(da: Dataset, db: Dataset, what: str) -> None:
    """Where both domains are labelled, their class sub-folders must be the same (index i = one class)."""
    if da.y is not None and db.y is not None and da.classes and db.classes and da.classes != db.classes:
        raise UserError(f"domains A and B have different classes ({', '.join(da.classes)} vs "
                        f"{', '.join(db.classes)}); {what} needs the same class sub-folders in both")


def semantic_judges(cfg: TranslateConfig, x: dict[str, Tensor], labels: dict[str, Tensor | None], out: Path,
                    resume: bool) -> dict[str, Any]:
    """A frozen classifier per labelled domain, trained on its real images (``out/judges/DOM.safetensors``,
    reused on resume so the continued run sees the same classifier)."""
    from gankit.classifier import Classifier, train_classifier

    n_classes = max(int(y.max()) + 1 for y in labels.values() if y is not None)
    judges = {}
    for dom, y in labels.items():
        if y is None:
            continue
        path = out / "judges" / f"{dom}.safetensors"
        if resume and path.is_file():
            clf = Classifier.load(path)
        else:
            with torch.random.fork_rng(devices=[]):  # the GAN's own random stream stays as without judges
                clf = train_classifier(x[dom], y, epochs=cfg.semantic_epochs, seed=cfg.train.seed,
                                       classes=[str(i) for i in range(n_classes)])
            clf.save(path)
        judges[dom] = clf
    return judges


def load_config(run_dir: Path) -> TranslateConfig:
    path = Path(run_dir) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return TranslateConfig.from_dict(data, where=str(path))


# ---------------------------------------------------------------------------------------------
# using a trained run


class Translator:
    """Both trained generators; ``translate`` maps image tensors, ``translate_image`` PIL images."""

    def __init__(self, G: nn.ModuleDict, config: TranslateConfig, data: dict[str, Any], step: int):
        self.G, self.config, self.data, self.step = G.eval(), config, data, step

    @property
    def channels(self) -> int:
        return int(self.data["channels"])

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "a2b", batch_size: int = 16) -> Tensor:
        """(N, C, H, W) in [-1, 1] -> translated, same size. Sides are reflect-padded to a multiple of the
        generator's (4 with the paper's two downsamplings) and cropped back."""
        if direction not in ("a2b", "b2a"):
            raise UserError(f"direction must be a2b or b2a, got '{direction}'")
        x = with_channels(x, self.channels)
        h, w = x.shape[-2:]
        if min(h, w) < 8:
            raise UserError(f"image of {w}x{h} is too small to translate (at least 8x8)")
        multiple = self.G[direction].multiple
        ph, pw = -h % multiple, -w % multiple
        device = next(self.G.parameters()).device
        outs = []
        for i in range(0, len(x), batch_size):
            xb = F.pad(x[i : i + batch_size].to(device), (0, pw, 0, ph), mode="reflect")
            outs.append(self.G[direction](xb)[..., :h, :w].cpu())
        return torch.cat(outs)

    def translate_image(self, im: Image.Image, direction: str = "a2b", native: bool = False) -> Image.Image:
        """A PIL image translated. By default it is first scaled so its short side is the training size
        (the scale the generators learnt); ``native`` keeps its own resolution."""
        from gankit.data.images import to_uint8

        arr = torch.from_numpy(np.array(im.convert("L" if self.channels == 1 else "RGB")))
        x = arr.reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)[None].float() / 127.5 - 1
        if not native:
            x = resize_short_side(x, self.config.size)
        y = to_uint8(self.translate(x, direction))[0]
        return Image.fromarray(y[..., 0] if y.shape[-1] == 1 else y)


def load(run_dir: str | Path, device: str = "cpu", ema: bool = True) -> Translator:
    """The generators of the newest valid checkpoint in ``run_dir`` (the EMA copy by default, which is
    the generator itself when ``train.ema`` is 0)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    tensors, meta = ckpt.load_latest(run_dir / "checkpoints")
    if meta.get("kind") != KIND:
        raise UserError(f"{run_dir}: a '{meta.get('kind')}' run, not a translate (CycleGAN) run")
    cfg = TranslateConfig.from_dict(meta["config"], where=str(run_dir))
    G, _ = build_nets(cfg, int(meta["data"]["channels"]))
    ckpt.load_module("G_ema" if ema else "G", G, tensors, str(run_dir))
    return Translator(G.to(device), cfg, meta["data"], int(meta["step"]))
