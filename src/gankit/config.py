"""Typed run configuration: dataclasses that round-trip to YAML, presets, and ``--set key=value`` overrides.

Every option a run uses lives here, so a run folder's ``config.yaml`` reproduces the run exactly.
Unknown keys and wrongly typed values are :class:`~gankit.errors.UserError`\\ s naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gankit.errors import UserError


@dataclass
class DataConfig:
    """Where the training data comes from and how it is shaped."""

    source: str = "digits"  # built-in name (digits, ring8, grid25) or a path (image folder, .npy, .npz)
    size: int = 16  # image side in pixels after resize + centre crop (images only)
    channels: int = 0  # 0: keep the data's own (1 grey, 3 RGB); 1 or 3 converts
    conditional: bool = False  # feed class labels to G and D (needs labelled data)
    batch_size: int = 64
    workers: int = 0  # image folders: decoding threads; 0 = one per CPU core, at most 8


@dataclass
class NetConfig:
    """One network. ``family`` picks the file under ``gankit/nets``; the rest are that family's knobs."""

    family: str = "dcgan"  # mlp | dcgan | resnet
    width: int = 64  # base channels (conv) or hidden units (mlp)
    depth: int = 3  # hidden layers (mlp only)
    norm: str = "batch"  # batch | instance | layer | none
    activation: str = "relu"  # relu | leaky_relu
    spectral_norm: bool = False
    mbstd: bool = False  # minibatch standard deviation layer (discriminator only)
    pack: int = 1  # PacGAN: the discriminator judges `pack` samples jointly (discriminator only)
    cond: str = "projection"  # conditional D: projection (Miyato & Koyama) | acgan (auxiliary classifier)
    mapping: int = 8  # stylegan2 generator: mapping-network layers (z -> w)
    # mlp generator: an InfoGAN code of this many values (one per cluster of the data; see loss.info); 0 = off,
    # -1 = count the separate clusters of the data at the start (HDBSCAN; one cluster = no code)
    codes: int = 0


@dataclass
class LossConfig:
    """The adversarial loss (a name in ``gankit.losses.LOSSES``) and its regularisers."""

    name: str = "nonsaturating"  # minimax | nonsaturating | hinge | wasserstein | lsgan | relativistic
    gp: float = 0.0  # WGAN-GP weight (lambda); 0 disables
    r1: float = 0.0  # R1 gamma on real data; 0 disables
    r1_every: int = 1  # lazy R1: apply every k discriminator steps, scaled by k
    aux: float = 1.0  # AC-GAN: weight of the auxiliary classification loss (d.cond=acgan)
    pl: float = 0.0  # stylegan2: path-length regularisation weight (paper: 2); 0 disables
    pl_every: int = 4  # lazy path-length regularisation: every k generator steps, scaled by k
    mixing: float = 0.0  # stylegan2: style-mixing probability (paper: 0.9); 0 disables
    info: float = 0.0  # InfoGAN: weight of the latent-code cross-entropy (needs g.codes; paper: 1); 0 disables


@dataclass
class OptimConfig:
    """One optimizer. Generator and discriminator each have their own (TTUR)."""

    name: str = "adam"  # adam | adamw
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    """The adversarial loop."""

    steps: int = 2000  # generator steps
    n_critic: int = 1  # discriminator steps per generator step
    accumulate: int = 1  # micro-batches per step (gradient accumulation)
    ema: float = 0.999  # generator EMA decay; 0 disables
    ema_start: int = 0  # steps before the EMA starts tracking (it copies G until then)
    lr_decay_start: float = 1.0  # fraction of steps at constant lr before a linear decay to 0; 1 keeps it constant
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    z_dim: int = 64
    threads: int = 0  # torch CPU threads; 0 leaves PyTorch's default
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 adds gradient scalers): the GPU speed-ups
    channels_last: bool = False  # images: NHWC memory format (faster convolutions on tensor cores)
    compile: bool = False  # torch.compile both networks (slow first steps; needs a C compiler on CPU)
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm)
    nonfinite: str = "skip"  # NaN/inf loss or gradient: skip (drop that update) | rollback | stop
    augment: str = "none"  # images: none | diffaugment (colour, translation, cutout) | ada (adaptive, Karras 2020)
    ada_target: float = 0.6  # ada: target for E[sign(D(real))]; p rises above it, falls below
    ada_kimg: float = 20.0  # ada: thousands of real images for p to move from 0 to 1


