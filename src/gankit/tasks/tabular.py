"""Synthetic tables: a CTGAN-class conditional tabular GAN (Xu et al., 2019) on the shared engine.

    gan = TabularGAN(epochs=300).fit(df, discrete_columns=["sex"])
    synth = gan.sample(1000, conditions={"sex": "F"}, seed=0)
    gan.save("model/");  TabularGAN.load("model/").sample(1000, seed=0)  # the same rows

The pieces: :mod:`gankit.data.tables` (types), :mod:`gankit.data.table_transform` (mode-specific
normalisation), :mod:`gankit.data.table_sampler` (training-by-sampling), :mod:`gankit.nets.tabular`
(generator and PacGAN critic); this file is the loss (WGAN-GP plus the conditional cross-entropy) and
the scikit-learn-style API. Models are saved as safetensors + JSON, never pickle.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from gankit import checkpoint as ckpt
from gankit import distributed, losses
from gankit.config import LogConfig, OptimConfig, TrainConfig
from gankit.data.table_sampler import ConditionalBatches
from gankit.data.table_transform import TableTransformer
from gankit.data.tables import infer_types
from gankit.engine import Batch, Logs, Trainer, resolve_device, seed_everything
from gankit.errors import UserError
from gankit.nets.tabular import PackedCritic, TabularGenerator

FORMAT = "gankit-tabular"
# 2: the generator's layers keep their weights as (w_h, w_x) blocks and its output rows in grouped order
# (gankit.nets.tabular); version 1 files are converted on loading. 3: the config holds ``precision`` (the
# weights are as in 2; the bump makes an older gankit say "upgrade" instead of "unknown option").
MODEL_VERSION = 3
MODEL_JSON, MODEL_WEIGHTS = "model.json", "model.safetensors"


def check_one_process() -> None:
    """Tables train in one process. Under ``torchrun`` with several processes every rank would fit its own
    model with nothing synchronised and all of them would write the same run folder, so refuse clearly."""
    world = distributed.world()
    if world.active:
        raise UserError(f"the tabular GAN trains in one process, but torchrun started {world.size}; run "
                        "`gankit tabular fit` without torchrun (--threads sets the CPU threads)")


@dataclass
class TabularConfig:
    """Everything a tabular fit uses; the defaults are the CTGAN paper's."""

    epochs: int = 300  # passes over the training rows (steps = epochs * max(rows // batch_size, 1))
    batch_size: int = 500  # must be a multiple of pack
    z_dim: int = 128
    g_dims: list[int] = field(default_factory=lambda: [256, 256])  # residual generator widths
    d_dims: list[int] = field(default_factory=lambda: [256, 256])  # critic widths
    pack: int = 10  # PacGAN: rows the critic judges jointly
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    weight_decay: float = 1e-6
    gp: float = 10.0  # WGAN-GP weight
    gp_every: int = 1  # lazy gradient penalty: every k steps, weighted k times (1 = every step, as in WGAN-GP)
    n_critic: int = 1  # critic steps per generator step
    max_modes: int = 10  # mixture components per numeric column
    tau: float = 0.2  # Gumbel-softmax temperature
    log_frequency: bool = True  # training-by-sampling draws categories by log frequency
    # Generator weight EMA; the model samples with the averaged weights. CTGAN has none (0 = the last weights).
    # 0.9 (about the last ten steps) raised fidelity and kept ML efficacy on the benchmark tables; 0.99 cost
    # efficacy on two of them (BENCHMARKS.md).
    ema: float = 0.9
    # True: the generator step reuses the critic step's fakes (one generator pass a step, ~10 % faster).
    # False, as CTGAN: fresh fakes, which gave more useful rows on the benchmark tables (BENCHMARKS.md).
    reuse_fake: bool = False
    constraints: list[str] = field(default_factory=list)  # e.g. ["start <= end", "age >= 0"], by rejection
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch CPU threads; 0 leaves PyTorch's default
    # fp32 | bf16 | auto: the training step's products in bfloat16 (autocast; weights, optimiser and sampling
    # stay float32). auto: bf16 on a CPU that multiplies bfloat16 natively (AVX512-BF16 or AMX), where they
    # run about three times as fast and a fit about 1.6x, with quality level over 20 seeds (a little lower on
    # one of three tables); fp32 elsewhere (BENCHMARKS.md, tables).
    precision: str = "auto"
    verbose: bool = True  # progress bars

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "z_dim", "pack", "max_modes", "n_critic", "gp_every"):
            if getattr(self, name) < 1:
                raise UserError(f"tabular config: {name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.pack:
            raise UserError(f"tabular config: batch_size={self.batch_size} must be a multiple of pack={self.pack}")
        if not 0.0 <= self.ema < 1.0:
            raise UserError(f"tabular config: ema must be in [0, 1), got {self.ema}")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise UserError(f"tabular config: precision must be fp32, bf16 or auto, got '{self.precision}'")
        for c in self.constraints:
            parse_constraint(c)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TabularConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown tabular option '{unknown[0]}'; known: {', '.join(sorted(known))}")
        cfg = cls(**d)
        cfg.validate()
        return cfg


# ---------------------------------------------------------------------------------------------
# constraints: "a <= b", "a > 0", by rejection

_OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt,
        ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*(.+?)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")


def parse_constraint(text: str) -> tuple[str, str, str]:
    m = _CONSTRAINT.match(str(text))
    if not m:
        raise UserError(f"constraint '{text}': expected 'column OP column_or_number' with OP one of "
                        f"{', '.join(_OPS)}")
    return m.group(1), m.group(2), m.group(3)


def _operand(df: pd.DataFrame, token: str, text: str) -> Any:
    if token in df.columns:
        return df[token]
    try:
        return float(token)
    except ValueError:
        pass
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    raise UserError(f"constraint '{text}': '{token}' is neither a column nor a number")


def constraint_mask(df: pd.DataFrame, constraints: list[str]) -> np.ndarray:
    """Rows that satisfy every constraint (rows where a compared value is missing pass)."""
    ok = np.ones(len(df), dtype=bool)
    for text in constraints:
        left, op, right = parse_constraint(text)
        a, b = _operand(df, left, text), _operand(df, right, text)
        if not isinstance(a, pd.Series) and not isinstance(b, pd.Series):
            raise UserError(f"constraint '{text}' names no column")
        res = _OPS[op](a, b)
        missing = (a.isna() if isinstance(a, pd.Series) else False) | (b.isna() if isinstance(b, pd.Series) else False)
        ok &= (np.asarray(res, dtype=bool) | np.asarray(missing, dtype=bool))
    return ok


def native_bf16(device: torch.device) -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX tiles). Without it
    oneDNN emulates them, slower than float32."""
    if device.type != "cpu":
        return False
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a PyTorch without these probes: assume not
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on a CPU with native bfloat16 products, ``fp32`` elsewhere (on GPUs the tabular
    step's small products are not where the time goes). ``bf16`` on a GPU without bfloat16 is refused:
    autocast would fall back to float32 with a warning, and the fit would claim a precision it did not use."""
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("precision bf16: this GPU has no bfloat16 support; use precision fp32 (or auto)")
    if name == "bf16" and device.type == "cpu" and not native_bf16(device):
        warnings.warn("precision bf16: this CPU has no native bfloat16 products, so they are emulated and slower "
                      "than fp32; auto picks fp32 here", stacklevel=3)
    return name


