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
        self.rules = Rules(warmup=self.cfg.warmup, lasting=self.cfg.lasting)
        self.records: list[dict[str, Any]] = []
        self.reported: set[str] = set()
        self.rollbacks = 0
        self.loaded = False
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
        if not self.loaded:  # a resumed run: the earlier records (already cut back to the checkpoint)
            self.load_history(Path(trainer.run_dir), record["step"])
        if self.enabled:
            record.update(self.signals())
            record.update(self.trends(record))
            if not all(math.isfinite(v) for v in record.values() if isinstance(v, float)):
                record["nonfinite"] = 1
            self.check(trainer, record)
        if self.tensorboard and trainer.state.step == record["step"]:
            self.write_tensorboard(trainer, record)

    def load_history(self, run_dir: Path, step: int) -> None:
        """Earlier records and findings of a resumed run, so that its diagnosis sees the whole run."""
        self.loaded = True
        self.records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("step", 0) < step]
        for e in read_jsonl(run_dir / "events.jsonl"):
            if e.get("step", 0) < step and e.get("event") == "health":
                self.reported.add(e["code"])
            elif e.get("event") == "rollback":
                self.rollbacks += 1

    def trends(self, record: dict[str, Any]) -> dict[str, float]:
        """Slopes of the losses per 1000 steps over the last ``2 x lasting`` records (this one included)."""
        recent = [r for r in self.records if r["step"] < record["step"]][-2 * self.rules.lasting + 1 :] + [record]
        out = {}
        for key in ("loss_d", "loss_g"):
            pts = [(r["step"], r[key]) for r in recent if isinstance(r.get(key), float) and math.isfinite(r[key])]
            if len(pts) >= 3:
                x, y = np.array(pts).T
                out[f"{key}_trend"] = float(np.polyfit(x / 1000.0, y, 1)[0])
        return out

    def check(self, trainer: Any, record: dict[str, Any]) -> None:
        """Diagnose the run so far; warn once per new finding and act on ``on_failure``."""
        # after a rollback the records beyond the checkpoint are void
        self.records = [r for r in self.records if r["step"] < record["step"]] + [record]
        findings = diagnose(self.records, rules=self.rules)
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


@dataclass(frozen=True)
class Rules:
    """Detection thresholds. A condition counts only when it holds for ``lasting`` logged records in a
    row; findings about balance and diversity ignore the first ``warmup`` steps, when every GAN is
    unbalanced and collapsed. Tuned on benchmarks/health_suite.py: planted failures vs healthy presets."""

    lasting: int = 4
    warmup: int = 600  # steps
    d_wins: float = 0.7  # D(real) - D(fake) above this: D tells real from fake almost perfectly
    d_fooled: float = 0.15  # D(fake) - D(real) above this: D rates fakes as more real than reals
    grad_collapse: float = 0.1  # G's gradient norm below this fraction of its peak so far ...
    grad_floor: float = 1e-3  # ... or below this absolute value
    equilibrium: float = 0.15  # converging: D(real) and D(fake) within this of 0.5
    stable: float = 0.15  # converging: relative spread of the diversity signal below this
    diversity_low: float = 0.5  # mode collapse: generated spread below this fraction of the real spread
    coverage_low: float = 0.6  # mode collapse: fewer than this fraction of the known modes/classes covered ...
    d_separates: float = 0.4  # ... while D(real) - D(fake) is above this, or
    coverage_drop: float = 0.5  # coverage this far below its best so far
    swing: float = 0.25  # oscillation: D(real) - D(fake) changes by more than this between records ...
    swing_share: float = 0.5  # ... in at least this share of the steps of a window of 2 x lasting records
    blowup: float = 20.0  # divergence: a loss or gradient norm this many times its median so far
    blowup_floor: float = 10.0  # ... and above this in absolute value; also the ceiling of D's loss under
    # a probabilistic loss (2 ln 2 = 1.39 at chance): above it for `lasting` records, D has blown up
    blowup_once: float = 100.0  # a probabilistic D loss above this even in one record: logits of that size
    # on the wrong side, which no healthy run reaches (a learning rate far too high does, in its first steps)


RULES = Rules()

