"""The one feature helper every metric shares: extractors by name and streaming extraction.

An extractor maps one batch (a tensor) to (features, logits or None). Metrics only ever see the
resulting arrays, so a new metric never needs to know which network produced them.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from gankit.errors import UserError

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
# SHA-256 of pytorch-fid's release file (95,628,359 bytes). The file name carries its first 8 hex
# digits, the torch.hub convention; the full digest is the one torch-fidelity and other FID
# tools pin for this same file.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


class Extractor(Protocol):
    """Turns a batch into (features (B, D), logits (B, K) or None)."""

    name: str

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class RawExtractor:
    """Flattened values: for 2-D points, table rows, and tests."""

    name = "raw"

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, None]:
        return batch.reshape(len(batch), -1).float(), None


class ClassifierExtractor:
    """Penultimate features and logits of a `gankit.classifier.Classifier` trained on the real data."""

    name = "classifier"

    def __init__(self, classifier):
        self.classifier = classifier

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier.features_and_logits(batch)


class InceptionExtractor:
    """2048-d pool features and 1008 logits of the FID Inception-v3; images (N, C, H, W) in [-1, 1]."""

    name = "inception"

    def __init__(self, net: torch.nn.Module):
        self.net = net.eval()

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.ndim != 4 or batch.shape[1] not in (1, 3):
            raise UserError(
                f"inception features need images (N, 1 or 3, H, W), got shape {tuple(batch.shape)}"
            )
        if batch.shape[1] == 1:  # grayscale: the same image in all three channels
            batch = batch.expand(-1, 3, -1, -1)
        return self.net(batch.float())


def gankit_home() -> Path:
    """Where gankit keeps caches and weights: $GANKIT_HOME, default ~/.cache/gankit."""
    return Path(os.environ.get("GANKIT_HOME", Path.home() / ".cache" / "gankit")).expanduser()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inception_weights_path(weights: str | Path | None = None) -> Path:
    """The weights file to use: `weights` if given, else $GANKIT_HOME/weights/<INCEPTION_FILE>."""
    path = Path(weights).expanduser() if weights else gankit_home() / "weights" / INCEPTION_FILE
    if not path.is_file():
        raise UserError(
            f"Inception weights not found at {path}: download {INCEPTION_FILE} from {INCEPTION_URL} "
            f"and put it at {gankit_home() / 'weights' / INCEPTION_FILE} (or pass --weights FILE)"
        )
    return path


def load_inception(weights: str | Path | None = None, *, check_hash: bool = True) -> torch.nn.Module:
    """The FID Inception-v3 with pytorch-fid's weights, verified by SHA-256; never downloads."""
    from gankit.metrics.inception import FIDInceptionV3

    path = inception_weights_path(weights)
    if check_hash and (digest := sha256_file(path)) != INCEPTION_SHA256:
        raise UserError(
            f"{path} is not {INCEPTION_FILE}: SHA-256 {digest[:16]}... does not match the expected "
            f"{INCEPTION_SHA256[:16]}... (re-download it from {INCEPTION_URL})"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = FIDInceptionV3()
    # Files saved before torch 0.4 lack BatchNorm's num_batches_tracked, which inference never reads.
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise UserError(
            f"{path} does not fit the FID Inception-v3 (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return net.eval()


EXTRACTORS = ("raw", "classifier", "inception")


def get_extractor(name: str, *, weights: str | Path | None = None, classifier=None) -> Extractor:
    """Build an extractor by name. `classifier` is a Classifier or a path to one; `weights` is for inception."""
    if name == "raw":
        return RawExtractor()
    if name == "classifier":
        from gankit.classifier import Classifier

        if classifier is None:
            raise UserError(
                "--features classifier needs a classifier file (train one with `gankit classifier train`)"
            )
        if not isinstance(classifier, Classifier):
            classifier = Classifier.load(classifier)
        return ClassifierExtractor(classifier)
    if name == "inception":
        return InceptionExtractor(load_inception(weights))
    raise UserError(f"unknown feature extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")


def batched(x: np.ndarray | torch.Tensor, batch_size: int = 256) -> Iterable[torch.Tensor]:
    """Slices of an in-memory array as float tensors (for data that already fits in memory)."""
    for i in range(0, len(x), batch_size):
        yield torch.as_tensor(np.asarray(x[i : i + batch_size]), dtype=torch.float32)


def extract_features(
    batches: Iterable[torch.Tensor | np.ndarray | tuple],
    extractor: Extractor,
    *,
    progress: bool | None = None,
    total: int | None = None,
    desc: str = "features",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run `extractor` over batches one at a time; only the features are kept in memory.

    A batch may be (x, labels, ...): only x is used. The progress bar shows unless `progress` is
    False, or stderr is not a terminal and `progress` is None. `total` is the number of samples.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    feats, logits = [], []
    with torch.no_grad(), tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch in batches:
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            batch = torch.as_tensor(batch, dtype=torch.float32)
            f, lg = extractor(batch)
            feats.append(f.float().numpy())
            if lg is not None:
                logits.append(lg.float().numpy())
            bar.update(len(batch))
    if not feats:
        raise UserError("no samples to extract features from (empty data set?)")
    return np.concatenate(feats), (np.concatenate(logits) if logits else None)