@dataclass
class LogConfig:
    """What the run folder receives and how often."""

    every: int = 50  # metrics.jsonl cadence (also when losses are read back from the device)
    sample_every: int = 500  # sample grid cadence
    checkpoint_every: int = 500
    keep_last: int = 3  # checkpoints kept (plus the best when one is tracked)
    checkpoints: bool = True  # False: none written (a fit whose run folder is thrown away, e.g. TabularGAN.fit)
    n_samples: int = 64  # images in each sample grid
    tensorboard: bool = False
    progress: bool = True  # progress bar on stderr

    def validate(self) -> None:
        for key in ("every", "sample_every", "checkpoint_every", "keep_last"):
            if getattr(self, key) <= 0:
                raise UserError(f"log.{key} must be positive, got {getattr(self, key)}")


@dataclass
class HealthConfig:
    """Training-health monitoring (``gankit.health``): signals in metrics.jsonl, live diagnoses."""

    enabled: bool = True
    on_failure: str = "warn"  # warn | stop | rollback
    diversity_n: int = 256  # generated and real samples compared for the diversity signal
    rollback_lr_factor: float = 0.5  # learning rates are multiplied by this after a rollback
    warmup: int = 600  # steps before balance and diversity findings count (every GAN starts unbalanced)
    lasting: int = 4  # logged records in a row a condition must hold to become a finding


@dataclass
class EvalConfig:
    """Periodic evaluation during training (``gankit.metrics``)."""

    every: int = 0  # generator steps between evaluations; 0 disables
    metrics: str = "fid"  # comma-separated metric names
    features: str = "classifier"  # classifier | inception | raw (classifier falls back to raw without labels)
    n: int = 1000  # generated samples per evaluation
    best: str = "fid"  # metric that picks the best checkpoint (lower is better for fid/kid); "" keeps none
    classifier: str = ""  # classifier file for features=classifier; "": one trained on the data (cached)
    weights: str = ""  # Inception weights file for features=inception; "": $GANKIT_HOME/weights


