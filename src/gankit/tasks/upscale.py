"""SRGAN (Ledig et al., 2017): single-image super-resolution at x2 or x4.

Training has the paper's two phases on one engine run: first ``pretrain_steps`` of pixel-loss (MSE)
training of the SRResNet generator alone, then adversarial fine-tuning with a content loss (pixels,
and optionally VGG-19 features when their weights file is on disk) plus 1e-3 x the adversarial loss.
Low-resolution inputs are made by bicubic downscaling (antialiased) of high-resolution patches.

``fit(data, out, config)`` trains a run folder; ``load(run_dir)`` gives an :class:`Upscaler` whose
``upscale`` works on images of any size by tiles that overlap and are blended, so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
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
from gankit.config import LogConfig, OptimConfig, TrainConfig, from_dict
from gankit.engine import Batch, Logs, Trainer, resolve_device, seed_everything
from gankit.errors import UserError
from gankit.nets.srgan import SCALES, SRDiscriminator, SRResNet, VGG19Features

KIND = "upscale"
MIN_LR_SIDE = 4  # smallest low-resolution input side accepted
VGG_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's VGG-19 ImageNet weights; the name carries its SHA-256 prefix
VGG_URL = f"https://download.pytorch.org/models/{VGG_FILE}"
VGG_SCALE = 1 / 12.75  # the paper rescales VGG feature maps by this before the MSE


@dataclass
class UpscaleConfig:
    """An SRGAN run. ``train.steps`` counts all generator steps; the first ``pretrain_steps`` of them
    are the pixel-loss pre-training (SRResNet), the rest adversarial fine-tuning."""

    scale: int = 4
    patch: int = 96  # high-resolution training patch side (a multiple of scale)
    batch_size: int = 16
    width: int = 64
    n_blocks: int = 16
    residual: bool = False  # predict the difference from bicubic (not in the paper; converges much faster)
    d_width: int = 64
    pretrain_steps: int = 10000
    content: str = "pixel"  # pixel | vgg54 (VGG-19 features; needs feature_weights or the default file)
    feature_weights: str = ""  # VGG-19 weights file; empty: $GANKIT_HOME/weights/vgg19-dcbb9e9d.pth
    pixel_weight: float = 1.0  # adversarial phase: MSE on pixels
    feature_weight: float = 1.0  # adversarial phase, content=vgg54: MSE on VGG54 features / 12.75
    adv_weight: float = 1e-3
    opt_g: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.9, beta2=0.999))
    opt_d: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.9, beta2=0.999))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, ema=0.0))
    log: LogConfig = field(default_factory=lambda: LogConfig(every=100, sample_every=1000, checkpoint_every=1000,
                                                             n_samples=4))

    def validate(self) -> UpscaleConfig:
        if self.scale not in SCALES:
            raise UserError(f"scale must be one of {', '.join(map(str, SCALES))}, got {self.scale}")
        if self.patch % self.scale or self.patch // self.scale < MIN_LR_SIDE:
            raise UserError(f"patch must be a multiple of scale ({self.scale}) and at least "
                            f"{MIN_LR_SIDE * self.scale}, got {self.patch}")
        for key in ("batch_size", "width", "n_blocks", "d_width"):
            if getattr(self, key) <= 0:
                raise UserError(f"{key} must be positive, got {getattr(self, key)}")
        if self.batch_size < 2:
            raise UserError("batch_size must be at least 2 (the networks use batch norm)")
        if not 0 <= self.pretrain_steps <= self.train.steps:
            raise UserError(f"pretrain_steps must be in [0, train.steps={self.train.steps}], got {self.pretrain_steps}")
        if self.content not in ("pixel", "vgg54"):
            raise UserError(f"content must be pixel or vgg54, got '{self.content}'")
        self.log.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> UpscaleConfig:
        return from_dict(cls, data, where=where)


# ---------------------------------------------------------------------------------------------
# feature network for the content loss


def vgg_weights_path(weights: str | Path | None = None) -> Path:
    """The VGG-19 weights to use: ``weights`` if given, else $GANKIT_HOME/weights/vgg19-dcbb9e9d.pth."""
    from gankit.metrics.features import gankit_home

    path = Path(weights).expanduser() if weights else gankit_home() / "weights" / VGG_FILE
    if not path.is_file():
        raise UserError(f"VGG-19 weights not found at {path}: the vgg54 content loss needs {VGG_FILE} (from "
                        f"{VGG_URL}) at {gankit_home() / 'weights' / VGG_FILE}, or feature_weights=FILE "
                        "(.pth or .safetensors); or use content=pixel")
    return path


def load_vgg(weights: str | Path | None = None) -> VGG19Features:
    """VGG-19 up to conv5_4 from a local file; never downloads. The default file must match the SHA-256
    prefix in its name (torch.hub's convention); any file must have VGG-19's keys and shapes."""
    from gankit.metrics.features import sha256_file

    path = vgg_weights_path(weights)
    if path.name == VGG_FILE and not sha256_file(path).startswith(VGG_FILE.split("-")[1].split(".")[0]):
        raise UserError(f"{path}: SHA-256 does not start with the prefix in its name (corrupt or another file)")
    if path.suffix == ".safetensors":
        state = ckpt.load_safetensors_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise UserError(f"{path}: cannot read weights ({type(exc).__name__})") from None
    net = VGG19Features()
    own = net.state_dict()
    state = {k: v for k, v in state.items() if k in own}  # the classifier head is not needed
    missing = sorted(set(own) - set(state))
    bad = [k for k in state if state[k].shape != own[k].shape]
    if missing or bad:
        raise UserError(f"{path}: not VGG-19 weights (missing {missing[:3]}, wrong shapes {bad[:3]})")
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# the task


def downscale(hr: Tensor, scale: int) -> Tensor:
    """Bicubic, antialiased downscaling by an integer factor: how low-resolution inputs are made."""
    return F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", align_corners=False,
                         antialias=True).clamp(-1, 1)


def bicubic_upscale(lr: Tensor, scale: int) -> Tensor:
    """The baseline every learnt upscaler must beat."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


class SRGAN:
    """The :class:`gankit.engine.Task`. ``phase`` is "pretrain" (pixel MSE, D idle) or "gan"."""

    def __init__(self, G: SRResNet, D: SRDiscriminator, cfg: UpscaleConfig, vgg: nn.Module | None = None):
        self.G, self.D, self.cfg, self.vgg = G, D, cfg, vgg
        self.phase = "pretrain"
        self.loss = losses.get_loss("nonsaturating")

    def generate(self, batch: Batch) -> Tensor | None:
        if self.phase == "pretrain" and not torch.is_grad_enabled():
            return None  # the engine's no-grad pass feeds D, which pre-training does not train
        return self.G(batch["lr"])

    def d_loss(self, batch: Batch, fake: Tensor | None, step: int) -> tuple[Tensor, Logs]:
        if self.phase == "pretrain":
            return torch.zeros((), device=batch["hr"].device, requires_grad=True), {}
        real_out, fake_out = self.D(batch["hr"]), self.D(fake)
        loss = self.loss.d(real_out, fake_out)
        return loss, {"loss_d": loss.detach(), "d_real": torch.sigmoid(real_out.detach()).mean(),
                      "d_fake": torch.sigmoid(fake_out.detach()).mean()}

    def g_loss(self, batch: Batch, fake: Tensor, step: int) -> tuple[Tensor, Logs]:
        hr = batch["hr"]
        mse = F.mse_loss(fake, hr)
        logs = {"loss_pixel": mse.detach(), "psnr_train": 10 * torch.log10(4.0 / mse.detach().clamp_min(1e-12))}
        if self.phase == "pretrain":
            logs["loss_g"] = mse.detach()
            return mse, logs
        cfg = self.cfg
        loss = cfg.pixel_weight * mse
        if self.vgg is not None:
            feat = F.mse_loss(self.vgg(fake) * VGG_SCALE, self.vgg(hr) * VGG_SCALE)
            loss = loss + cfg.feature_weight * feat
            logs["loss_feature"] = feat.detach()
        adv = self.loss.g(self.D(fake))
        loss = loss + cfg.adv_weight * adv
        logs.update({"loss_g_adv": adv.detach(), "loss_g": loss.detach()})
        return loss, logs


def build_nets(cfg: UpscaleConfig) -> tuple[SRResNet, SRDiscriminator]:
    return SRResNet(3, cfg.width, cfg.n_blocks, cfg.scale, cfg.residual), SRDiscriminator(3, cfg.d_width)


# ---------------------------------------------------------------------------------------------
# data


class PatchBatches:
    """Endless batches of random high-resolution patches (random flips and 90-degree turns) with their
    bicubic low-resolution versions: ``{"lr": (N,3,p/s,p/s), "hr": (N,3,p,p)}`` in [-1, 1]."""

    def __init__(self, images: list[Tensor], patch: int, scale: int, batch_size: int, device: torch.device,
                 seed: int):
        self.images = [im.to(device) for im in images]
        self.patch, self.scale, self.batch_size = patch, scale, batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self) -> PatchBatches:
        return self

    def __next__(self) -> dict[str, Tensor]:
        p, g = self.patch, self.gen
        crops = []
        for _ in range(self.batch_size):
            im = self.images[int(torch.randint(len(self.images), (), generator=g))]
            top = int(torch.randint(im.shape[1] - p + 1, (), generator=g))
            left = int(torch.randint(im.shape[2] - p + 1, (), generator=g))
            crop = im[:, top : top + p, left : left + p]
            if torch.rand((), generator=g) < 0.5:
                crop = crop.flip(-1)
            crops.append(torch.rot90(crop, int(torch.randint(4, (), generator=g)), dims=(1, 2)))
        hr = torch.stack(crops)
        return {"lr": downscale(hr, self.scale), "hr": hr}

    def state_dict(self) -> dict[str, Tensor]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.gen.set_state(state["gen"])


