"""A small classifier trained on the real data: domain features for metrics and a label oracle.

Images (N, C, H, W) in [-1, 1] get `SmallCNN`; vectors (N, D) get `MLP`, with inputs standardised by
statistics of the training set. Saved as one safetensors file whose metadata holds the JSON
description, so loading never runs pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.nn import functional as F

from gankit.errors import UserError

FEATURE_DIM = 128


class SmallCNN(nn.Module):
    """Three conv stages and global pooling: fast on CPU, any image size >= 8x8."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 32, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations: the embedding used for domain FID (FCD) and k-NN metrics."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """Two hidden layers for vectors (2-D points, table rows, flattened sequences)."""

    def __init__(self, in_dim: int, n_classes: int, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, 256), nn.ReLU(), nn.Linear(256, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class ClassifierSpec:
    """What is needed to rebuild the network; stored as JSON beside the weights."""

    kind: str  # "cnn" or "mlp"
    input_shape: list[int]  # one sample's shape, e.g. [1, 32, 32] or [2]
    n_classes: int
    train_accuracy: float = float("nan")
    classes: list[str] = field(default_factory=list)  # class names by index; empty: the indices


def _build(spec: ClassifierSpec) -> nn.Module:
    if spec.kind == "cnn":
        return SmallCNN(spec.input_shape[0], spec.n_classes)
    if spec.kind == "mlp":
        return MLP(spec.input_shape[0], spec.n_classes)
    raise UserError(f"unknown classifier kind {spec.kind!r} (expected 'cnn' or 'mlp')")


class Classifier:
    """A trained network plus the input convention it was trained with."""

    def __init__(self, net: nn.Module, spec: ClassifierSpec, mean: torch.Tensor, std: torch.Tensor):
        self.net = net.eval()
        self.spec = spec
        # Vectors are standardised; images are already in [-1, 1] (mean 0, std 1 leaves them alone).
        self.mean, self.std = mean, std

    @property
    def n_classes(self) -> int:
        return self.spec.n_classes

    def _prepare(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        if list(x.shape[1:]) != self.spec.input_shape:
            raise UserError(
                f"classifier expects samples of shape {self.spec.input_shape}, got {list(x.shape[1:])}"
            )
        return (x - self.mean) / self.std

    @torch.no_grad()
    def _run(self, x: np.ndarray | torch.Tensor, fn, batch_size: int) -> np.ndarray:
        x = self._prepare(x)
        return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()

    def logits(self, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Unnormalised class scores, (N, n_classes)."""
        return self._run(x, self.net, batch_size)

    def features(self, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Penultimate features, (N, 128)."""
        return self._run(x, self.net.features, batch_size)

    def features_and_logits(self, x: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both outputs of one forward pass on one batch, as tensors (used by streaming extraction)."""
        with torch.no_grad():
            feats = self.net.features(self._prepare(x))
            return feats, self.net.head(feats)

    def predict_proba(self, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Softmax class probabilities, (N, n_classes)."""
        return torch.softmax(torch.from_numpy(self.logits(x, batch_size)), dim=1).numpy()

    def predict(self, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Most likely class index per sample."""
        return self.logits(x, batch_size).argmax(axis=1)

    def accuracy(self, x: np.ndarray | torch.Tensor, y: np.ndarray) -> float:
        """Fraction of samples whose predicted class equals y."""
        return float((self.predict(x) == np.asarray(y)).mean())

    def save(self, path: str | Path) -> None:
        """Write weights and JSON spec to one .safetensors file, atomically (a crash leaves the old file)."""
        from gankit.checkpoint import atomic_write_bytes

        tensors = {f"net.{k}": v.contiguous() for k, v in self.net.state_dict().items()}
        tensors["input.mean"], tensors["input.std"] = self.mean.contiguous(), self.std.contiguous()
        data = safetensors_bytes(tensors, metadata={"gankit.classifier": json.dumps(asdict(self.spec))})
        atomic_write_bytes(Path(path), data)

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """Read a file written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"classifier file not found: {path} (train one with `gankit classifier train`)")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = (f.metadata() or {}).get("gankit.classifier")
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise UserError(f"{path} is not a gankit classifier file: {e}") from None
        if meta is None:
            raise UserError(f"{path} is a safetensors file but not a gankit classifier (no metadata)")
        try:
            spec = ClassifierSpec(**json.loads(meta))
            net = _build(spec)
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            return cls(net, spec, tensors["input.mean"], tensors["input.std"])
        except (TypeError, ValueError, KeyError, RuntimeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(f"{path}: damaged or incompatible gankit classifier ({reason})") from None


def train_classifier(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    epochs: int = 8,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 5e-3,
    augment: bool = True,
    classes: list[str] | None = None,
) -> Classifier:
    """Train a classifier on images (N, C, H, W) in [-1, 1] or vectors (N, D); labels are 0..K-1.

    Images get random shifts of up to 2 pixels (`augment`), which buys a few points of accuracy on
    small data sets like digits. Deterministic for a given seed on one machine.
    """
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long()
    if x.ndim not in (2, 4):
        raise UserError(
            f"classifier data must be images (N, C, H, W) or vectors (N, D), got shape {tuple(x.shape)}"
        )
    if len(x) != len(y) or len(x) < 2:
        raise UserError(f"need matching samples and labels (at least 2), got {len(x)} and {len(y)}")
    if y.min() < 0:
        raise UserError("labels must be integers 0..K-1")
    n_classes = int(y.max()) + 1
    kind = "cnn" if x.ndim == 4 else "mlp"
    if kind == "mlp":
        mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    else:
        mean, std = torch.zeros(x.shape[1:]), torch.ones(x.shape[1:])
    if classes:
        if len(classes) < n_classes:
            raise UserError(f"labels go up to {n_classes - 1} but only {len(classes)} class names were given")
        n_classes = len(classes)
    spec = ClassifierSpec(kind=kind, input_shape=list(x.shape[1:]), n_classes=n_classes,
                          classes=[str(c) for c in classes or []])

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = _build(spec)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    xn = (x - mean) / std
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            xb = xn[idx]
            if kind == "cnn" and augment:
                xb = _random_shift(xb, 2, gen)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    clf = Classifier(net, spec, mean, std)
    spec.train_accuracy = clf.accuracy(x, y.numpy())
    return clf


def _random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    # One shift per batch keeps this cheap; over many batches the network still sees every offset.
    dx, dy = torch.randint(-max_shift, max_shift + 1, (2,), generator=gen).tolist()
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    h, w = x.shape[2:]
    return padded[:, :, max_shift + dy : max_shift + dy + h, max_shift + dx : max_shift + dx + w]