@dataclass
class Config:
    """A whole training run."""

    data: DataConfig = field(default_factory=DataConfig)
    g: NetConfig = field(default_factory=NetConfig)
    d: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    opt_g: OptimConfig = field(default_factory=OptimConfig)
    opt_d: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write YAML atomically (temporary file, then rename), so a crash never leaves half a config."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_yaml())
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return from_dict(cls, data)

    @classmethod
    def load(cls, path: str | Path) -> Config:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
        except RecursionError:
            raise UserError(f"{path}: nested too deeply to be a gankit config") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a mapping of sections at the top level")
        return from_dict(cls, data, where=str(path))

    def validate(self) -> Config:
        """Range checks that types alone cannot express."""
        positive = {
            "data.size": self.data.size,
            "data.batch_size": self.data.batch_size,
            "g.width": self.g.width,
            "d.width": self.d.width,
            "train.n_critic": self.train.n_critic,
            "train.accumulate": self.train.accumulate,
            "train.z_dim": self.train.z_dim,
            "loss.r1_every": self.loss.r1_every,
            "d.pack": self.d.pack,
        }
        for key, value in positive.items():
            if value <= 0:
                raise UserError(f"{key} must be positive, got {value}")
        self.log.validate()
        if self.train.steps < 0:
            raise UserError(f"train.steps must be >= 0, got {self.train.steps}")
        if not 0.0 <= self.train.ema < 1.0:
            raise UserError(f"train.ema must be in [0, 1), got {self.train.ema}")
        if not 0.0 <= self.train.lr_decay_start <= 1.0:
            raise UserError(f"train.lr_decay_start must be in [0, 1], got {self.train.lr_decay_start}")
        for key, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            if opt.lr <= 0:
                raise UserError(f"{key}.lr must be positive, got {opt.lr}")
        if self.data.workers < 0:
            raise UserError(f"data.workers must be >= 0 (0 = one per core), got {self.data.workers}")
        if self.data.channels not in (0, 1, 3):
            raise UserError(f"data.channels must be 0 (keep), 1 or 3, got {self.data.channels}")
        if self.data.batch_size % (self.d.pack * self.train.accumulate):
            raise UserError(
                f"data.batch_size ({self.data.batch_size}) must be divisible by d.pack x train.accumulate "
                f"({self.d.pack} x {self.train.accumulate})"
            )
        if self.d.cond not in ("projection", "acgan"):
            raise UserError(f"d.cond must be projection or acgan, got '{self.d.cond}'")
        if self.d.cond == "acgan" and self.data.conditional and self.d.pack > 1:
            raise UserError("d.cond=acgan classifies single samples; it cannot be combined with d.pack > 1")
        if self.train.precision not in ("fp32", "bf16", "fp16"):
            raise UserError(f"train.precision must be fp32, bf16 or fp16, got '{self.train.precision}'")
        if self.train.nonfinite not in ("skip", "rollback", "stop"):
            raise UserError(f"train.nonfinite must be skip, rollback or stop, got '{self.train.nonfinite}'")
        if self.health.on_failure not in ("warn", "stop", "rollback"):
            raise UserError(f"health.on_failure must be warn, stop or rollback, got '{self.health.on_failure}'")
        if self.eval.every < 0:
            raise UserError(f"eval.every must be >= 0, got {self.eval.every}")
        if self.train.augment not in ("none", "diffaugment", "ada"):
            raise UserError(f"train.augment must be none, diffaugment or ada, got '{self.train.augment}'")
        if self.loss.pl_every <= 0 or not 0.0 <= self.loss.mixing <= 1.0 or self.loss.pl < 0:
            raise UserError("loss.pl_every must be positive, loss.pl >= 0 and loss.mixing in [0, 1]")
        if self.loss.gp < 0 or self.loss.r1 < 0 or self.loss.info < 0:
            raise UserError("loss.gp, loss.r1 and loss.info must be >= 0")
        if self.g.codes < -1:
            raise UserError(f"g.codes must be >= 0, or -1 to count the clusters of the data; got {self.g.codes}")
        if self.d.codes:
            raise UserError("d.codes is not a discriminator setting; set g.codes (and loss.info for the Q head in D)")
        if self.g.codes and (self.g.family != "mlp" or self.train.z_dim < 3):
            raise UserError("g.codes needs g.family=mlp and train.z_dim >= 3 (two latent coordinates make the code)")
        if self.g.codes and self.loss.info <= 0:  # measured: G ignored a code that nothing asked it to keep
            raise UserError("g.codes needs loss.info > 0 (e.g. 1): without the InfoGAN loss the generator ignores the code")
        if self.loss.info > 0 and (not self.g.codes or self.d.family != "mlp" or self.d.pack > 1
                                   or (self.data.conditional and self.d.cond == "acgan")):
            raise UserError("loss.info (InfoGAN) needs g.codes > 0, d.family=mlp and d.pack=1, and no AC-GAN head")
        return self


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass with strict keys and types