# Photos that ship with scikit-learn and scikit-image. Three are held out of "photos" for evaluation.
HELD_OUT = ("china", "astronaut", "coffee")
TRAIN_PHOTOS = ("flower", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                "motorcycle", "camera", "coins")


def bundled_photo(name: str) -> np.ndarray:
    """One bundled photo as (H, W, 3) uint8 (grey ones repeated over three channels)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(f"{name}.jpg")
    else:
        try:
            from skimage import data as skdata
        except ImportError:
            raise UserError(f"photo '{name}' comes from scikit-image: pip install scikit-image") from None
        arr = skdata.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skdata, name)()
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8)


BUILTINS: dict[str, tuple[str, ...]] = {"photos": TRAIN_PHOTOS, "photos-heldout": HELD_OUT}


def image_tensor(arr: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(arr, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def load_images(source: str | Path) -> list[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8) for a built-in set (photos, photos-heldout) or an image folder, at full size."""
    from gankit.data.images import list_images, read_image

    if isinstance(source, str) and source in BUILTINS:
        return [(name, bundled_photo(name)) for name in BUILTINS[source]]
    path = Path(source).expanduser()
    if not path.is_dir():
        raise UserError(f"data not found: {source} (an image folder, or a built-in set: {', '.join(BUILTINS)})")
    files = list_images(path)
    if not files:
        raise UserError(f"{path}: no images found")
    return [(str(f), np.asarray(read_image(f, 3))) for f in files]


