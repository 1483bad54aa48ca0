"""``.npy`` / ``.npz`` arrays: images as (N, H, W), (N, H, W, C) or (N, C, H, W); vectors as (N, D).

Arrays are read with ``allow_pickle=False``: object arrays (which NumPy stores as pickles) are refused,
never unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from gankit.config import DataConfig
from gankit.data import Dataset, standardise
from gankit.errors import UserError


def _read(path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    try:
        with open(path, "rb") as f:  # our own handle, closed even when NumPy fails half-way
            return _read_open(f, path)
    except UserError:
        raise
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: cannot read the array ({reason}); object arrays are refused") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: zip or header corruption, a huge header
        raise UserError(f"{path}: not a readable NumPy file ({type(exc).__name__})") from None


def _read_open(f: BinaryIO, path: Path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    if path.suffix.lower() == ".npy":
        return np.load(f, allow_pickle=False), None, []
    with np.load(f, allow_pickle=False) as npz:
        key = next((k for k in ("samples", "images", "x", "data") if k in npz.files), None)
        if key is None:
            found = ", ".join(npz.files) or "nothing"
            raise UserError(f"{path}: no array named samples, images, x or data (found {found})")
        labels = npz["labels"] if "labels" in npz.files else None
        classes = [str(c) for c in npz["classes"]] if "classes" in npz.files else []
        return npz[key], labels, classes


def load_array(path: Path, cfg: DataConfig) -> Dataset:
    x, labels, classes = _read(path)
    if x.dtype.kind not in "fiub" or x.ndim < 2 or len(x) == 0:
        raise UserError(f"{path}: expected a non-empty numeric array of rank >= 2, got {x.dtype} {x.shape}")
    y = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(x),) or labels.dtype.kind not in "iu":
            raise UserError(f"{path}: 'labels' must be {len(x)} integers, got {labels.dtype} {labels.shape}")
        n_classes = len(classes) or int(labels.max()) + 1
        if labels.min() < 0 or labels.max() >= n_classes:
            raise UserError(f"{path}: labels out of range 0..{n_classes - 1}")
        classes = classes or [str(i) for i in range(n_classes)]
        y = torch.from_numpy(labels.astype(np.int64))
    if not np.isfinite(x.astype(np.float64)).all():
        raise UserError(f"{path}: the array holds NaN or infinite values")
    if len(x) < 2:
        raise UserError(f"{path}: one sample is not a data set (need at least 2 rows)")
    if x.ndim == 2:
        return standardise(torch.from_numpy(x.astype(np.float32)), y=y, classes=classes, name=path.name)
    from gankit.data.images import from_uint8_or_float

    return from_uint8_or_float(x, y, classes, cfg, name=path.name)
