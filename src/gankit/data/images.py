"""Image files: reading folders (sub-folders become classes), resizing, and writing grids and files."""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from gankit.config import DataConfig
from gankit.data import Dataset
from gankit.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def list_images(root: Path) -> list[Path]:
    """Image files under ``root``, recursively, in a stable order. Hidden files are ignored; any other
    non-image file is an error, so that a wrong folder is noticed rather than silently half-used."""
    files, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop: walk each real folder once
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise UserError(f"{path}: not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
            files.append(path)
    return files


def read_image(path: Path, channels: int) -> Image.Image:
    """Open one image as grey (``channels=1``) or RGB (3), converting every mode Pillow reads:

    - transparency (RGBA, LA, palettes with a transparent colour) is composited onto white;
    - palettes (P), bilevel (1) and CMYK are converted to RGB or grey;
    - 16-bit greys (I;16) are scaled to 8 bits (value / 257), 32-bit integer greys too when above 255;
    - grey images in an RGB data set are repeated over three channels, and colour ones in a grey set
      are converted to luminance (ITU-R 601-2);
    - images of any size are resized and centre-cropped to ``data.size`` (small ones are upscaled).

    Refused with a :class:`UserError` naming the file: files Pillow cannot identify or decode
    (truncated, corrupt, not images) and images above Pillow's decompression-bomb pixel limit (kept
    on: ``PIL.Image.MAX_IMAGE_PIXELS``, about 89 million pixels).
    """
    try:
        with Image.open(path) as im:
            # Checked by hand rather than by turning Pillow's warning into an error: warning filters are
            # process-wide, and folders are decoded by several threads at once.
            if Image.MAX_IMAGE_PIXELS and im.size[0] * im.size[1] > Image.MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(path)
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                if im.mode.startswith("I;16") or arr.max() > 255:
                    arr = arr / 257
                im = Image.fromarray(arr.clip(0, 255).round().astype(np.uint8))
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            return im.convert("L" if channels == 1 else "RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path}: image too large (over Pillow's decompression-bomb limit of "
                        f"{Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise UserError(f"{path}: cannot read image ({type(exc).__name__}: {reason})") from None


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Scale the short side to ``size`` then take the centre square."""
    w, h = im.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    im = im.resize(new, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return im.crop((left, top, left + size, top + size))


def _is_grey(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    except Exception:  # noqa: BLE001 - only a guess at the channel count: read_image reports the problem
        return False


def load_folder(root: Path, cfg: DataConfig) -> Dataset:
    from tqdm import tqdm

    files = list_images(root)
    if not files:
        raise UserError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    channels = cfg.channels or (1 if all(_is_grey(f) for f in files) else 3)
    rel_parents = [f.relative_to(root).parts[:-1] for f in files]
    labelled = all(len(p) >= 1 for p in rel_parents)
    classes = sorted({p[0] for p in rel_parents}) if labelled else []
    xs = np.empty((len(files), cfg.size, cfg.size, channels), dtype=np.uint8)

    def decode(i: int) -> None:
        xs[i] = np.asarray(resize_center_crop(read_image(files[i], channels), cfg.size)).reshape(xs.shape[1:])

    # Pillow releases the GIL while it decodes and resamples, so threads read a big folder in parallel.
    workers = cfg.workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = pool.map(decode, range(len(files)))
        for _ in tqdm(done, total=len(files), desc=f"reading {root.name}", unit="img",
                      disable=len(files) < 500, leave=False):
            pass
    x = torch.from_numpy(xs).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.tensor([classes.index(p[0]) for p in rel_parents]) if labelled else None
    return Dataset(x=x, y=y, classes=classes, kind="image", name=root.name)


def from_uint8_or_float(x: np.ndarray, y: Tensor | None, classes: list[str], cfg: DataConfig,
                        name: str) -> Dataset:
    """Arrays of images: uint8 in 0..255, or floats already in [-1, 1] or [0, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise UserError(f"{name}: image arrays must be (N,H,W), (N,H,W,C) or (N,C,H,W) with C 1 or 3; got {x.shape}")
    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    if x.dtype == np.uint8 or t.max() > 1.0:
        t = t / 127.5 - 1
    elif t.min() >= 0:
        t = t * 2 - 1
    if t.shape[-1] != cfg.size or t.shape[-2] != cfg.size:
        t = F.interpolate(t, size=(cfg.size, cfg.size), mode="bilinear", align_corners=False, antialias=True)
    if cfg.channels == 3 and t.shape[1] == 1:
        t = t.repeat(1, 3, 1, 1)
    elif cfg.channels == 1 and t.shape[1] == 3:
        t = t.mean(dim=1, keepdim=True)
    return Dataset(x=t.clamp(-1, 1), y=y, classes=classes, kind="image", name=name)


# ---------------------------------------------------------------------------------------------
# writing


def to_uint8(x: Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def make_grid(x: Tensor, nrow: int | None = None, pad: int = 1, scale: int = 1) -> Image.Image:
    """Tile (N, C, H, W) images into one picture, ``nrow`` per row (default: square)."""
    imgs = to_uint8(x)
    n, h, w, c = imgs.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = imgs[i]
    im = Image.fromarray(grid[..., 0] if c == 1 else grid)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    return im


def save_image(x: Tensor, path: Path) -> None:
    """One (C, H, W) image in [-1, 1] to a file whose suffix picks the format."""
    arr = to_uint8(x[None])[0]
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)