# ---------------------------------------------------------------------------------------------
# training


def fit(data: str | Path | list[np.ndarray], out: str | Path, config: UpscaleConfig | None = None,
        resume: bool = False) -> dict[str, Any]:
    """Train an SRGAN on ``data`` (a folder, a built-in name, or (H, W, 3) uint8 arrays) into ``out``."""
    out = Path(out)
    ckpt.check_run_folder(out, resume)
    if resume:
        steps = config.train.steps if config is not None else None
        config = load_config(out)
        if steps is not None:
            config.train.steps = max(steps, config.train.steps)
    cfg = (config or UpscaleConfig()).validate()
    vgg = load_vgg(cfg.feature_weights or None) if cfg.content == "vgg54" else None
    named = load_images(data) if isinstance(data, (str, Path)) else [(f"array {i}", a) for i, a in enumerate(data)]
    if not named:
        raise UserError("no training images")
    for name, arr in named:
        if min(arr.shape[:2]) < cfg.patch:
            raise UserError(f"{name}: image of {arr.shape[1]}x{arr.shape[0]} is smaller than the training patch "
                            f"of {cfg.patch} px (x{cfg.scale}); lower patch or drop the image")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    G, D = build_nets(cfg)
    G, D = G.to(device), D.to(device)
    task = SRGAN(G, D, cfg, vgg.to(device) if vgg is not None else None)
    images = [image_tensor(a) for _, a in named]
    batches = PatchBatches(images, cfg.patch, cfg.scale, cfg.batch_size, device, cfg.train.seed)
    data_meta = {"source": str(data) if isinstance(data, (str, Path)) else "arrays", "n_images": len(named)}
    meta = {"kind": KIND, "config": cfg.to_dict(), "data": data_meta}
    show = next(PatchBatches(images, cfg.patch, cfg.scale, max(cfg.log.n_samples, 1), device, seed=1234))
    trainer = Trainer(task, batches, out, cfg.train, cfg.opt_g, cfg.opt_d, cfg.log, meta,
                      d_output="sigmoid_of_logits", snapshot=_snapshot(show, cfg.scale))
    trainer.best_steps.add(cfg.pretrain_steps)  # the SRResNet checkpoint stays, for load(phase="pretrain")
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        trainer.resume()
    else:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    ckpt.atomic_write_json(out / "data.json", data_meta)
    summary: dict[str, Any] = {}
    if trainer.state.step < cfg.pretrain_steps:
        task.phase = "pretrain"
        summary = trainer.fit(cfg.pretrain_steps)
        if summary["interrupted"]:
            return summary
    task.phase = "gan"
    if trainer.state.step < cfg.train.steps or not summary:
        summary = trainer.fit(cfg.train.steps)
    return summary