REMEDIES = {
    "converging": "nothing to fix: keep training and pick the checkpoint by an evaluation metric (gankit eval)",
    "mode_collapse": "give D a view of sample variety (--set d.pack=2 or d.mbstd=true), add R1 "
    "(--set loss.r1=1), lower opt_g.lr, or enlarge the generator (g.width, g.depth) if it is small",
    "vanishing_gradients": "use the non-saturating loss (--set loss.name=nonsaturating) or hinge, and weaken D: "
    "lower opt_d.lr, add R1 (--set loss.r1=1) or spectral norm (--set d.spectral_norm=true)",
    "d_overpowers": "weaken D or strengthen G: lower opt_d.lr or train.n_critic, add R1 (--set loss.r1=1) or "
    "d.spectral_norm=true, or enlarge the generator",
    "g_overpowers": "strengthen D: raise opt_d.lr (TTUR, e.g. 2-4x opt_g.lr), set train.n_critic=2, or widen D",
    "oscillation": "lower both learning rates (x0.5), use beta1=0.5 or 0, add R1 (--set loss.r1=1) to damp the "
    "rotation around the equilibrium, and sample from the EMA generator",
    "divergence": "lower both learning rates (x0.1), add a gradient penalty or R1 (loss.gp / loss.r1), and use "
    "--set health.on_failure=rollback to return to the last healthy checkpoint automatically",
}

UNHEALTHY = ("mode_collapse", "vanishing_gradients", "d_overpowers", "g_overpowers", "oscillation", "divergence")


@dataclass
class Finding:
    """One diagnosis: what (``code``), when (steps), why (``evidence``, numbers) and what to change."""

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