def _suggest(key: str, valid: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UserError:
                pass
        raise UserError(f"{key}: expected {tp}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e308 else math.inf
        elif isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise UserError(f"{key}: expected a finite number, got {value!r:.40}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            (item_tp,) = typing.get_args(tp)[:1] or (Any,)
            return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    elif tp is Any:
        return value
    name = getattr(tp, "__name__", str(tp))
    raise UserError(f"{key}: expected {name}, got {value!r}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "", where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys with a suggestion."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping{f' for {prefix[:-1]!r}' if prefix else ''}, got {data!r:.60}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            valid = [f"{prefix}{k}" for k in fields]
            raise UserError(f"{where}: unknown key '{full}'{_suggest(full, valid)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise UserError(f"{where}: '{full}' must be a mapping")
            kwargs[key] = from_dict(tp, value, prefix=f"{full}.", where=where)
        else:
            kwargs[key] = _coerce(value, tp, f"{where}: {full}")
    return cls(**kwargs)


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key a config accepts (for suggestions and ``--help``)."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += all_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def apply_overrides(config: Any, overrides: typing.Iterable[str]) -> Any:
    """Apply ``key=value`` strings (values parsed as YAML scalars) to a config dataclass."""
    data = dataclasses.asdict(config)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise UserError(f"--set: unknown key '{key}'{_suggest(key, all_keys(type(config)))}")
            node = node[part]
        if parts[-1] not in node or isinstance(node[parts[-1]], dict):
            raise UserError(f"--set: unknown key '{key}'{_suggest(key, all_keys(type(config)))}")
        # A string where a number is expected stays a string so the type check names the key.
        node[parts[-1]] = value
    return from_dict(type(config), data, where="--set")


# ---------------------------------------------------------------------------------------------
# presets: complete, tested starting points


def _digits() -> Config:
    # DCGAN on 16x16 digits: small enough to give recognisable digits in about two minutes on 2 cores.
    return Config(
        data=DataConfig(source="digits", size=16, batch_size=64),
        g=NetConfig(family="dcgan", width=32),
        d=NetConfig(family="dcgan", width=32, norm="none", activation="leaky_relu", spectral_norm=True),
        loss=LossConfig(name="nonsaturating"),
        opt_g=OptimConfig(lr=2e-4, beta1=0.5),
        opt_d=OptimConfig(lr=2e-4, beta1=0.5),
        train=TrainConfig(steps=2500, ema=0.999, z_dim=64),
        log=LogConfig(every=50, sample_every=500, checkpoint_every=1000),
    )


def _digits_cond() -> Config:
    # Class-conditional DCGAN on 32x32 digits: label embedding in G; an AC-GAN discriminator. A real-data
    # classifier reads back 98.7 % of its labels, with varied digits within each class (BENCHMARKS.md).
    cfg = _digits()
    cfg.data = DataConfig(source="digits", size=32, batch_size=64, conditional=True)
    cfg.d.cond = "acgan"
    cfg.train.steps = 3000
    return cfg


def _toy(source: str) -> Config:
    # Mixture-of-Gaussians protocol of VEEGAN/PacGAN. A minibatch-std layer lets D see how spread a batch
    # is (without it grid25 lost most of its modes), R1 and a generator EMA of 0.99 keep samples tight
    # around the centres. An InfoGAN code with one value per mode (8 or 25: the preset knows its data) lets G
    # jump between modes: a continuous map of a connected z-space left 5-20 % of samples on bridges between
    # modes (HQ 95 % ring8, 81 % grid25); with the code every sample lands on a mode. Tuned on seeds 0 and 1
    # (the benchmark reports seeds 0-4); figures and the sweep in BENCHMARKS.md.
    # At 1e-3 grid25 lost 8 modes on one seed in five; 5e-4 kept all 25 on every seed.
    lr = 5e-4 if source == "grid25" else 1e-3
    modes = {"ring8": 8, "grid25": 25}[source]
    return Config(
        data=DataConfig(source=source, batch_size=256),
        g=NetConfig(family="mlp", width=128, depth=3, norm="none", codes=modes),
        d=NetConfig(family="mlp", width=128, depth=3, norm="none", activation="leaky_relu", mbstd=True),
        loss=LossConfig(name="nonsaturating", r1=0.1, r1_every=4, info=1.0),  # lazy R1: fewer double-backwards
        opt_g=OptimConfig(lr=lr, beta1=0.5, beta2=0.99),
        opt_d=OptimConfig(lr=lr, beta1=0.5, beta2=0.99),
        # EMA 0.999 blurs the modes together (BENCHMARKS.md); one thread: nets this small run no faster on two.
        # z: two coordinates make the code, four stay continuous.
        train=TrainConfig(steps=4000, ema=0.99, z_dim=6, threads=1),
        log=LogConfig(every=100, sample_every=1000, checkpoint_every=2000, n_samples=2500),
    )


PRESETS: dict[str, typing.Callable[[], Config]] = {
    "digits": _digits,
    "digits-cond": _digits_cond,
    "ring8": lambda: _toy("ring8"),
    "grid25": lambda: _toy("grid25"),
}


def preset(name: str) -> Config:
    """A named preset (``gankit train --preset NAME``)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}'{_suggest(name, PRESETS)}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()