def _snapshot(show: Batch, scale: int) -> Callable[[nn.Module, Path], None]:
    """Rows of (bicubic, generator, original) for fixed patches."""

    @torch.no_grad()
    def snapshot(G: nn.Module, path: Path) -> None:
        from gankit.data.images import make_grid

        path.parent.mkdir(parents=True, exist_ok=True)
        was = G.training
        G.eval()
        rows = torch.stack([bicubic_upscale(show["lr"], scale), G(show["lr"]), show["hr"]], dim=1).flatten(0, 1)
        G.train(was)
        make_grid(rows.cpu(), nrow=3).save(path)

    return snapshot


def load_config(run_dir: Path) -> UpscaleConfig:
    path = Path(run_dir) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return UpscaleConfig.from_dict(data, where=str(path))


# ---------------------------------------------------------------------------------------------
# tiled inference


def blend_weights(start: int, length: int, total: int, overlap: int) -> Tensor:
    """1-D weights of one tile: 1 inside, 0 for the ``overlap // 4`` pixels next to a side shared with a
    neighbour, and a linear ramp between. Pixels next to a tile's inner edge (which lack their real
    neighbours) thus never count, and where tiles meet their results are cross-faded."""
    d = torch.arange(length, dtype=torch.float64)
    w = torch.ones(length, dtype=torch.float64)
    margin = overlap // 4
    ramp = max(overlap - 2 * margin, 1)
    if start > 0:
        w = torch.minimum(w, ((d - margin + 1) / ramp).clamp(0, 1))
    if start + length < total:
        w = torch.minimum(w, ((length - 1 - d - margin + 1) / ramp).clamp(0, 1))
    return w


def tile_starts(total: int, tile: int, overlap: int) -> list[int]:
    if total <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, total - tile, step))
    return starts + [total - tile]


@torch.no_grad()
def tiled(fn: Callable[[Tensor], Tensor], x: Tensor, scale: int, tile: int = 128, overlap: int = 32) -> Tensor:
    """``fn`` (an x``scale`` upscaler) on (N, C, H, W) by tiles of ``tile`` low-resolution pixels that
    overlap by ``overlap``; memory depends on ``tile``, not on the image. When ``overlap // 4`` is at
    least the network's receptive radius, the result equals whole-image inference."""
    if overlap >= tile:
        raise UserError(f"tile overlap ({overlap}) must be smaller than the tile ({tile})")
    n, c, h, w = x.shape
    if h <= tile and w <= tile:
        return fn(x)
    out = torch.zeros(n, c, h * scale, w * scale, dtype=torch.float64)
    norm = torch.zeros(1, 1, h * scale, w * scale, dtype=torch.float64)
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            th, tw = min(tile, h), min(tile, w)
            y = fn(x[:, :, top : top + th, left : left + tw]).cpu().double()
            wy = blend_weights(top * scale, th * scale, h * scale, overlap * scale)
            wx = blend_weights(left * scale, tw * scale, w * scale, overlap * scale)
            weight = wy[:, None] * wx[None, :]
            out[:, :, top * scale : (top + th) * scale, left * scale : (left + tw) * scale] += y * weight
            norm[:, :, top * scale : (top + th) * scale, left * scale : (left + tw) * scale] += weight
    return (out / norm).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# using a trained run