class _Series:
    """The records as aligned numpy columns (NaN where a record lacks a key)."""

    def __init__(self, records: list[dict[str, Any]]):
        by_step = {int(r["step"]): r for r in records if "step" in r}  # the last record of a step wins
        self.records = [by_step[s] for s in sorted(by_step)]
        self.steps = np.array([r["step"] for r in self.records], dtype=np.int64)

    def __getitem__(self, key: str) -> np.ndarray:
        return np.array([_num(r.get(key)) for r in self.records], dtype=np.float64)

    def has(self, key: str) -> bool:
        return any(key in r for r in self.records)


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _spans(mask: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Index ranges [i, j] where ``mask`` holds for at least ``n`` records in a row."""
    spans, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            if i - start >= n:
                spans.append((start, i - 1))
            start = None
    return spans


def _finding(code: str, s: _Series, mask: np.ndarray, n: int, evidence: dict[str, np.ndarray],
             **extra: Any) -> Finding | None:
    """A finding over the records where ``mask`` lasts ``n`` records; evidence = medians there."""
    spans = _spans(mask, n)
    if not spans:
        return None
    idx = np.concatenate([np.arange(i, j + 1) for i, j in spans])
    ev: dict[str, Any] = {}
    for key, values in evidence.items():
        v = values[idx]
        v = v[np.isfinite(v)]
        if len(v):
            ev[key] = float(f"{np.median(v):.4g}")
    ev.update(extra)
    ev["records"] = len(idx)
    return Finding(code, int(s.steps[spans[0][0]]), int(s.steps[spans[-1][1]]), ev, REMEDIES[code])


def _running_peak(x: np.ndarray) -> np.ndarray:
    return np.fmax.accumulate(np.where(np.isfinite(x), x, -np.inf))


def _running_median_before(x: np.ndarray) -> np.ndarray:
    """Median of the finite values before each position (NaN for the first three)."""
    out = np.full(len(x), np.nan)
    for i in range(3, len(x)):
        prev = x[:i][np.isfinite(x[:i])]
        if len(prev) >= 3:
            out[i] = np.median(prev)
    return out


def diagnose(records: list[dict[str, Any]], events: list[dict[str, Any]] | None = None,
             rules: Rules = RULES) -> list[Finding]:
    """Findings for a run from its logged records (metrics.jsonl) and events (events.jsonl).

    A pure function: the live monitor and ``gankit doctor`` call it on the same data and agree.
    Diagnoses that read D(real) and D(fake) as probabilities (converging, vanishing_gradients,
    d_overpowers, g_overpowers) need a probabilistic loss; for other losses the logged values are
    sigmoids of raw scores whose level means nothing, and only the loss-free diagnoses apply.
    """
    s = _Series(records)
    findings: list[Finding] = []
    if len(s.steps):
        for check in (_divergence, _vanishing_and_imbalance, _oscillation, _mode_collapse, _converging):
            findings += [f for f in check(s, rules) if f is not None]
    findings += _from_events(events or [], findings)
    return sorted(findings, key=lambda f: (f.first_step, f.code))


def verdict(findings: list[Finding]) -> str:
    return "unhealthy" if any(f.code in UNHEALTHY for f in findings) else "healthy"


def _probabilistic(s: _Series) -> bool:
    return s.has("d_real") and all(r.get("d_output", "probability") == "probability" for r in s.records)


def _divergence(s: _Series, rules: Rules) -> list[Finding | None]:
    nonfinite = np.array([bool(r.get("nonfinite")) or any(isinstance(v, float) and not math.isfinite(v)
                                                          for v in r.values()) for r in s.records])
    bad_keys = sorted({k for r, bad in zip(s.records, nonfinite) if bad for k, v in r.items()
                       if isinstance(v, float) and not math.isfinite(v)})
    found = [_finding("divergence", s, nonfinite, 1, {}, nonfinite_keys=",".join(bad_keys) or "nonfinite")]
    if found[0] is not None:
        return found
    # a loss or gradient norm blows up: far above its own median so far, lasting two records
    blown = np.zeros(len(s.steps), dtype=bool)
    evidence: dict[str, np.ndarray] = {}
    for key in ("loss_d", "loss_g", "grad_norm_d", "grad_norm_g"):
        x = np.abs(s[key])
        ref = _running_median_before(x)
        hit = (x > rules.blowup * ref) & (x > rules.blowup_floor)
        if hit.any():
            blown |= hit
            evidence[key] = x
            evidence[f"{key}_before"] = ref
    kept = np.zeros(len(s.steps), dtype=bool)  # blown for two records in a row, or absurd once
    if _probabilistic(s):  # blown from the first records on: no healthy median to compare with
        loss = s["loss_d"]  # regularisers included: an exploding R1 penalty is D diverging too
        high = loss > rules.blowup_floor
        if _spans(high, rules.lasting):
            blown |= high
            evidence["loss_d"] = loss
        absurd = loss > rules.blowup_once
        if absurd.any():
            kept |= absurd
            evidence["loss_d"] = loss
    for i, j in _spans(blown, 2):
        kept[i : j + 1] = True
    return [_finding("divergence", s, kept, 1, evidence)]


def _vanishing_and_imbalance(s: _Series, rules: Rules) -> list[Finding | None]:
    if not _probabilistic(s):
        return []
    d_real, d_fake, g_norm = s["d_real"], s["d_fake"], s["grad_norm_g"]
    gap = d_real - d_fake
    wins = gap > rules.d_wins
    peak = _running_peak(g_norm)
    collapsed = (g_norm < rules.grad_collapse * peak) | (g_norm < rules.grad_floor)
    vanishing = wins & collapsed
    # D winning is the weaker diagnosis only where vanishing gradients hold for a finding's length: a gradient
    # norm that dips below its peak now and then must not hide a D that wins throughout (it did, on a ring8 run)
    held = np.zeros_like(vanishing)
    for i, j in _spans(vanishing, rules.lasting):
        held[i : j + 1] = True
    warm = s.steps >= rules.warmup
    ev = {"d_real": d_real, "d_fake": d_fake, "acc_real": s["acc_real"], "acc_fake": s["acc_fake"]}
    return [
        _finding("vanishing_gradients", s, vanishing, rules.lasting, {**ev, "grad_norm_g": g_norm,
                                                                      "grad_norm_g_peak": peak}),
        _finding("d_overpowers", s, wins & ~held & warm, rules.lasting, {**ev, "grad_norm_g": g_norm,
                                                                              "loss_g": s["loss_g"]}),
        _finding("g_overpowers", s, (-gap > rules.d_fooled) & warm, rules.lasting, {**ev, "loss_d": s["loss_d"]}),
    ]


def _oscillation(s: _Series, rules: Rules) -> list[Finding | None]:
    """D's verdict swings back and forth: in a window of 2 x lasting records, at least ``swing_share``
    of the changes of D(real) - D(fake) between records are large and reverse the previous change."""
    if not _probabilistic(s):
        return []
    gap = s["d_real"] - s["d_fake"]
    change = np.diff(gap, prepend=np.nan)
    before = np.concatenate([[np.nan], change[:-1]])
    reversing = (np.abs(change) > rules.swing) & (np.sign(change) == -np.sign(before))
    w = 2 * rules.lasting
    swinging = np.zeros(len(gap), dtype=bool)
    for i in range(w - 1, len(gap)):
        if reversing[i - w + 1 : i + 1].sum() >= rules.swing_share * w:
            swinging[i - w + 1 : i + 1] = True
    return [_finding("oscillation", s, swinging & (s.steps >= rules.warmup), rules.lasting,
                     {"gap_change": np.abs(change), "d_real": s["d_real"], "d_fake": s["d_fake"]})]


def _mode_collapse(s: _Series, rules: Rules) -> list[Finding | None]:
    """Generated samples spread much less than real ones; or coverage of the known modes/classes fell
    far below its best; or it stays low while D still tells real from fake easily (with D at 0.5 low
    coverage only means samples not yet tight around the modes, which the signal cannot tell apart)."""
    warm = s.steps >= rules.warmup
    diversity = s["diversity"]
    low = diversity < rules.diversity_low
    ev = {"diversity": diversity}
    separates = s["d_real"] - s["d_fake"] > rules.d_separates if _probabilistic(s) else np.zeros(len(low), bool)
    for key in ("mode_coverage", "class_coverage"):
        if s.has(key):
            cov, best = s[key], _running_peak(s[key])
            low |= (cov < best - rules.coverage_drop) | ((cov < rules.coverage_low) & separates)
            ev[key] = cov
            ev[f"{key}_best"] = best
    if separates.any():
        ev["d_real"], ev["d_fake"] = s["d_real"], s["d_fake"]
    return [_finding("mode_collapse", s, low & warm, rules.lasting, ev)]


def _converging(s: _Series, rules: Rules) -> list[Finding | None]:
    """The last ``lasting`` records sit near D = 0.5 with a stable, healthy diversity signal."""
    if not _probabilistic(s) or len(s.steps) < rules.lasting:
        return []
    d_real, d_fake, diversity = s["d_real"], s["d_fake"], s["diversity"]
    near = (np.abs(d_real - 0.5) < rules.equilibrium) & (np.abs(d_fake - 0.5) < rules.equilibrium)
    tail = slice(len(near) - rules.lasting, None)
    if not (near[tail].all() and (s.steps[tail] >= rules.warmup).all()):
        return []
    div = diversity[tail]
    if np.isfinite(div).all() and (div.min() < rules.diversity_low or div.std() > rules.stable * div.mean()):
        return []
    mask = np.zeros(len(near), dtype=bool)
    mask[tail] = True
    return [_finding("converging", s, mask, rules.lasting, {"d_real": d_real, "d_fake": d_fake,
                                                            "diversity": diversity})]


def _from_events(events: list[dict[str, Any]], findings: list[Finding]) -> list[Finding]:
    """Rollbacks erase the diverged records from metrics.jsonl, and skipped non-finite updates may
    leave none; the events (health rollbacks, the engine's train.nonfinite actions) keep the evidence."""
    rollbacks = [e for e in events if e.get("event") == "rollback"]
    faults = [e for e in events if e.get("event") == "nonfinite"]
    if not rollbacks and not faults:
        return []
    ev: dict[str, Any] = {"rollbacks": len(rollbacks), "nonfinite_events": len(faults)}
    for f in findings:
        if f.code == "divergence":
            f.evidence.update(ev)
            return []
    if rollbacks:
        ev.update(reason=str(rollbacks[0].get("reason", "")), lr_g=rollbacks[-1].get("lr_g"),
                  lr_d=rollbacks[-1].get("lr_d"))
    starts = [int(e.get("to_step", e.get("step", 0))) for e in rollbacks]
    starts += [int(e.get("at_step", e.get("step", 0))) for e in faults]
    ends = [int(e.get("from_step", e.get("step", 0))) for e in rollbacks]
    ends += [int(e.get("at_step", e.get("step", 0))) for e in faults]
    return [Finding("divergence", min(starts), max(ends), ev, REMEDIES["divergence"])]


# ---------------------------------------------------------------------------------------------
# reading a run folder


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a torn last line (a run killed mid-write) is skipped."""
    if not path.is_file():
        return []
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise UserError(f"{path}: line {i + 1} is not valid JSON") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}: line {i + 1} is not a JSON object")
        out.append(record)
    return out


def rules_for(run_dir: Path) -> Rules:
    """The thresholds a run was monitored with (its config's health section), or the defaults."""
    path = Path(run_dir) / "config.yaml"
    if path.is_file():
        cfg = Config.load(path)
        return Rules(warmup=cfg.health.warmup, lasting=cfg.health.lasting)
    return RULES


def doctor(run_dir: str | Path) -> dict[str, Any]:
    """The diagnosis of a run folder: ``{"findings": [...], "verdict": "healthy" | "unhealthy"}``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    records = read_jsonl(run_dir / "metrics.jsonl")
    if not records:
        raise UserError(f"{run_dir}: no metrics.jsonl records to diagnose (has the run logged a step yet?)")
    findings = diagnose(records, read_jsonl(run_dir / "events.jsonl"), rules_for(run_dir))
    return {"findings": [f.to_dict() for f in findings], "verdict": verdict(findings)}