# ---------------------------------------------------------------------------------------------
# the adversarial task


class TabularTask:
    """WGAN-GP on packed rows plus CTGAN's conditional loss: the generator must output the category
    that the conditional vector asked for."""

    def __init__(self, G: TabularGenerator, D: PackedCritic, discrete: list[tuple[int, int]], gp: float,
                 gp_every: int = 1, reuse_fake: bool = False):
        """``discrete``: (start, width) of each categorical column's one-hot group, in conditional order.
        ``reuse_fake``: the engine may share one generator pass between the critic and generator steps."""
        self.G, self.D, self.gp, self.gp_every, self.reuse_fake = G, D, gp, gp_every, reuse_fake
        self.last_gp = torch.zeros(())
        # Row j: the positions of discrete column j's logits in the generator's raw output, padded to the
        # widest column with -1, which stands for a padding logit (-inf) that the loss appends: one gather
        # then gives each row the logits of the column its conditional vector chose.
        widest = max((w for _, w in discrete), default=0)
        index = torch.tensor([[start + k if k < w else -1 for k in range(widest)] for start, w in discrete],
                             dtype=torch.long).view(len(discrete), widest)
        if G is not None:  # the generator's raw columns come in its layout's order, not the encoded one
            index = torch.where(index < 0, -1, G.layout.position.cpu()[index.clamp(min=0)])
        self.cond_index = index
        self._cond_cache: tuple[Any, Tensor] | None = None  # (device, output width) -> the index, resolved

    def generate(self, batch: Batch) -> dict[str, Tensor]:
        c = batch["c"]
        z = torch.randn(c.shape[0], self.G.z_dim, device=c.device)
        x, raw = self.G(z, c)
        return {"x": x, "raw": raw}

    def d_loss(self, batch: Batch, fake: dict[str, Tensor], step: int) -> tuple[Tensor, Logs]:
        real = torch.cat([batch["x"], batch["c"]], dim=1)
        fk = torch.cat([fake["x"], batch["c"]], dim=1)
        penalised = step % self.gp_every == 0  # lazy, as StyleGAN2 does with R1 (gp_every > 1: fewer penalties)
        # The WGAN-GP loss with the critic's gradients derived by hand: the values autograd's double backward
        # gives (tested), in one pass over real, fake and interpolated packs.
        loss, logs = self.D.wgan_gp_loss(real, fk, self.gp * self.gp_every if penalised else 0.0)
        if penalised:
            self.last_gp = logs["gp"]
        adv = logs["critic_fake"] - logs["critic_real"]
        return loss, {"loss_d": loss.detach(), "loss_d_adv": adv, "gp": self.last_gp.to(adv.device),
                      "critic_real": logs["critic_real"], "critic_fake": logs["critic_fake"]}

    def g_loss(self, batch: Batch, fake: dict[str, Tensor], step: int) -> tuple[Tensor, Logs]:
        # float32 scores: under a bf16 autocast the critic's are bfloat16, too coarse for the logged loss
        scores = self.D(torch.cat([fake["x"], batch["c"]], dim=1))
        adv = losses.wasserstein_g(scores.to(torch.promote_types(scores.dtype, torch.float32)))
        cond = self.cond_loss(fake["raw"], batch["col"], batch["cat"])
        loss = adv + cond
        return loss, {"loss_g": loss.detach(), "loss_g_adv": adv.detach(), "loss_cond": cond.detach()}

    def cond_loss(self, raw: Tensor, col: Tensor, cat: Tensor) -> Tensor:
        """Cross-entropy of the generated logits of each row's chosen column against its chosen category
        (CTGAN's masked sum over all discrete columns, of which exactly one is chosen per row)."""
        if self.cond_index.numel() == 0:
            return raw.new_zeros(())
        key = (raw.device, raw.shape[1])
        if self._cond_cache is None or self._cond_cache[0] != key:
            index = self.cond_index.to(raw.device)
            self._cond_cache = (key, torch.where(index < 0, raw.shape[1], index))
        padded = F.pad(raw, (0, 1), value=float("-inf"))  # the padding logit: probability 0, gradient 0
        logits = padded.gather(1, self._cond_cache[1][col])
        return F.cross_entropy(logits, cat, reduction="sum") / raw.shape[0]