class Upscaler:
    """A trained generator. ``upscale`` maps (N, 3, H, W) tensors in [-1, 1]; ``upscale_image`` PIL images."""

    def __init__(self, G: SRResNet, config: UpscaleConfig, step: int, phase: str):
        self.G, self.config, self.step, self.phase = G.eval(), config, step, phase

    @property
    def scale(self) -> int:
        return self.config.scale

    @torch.no_grad()
    def upscale(self, x: Tensor, tile: int = 128, overlap: int = 32) -> Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < MIN_LR_SIDE:
            raise UserError(f"image of {w}x{h} is too small to upscale (at least {MIN_LR_SIDE}x{MIN_LR_SIDE} pixels)")
        grey = x.shape[1] == 1
        if grey:
            x = x.repeat(1, 3, 1, 1)
        device = next(self.G.parameters()).device
        y = tiled(lambda t: self.G(t.to(device)).cpu(), x, self.scale, tile, overlap)
        return y.mean(dim=1, keepdim=True) if grey else y

    def upscale_image(self, im: Image.Image, tile: int = 128, overlap: int = 32) -> Image.Image:
        from gankit.data.images import to_uint8

        grey = im.mode in ("L", "1", "I", "I;16", "F")
        arr = np.asarray(im.convert("RGB"))
        y = to_uint8(self.upscale(image_tensor(arr)[None], tile, overlap))[0]
        out = Image.fromarray(y)
        return out.convert("L") if grey else out


def load(run_dir: str | Path, device: str = "cpu", phase: str = "final") -> Upscaler:
    """The generator of ``run_dir``: the newest checkpoint (``phase="final"``) or the end of the pixel
    pre-training (``phase="pretrain"``, the SRResNet)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    tensors, meta = ckpt.load_latest(run_dir / "checkpoints")
    if meta.get("kind") != KIND:
        raise UserError(f"{run_dir}: a '{meta.get('kind')}' run, not an upscale (SRGAN) run")
    cfg = UpscaleConfig.from_dict(meta["config"], where=str(run_dir))
    if phase == "pretrain":
        tensors, meta = ckpt.load_latest(run_dir / "checkpoints", step=cfg.pretrain_steps)
    elif phase != "final":
        raise UserError(f"phase must be final or pretrain, got '{phase}'")
    G, _ = build_nets(cfg)
    ckpt.load_module("G_ema", G, tensors, str(run_dir))
    return Upscaler(G.to(device), cfg, int(meta["step"]), phase)


def evaluate(upscaler: Upscaler | None, images: list[tuple[str, np.ndarray]], scale: int,
             tile: int = 128) -> dict[str, dict[str, float]]:
    """PSNR / SSIM (Y channel, ``scale`` pixels of border cropped) of ``upscaler`` (None: bicubic) on
    high-resolution photos, each cropped to a multiple of ``scale`` and bicubically downscaled first."""
    from gankit.data.images import to_uint8
    from gankit.metrics.image_quality import psnr, ssim

    out = {}
    for name, arr in images:
        h, w = (arr.shape[0] // scale) * scale, (arr.shape[1] // scale) * scale
        if min(h, w) < MIN_LR_SIDE * scale:
            raise UserError(f"{name}: image of {arr.shape[1]}x{arr.shape[0]} is too small for x{scale} evaluation")
        hr = arr[:h, :w]
        lr = downscale(image_tensor(hr)[None], scale)
        sr = bicubic_upscale(lr, scale) if upscaler is None else upscaler.upscale(lr, tile=tile)
        sr8 = to_uint8(sr)[0]
        out[Path(name).stem] = {"psnr": psnr(sr8, hr, border=scale), "ssim": ssim(sr8, hr, border=scale)}
    out["mean"] = {k: float(np.mean([v[k] for v in out.values()])) for k in ("psnr", "ssim")}
    return out