@dataclass
class _Request:
    """Checked sampling arguments."""

    conditions: dict[str, Any]  # as the caller gave them (for messages)
    wanted: dict[str, Any]  # column -> the category value rows must hold
    fixed: tuple[int, int] | None  # (discrete column, category) set through the conditional vector
    constraints: list[str]
    seed: int


def _sample_bar(progress: bool) -> tqdm:
    """A bar of the rows generated, on a terminal only (``progress``); its total grows with each round."""
    return tqdm(total=0, desc="sample", unit="row", unit_scale=True, leave=False, mininterval=0.5,
                disable=None if progress else True)  # None: shown on a terminal only


# ---------------------------------------------------------------------------------------------
# the user-facing synthesizer


class TabularGAN:
    """A conditional tabular GAN with the scikit-learn / ctgan shape: ``fit``, ``sample``, ``save``, ``load``."""

    def __init__(self, **config: Any):
        self.config = TabularConfig.from_dict(config)
        self.types: dict[str, str] = {}
        self.transformer: TableTransformer | None = None
        self.G: TabularGenerator | None = None
        self.fit_info: dict[str, Any] = {}
        self._cat_probs: list[list[float]] = []  # real category frequencies of each discrete column

    # -- building ----------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, tr = self.config, self.transformer
        spans = [(s.start, s.width, s.act) for s in tr.spans]
        discrete = tr.discrete_spans()
        self.G = TabularGenerator(cfg.z_dim, sum(s.width for s in discrete), spans, tr.output_dim,
                                  hidden=cfg.g_dims, tau=cfg.tau)

    @property
    def discrete_columns(self) -> list[str]:
        return [s.column for s in self.transformer.discrete_spans()] if self.transformer else []

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame, discrete_columns: list[str] | None = None,
            column_types: dict[str, str] | None = None, run_dir: str | Path | None = None) -> TabularGAN:
        """Learn the table ``data``. Types are inferred unless given (``discrete_columns`` as in ctgan,
        or ``column_types={"col": kind}``); see ``self.types`` for what was used. ``run_dir`` keeps the
        engine's logs and checkpoint (a temporary folder otherwise)."""
        cfg = self.config
        t0 = time.time()
        check_one_process()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        device = resolve_device(cfg.device)
        precision = resolve_precision(cfg.precision, device)  # before any work: bf16 may be refused
        self.types = infer_types(data, discrete_columns, column_types)
        if cfg.constraints:
            share = float(constraint_mask(data, cfg.constraints).mean())
            if share < 0.99:
                raise UserError(f"only {share:.0%} of the training rows satisfy the constraints "
                                f"{cfg.constraints}; check them")
        self.transformer = TableTransformer.fit(data, self.types, cfg.max_modes, cfg.seed)
        encoded = torch.from_numpy(self.transformer.transform(data, seed=cfg.seed)).to(device)
        discrete = self.transformer.discrete_spans()
        batches = ConditionalBatches(encoded, discrete, cfg.batch_size, seed=cfg.seed, log_frequency=cfg.log_frequency)
        self._cat_probs = [batches.true_probs[j, : s.width].tolist() for j, s in enumerate(discrete)]
        self._build()
        D = PackedCritic(self.transformer.output_dim + batches.cond_dim, cfg.d_dims, cfg.pack)
        self.G, D = self.G.to(device), D.to(device)
        task = TabularTask(self.G, D, [(s.start, s.width) for s in discrete], cfg.gp, cfg.gp_every, cfg.reuse_fake)
        steps = cfg.epochs * max(len(data) // cfg.batch_size, 1)
        train = TrainConfig(steps=steps, n_critic=cfg.n_critic, ema=cfg.ema, seed=cfg.seed, device=cfg.device,
                            z_dim=cfg.z_dim, threads=cfg.threads, precision=precision)
        opt = [OptimConfig(name="adam", lr=lr, beta1=cfg.betas[0], beta2=cfg.betas[1],
                           weight_decay=cfg.weight_decay) for lr in (cfg.lr_g, cfg.lr_d)]
        meta = {"kind": "tabular", "config": dataclasses.asdict(cfg), "types": self.types}
        tmp = None
        if run_dir is None:
            tmp = tempfile.mkdtemp(prefix="gankit-tabular-")
            run_dir = tmp
        # the final checkpoint is the run folder's record; a temporary folder is deleted unread
        log = LogConfig(every=max(1, min(50, steps)), sample_every=10**9, checkpoint_every=steps, keep_last=1,
                        checkpoints=tmp is None, progress=cfg.verbose)
        try:
            trainer = Trainer(task, batches, Path(run_dir), train, opt[0], opt[1], log, meta,
                              d_output="critic")
            summary = trainer.fit(steps)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        if summary.get("interrupted"):
            raise KeyboardInterrupt
        self.G = trainer.G_ema.eval()
        self.fit_info = {"rows": len(data), "steps": steps, "precision": precision,
                         "fit_seconds": round(time.time() - t0, 3),
                         "train_seconds": summary["train_seconds"], "last": summary.get("last", {})}
        return self

    def _check_fitted(self) -> None:
        if self.G is None or self.transformer is None:
            raise UserError("the model is not fitted; call fit() or TabularGAN.load() first")

    # -- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, cond: Tensor, col: Tensor, cat: Tensor, bar: Any = None) -> tuple[pd.DataFrame, np.ndarray]:
        """Decoded rows for these conditional vectors, and whether each row holds the category its
        vector asked for (a generator that ignores its condition would skew that column's frequencies).
        ``bar``: a progress bar advanced by the rows generated."""
        device = next(self.G.parameters()).device
        outs = []
        # On a CPU, passes of 1024 rows keep the generator's activations in cache (4096 took up to a quarter longer)
        chunk = 1024 if device.type == "cpu" else 16384
        for i in range(0, cond.shape[0], chunk):
            c = cond[i : i + chunk].to(device)
            z = torch.randn(c.shape[0], self.G.z_dim, device=device)
            x, _ = self.G(z, c, hard=True)
            outs.append(x.cpu())
            if bar is not None:
                bar.update(c.shape[0])
        x = torch.cat(outs)
        starts = torch.tensor([s.start for s in self.transformer.discrete_spans()], dtype=torch.long)
        if len(starts):
            match = (x[torch.arange(x.shape[0]), starts[col] + cat] > 0.5).numpy()
        else:
            match = np.ones(x.shape[0], dtype=bool)
        return self.transformer.inverse_transform(x.numpy()), match

    def _conds(self, n: int, gen: torch.Generator, fixed: tuple[int, int] | None) -> tuple[Tensor, Tensor, Tensor]:
        """Conditional vectors: the fixed (column, category), or a random column with a category drawn at
        its real frequency (so the unconditional samples follow the real marginals)."""
        widths = [len(p) for p in self._cat_probs]
        c = torch.zeros(n, sum(widths))
        if not widths:
            zeros = torch.zeros(n, dtype=torch.long)
            return c, zeros, zeros
        offsets = torch.as_tensor(np.cumsum([0] + widths[:-1]), dtype=torch.long)
        if fixed is not None:
            col, cat = torch.full((n,), fixed[0]), torch.full((n,), fixed[1])
        else:
            col = torch.randint(len(widths), (n,), generator=gen)
            probs = torch.zeros(len(widths), max(widths))
            for j, p in enumerate(self._cat_probs):
                probs[j, : len(p)] = torch.tensor(p)
            cat = torch.multinomial(probs[col], 1, generator=gen).squeeze(1)
        c[torch.arange(n), offsets[col] + cat] = 1.0
        return c, col, cat

    def sample(self, n: int, conditions: dict[str, Any] | None = None, seed: int | None = None,
               constraints: list[str] | None = None, max_tries: int = 50, progress: bool = False) -> pd.DataFrame:
        """``n`` synthetic rows. ``conditions={"col": value}`` fixes categorical/boolean columns (the
        first through the conditional vector, all by rejection); ``constraints`` (default: those of the
        config) are kept by rejection, and so are rows whose conditioned column disagrees with its
        conditional vector. The same seed gives the same rows. ``progress`` shows a bar of the rows generated
        (on a terminal). For more rows than memory holds, see :meth:`sample_chunks`."""
        request = self._request(n, conditions, seed, constraints)
        with _sample_bar(progress) as bar:
            return self._draw(n, request, request.seed, max_tries, bar)

    def sample_chunks(self, n: int, conditions: dict[str, Any] | None = None, seed: int | None = None,
                      constraints: list[str] | None = None, chunk_rows: int = 100_000, max_tries: int = 50,
                      progress: bool = False) -> Iterator[pd.DataFrame]:
        """:meth:`sample`'s ``n`` rows as data frames of at most ``chunk_rows`` rows, so a caller can write a
        table larger than memory piece by piece (``gankit tabular sample`` does). The first piece is drawn
        with ``seed`` itself, piece j with a seed derived from (seed, j): up to ``chunk_rows`` rows are
        :meth:`sample`'s rows, and the same arguments always give the same pieces. Arguments are checked
        before the first piece."""
        if chunk_rows < 1:
            raise UserError(f"chunk_rows must be positive, got {chunk_rows}")
        return self._chunks(n, self._request(n, conditions, seed, constraints), chunk_rows, max_tries, progress)

    def _chunks(self, n: int, request: _Request, chunk_rows: int, max_tries: int,
                progress: bool) -> Iterator[pd.DataFrame]:
        with _sample_bar(progress) as bar:
            for j, start in enumerate(range(0, n, chunk_rows)):
                # (SeedSequence takes non-negative entropy; seeds may be negative, as for torch.manual_seed)
                entropy = [request.seed % 2**64, j]
                seed = request.seed if j == 0 else int(np.random.SeedSequence(entropy).generate_state(1)[0])
                yield self._draw(min(chunk_rows, n - start), request, seed, max_tries, bar)

    def _request(self, n: int, conditions: dict[str, Any] | None, seed: int | None,
                 constraints: list[str] | None) -> _Request:
        self._check_fitted()
        if n <= 0:
            raise UserError(f"the number of rows must be positive, got {n}")
        conditions = dict(conditions or {})
        constraints = list(self.config.constraints if constraints is None else constraints)
        for c in constraints:
            parse_constraint(c)
        wanted = {}
        for col, value in conditions.items():
            index = self.transformer.category_index(col, value)  # checks the column and the value
            wanted[col] = self.transformer.column(col)["categories"][index]
        fixed = None
        if wanted:
            first = next(iter(wanted))
            j = self.discrete_columns.index(first)
            fixed = (j, self.transformer.category_index(first, conditions[first]))
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        return _Request(conditions, wanted, fixed, constraints, seed)

    def _draw(self, n: int, request: _Request, seed: int, max_tries: int, bar: Any) -> pd.DataFrame:
        """``n`` rows meeting the request's conditions and constraints, by rejection, from this seed."""
        wanted, fixed, constraints = request.wanted, request.fixed, request.constraints
        self.G.eval()
        kept, have, drawn = [], 0, 0
        budget = max_tries * max(2 * n, 256)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(max_tries):
                # The rows still needed divided by the share kept so far (all rows, at first), with 10 % to
                # spare: generating and decoding rows is the cost, and most rows are kept.
                rate = max(have / drawn, 0.02) if drawn else 1.0
                need = n - have
                chunk = min(max(int(need / rate * 1.1) + 64, 256), max(2 * need, 1 << 20), budget - drawn)
                if chunk <= 0:  # conditions nearly never met: give up after as many rows as 2n a try would
                    break
                drawn += chunk
                bar.total += chunk
                df, ok = self._generate(*self._conds(chunk, gen, fixed), bar=bar)
                if constraints:
                    ok &= constraint_mask(df, constraints)
                for col, value in wanted.items():
                    ok &= df[col].isna().to_numpy() if value is None else (df[col] == value).to_numpy()
                if ok.any():
                    kept.append(df[ok])
                    have += int(ok.sum())
                if have >= n:
                    break
        if have < n:
            raise UserError(f"could draw only {have} of {n} rows meeting the conditions {request.conditions} and "
                            f"constraints {constraints} in {drawn} generated rows; they may be too rare")
        out = pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)
        return out.astype({c: df[c].dtype for c in out.columns}, errors="ignore")

    # -- saving ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/model.safetensors`` (generator weights) and ``path/model.json`` (everything else)."""
        from safetensors.torch import save as st_save

        self._check_fitted()
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: exists and is not a folder")
        weights = st_save({k: v.detach().contiguous().cpu() for k, v in self.G.state_dict().items()})
        meta = {"format": FORMAT, "version": MODEL_VERSION, "config": dataclasses.asdict(self.config), "types": self.types,
                "transformer": self.transformer.to_dict(), "category_probs": self._cat_probs,
                "fit": self.fit_info, "weights_sha256": ckpt.sha256(weights)}
        ckpt.atomic_write_bytes(path / MODEL_WEIGHTS, weights)
        ckpt.atomic_write_json(path / MODEL_JSON, meta)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> TabularGAN:
        """A model written by :meth:`save` (or a ``gankit tabular fit`` run folder)."""
        path = Path(path)
        if not (path / MODEL_JSON).is_file():
            raise UserError(f"{path}: not a tabular model folder (no {MODEL_JSON})")
        try:
            meta = json.loads((path / MODEL_JSON).read_text())
        except json.JSONDecodeError:
            raise UserError(f"{path / MODEL_JSON}: not valid JSON") from None
        if meta.get("format") != FORMAT:
            raise UserError(f"{path / MODEL_JSON}: not a gankit tabular model")
        version = meta.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise UserError(f"{path / MODEL_JSON}: bad model format version {version!r}")
        if version > MODEL_VERSION:
            raise UserError(f"{path / MODEL_JSON}: model format version {version} is newer than this gankit "
                            f"reads ({MODEL_VERSION}); upgrade gankit")
        raw = (path / MODEL_WEIGHTS).read_bytes() if (path / MODEL_WEIGHTS).is_file() else b""
        if ckpt.sha256(raw) != meta.get("weights_sha256"):
            raise UserError(f"{path / MODEL_WEIGHTS}: missing, or its SHA-256 does not match {MODEL_JSON}")
        tensors = ckpt.read_safetensors(raw, str(path / MODEL_WEIGHTS))
        self = cls(**{**meta["config"], "device": device})
        self.types = meta["types"]
        self.transformer = TableTransformer.from_dict(meta["transformer"])
        self._cat_probs = meta["category_probs"]
        self.fit_info = meta.get("fit", {})
        self._build()
        if version == 1:  # the plain CTGAN layout (see TabularGenerator.from_plain)
            tensors = TabularGenerator.from_plain(tensors, self.G.z_dim, self.G.cond_dim, self.G.layout.order)
        ckpt.load_module("G", self.G, {f"G.{k}": v for k, v in tensors.items()}, str(path))
        self.G = self.G.to(resolve_device(device)).eval()
        return self
