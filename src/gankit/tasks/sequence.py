"""Sequences (text, music): a next-token language model and sequence GANs, side by side.

``fit(data, out, SequenceConfig(...))`` trains one of three models into a run folder:

- ``lm``: an LSTM trained by maximum likelihood (plain supervised loop: it is not adversarial);
- ``gan``: the same LSTM as a generator of whole sequences, judged by a CNN discriminator and trained
  through the shared adversarial engine after MLE pre-training. The discrete sampling step is crossed by
  ``estimator='gumbel'`` (Gumbel-softmax with temperature annealing) or ``'reinforce'`` (policy gradient
  with Monte-Carlo rollout rewards, SeqGAN);
- ``pianoroll-gan``: a MuseGAN-style convolutional GAN on bars x steps x pitches (MIDI data only).

``load(run_dir)`` gives a :class:`SequenceRun` to ``sample`` from; ``evaluate`` measures it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gankit import checkpoint as ckpt
from gankit import losses
from gankit.config import LogConfig, OptimConfig, TrainConfig
from gankit.data import Batches, Dataset
from gankit.data import sequences as sq
from gankit.engine import Batch, Logs, Trainer, resolve_device, seed_everything
from gankit.errors import UserError
from gankit.nets.sequence import (
    LSTMLM,
    CNNDiscriminator,
    PianorollDiscriminator,
    PianorollGenerator,
    mask_after_eos,
    rollout_rewards,
)
from gankit.tasks.gan import discriminator_signals

MODELS = ("lm", "gan", "pianoroll-gan")
ESTIMATORS = ("gumbel", "reinforce")
MAX_LEN_LIMIT = 512
CLOCKS = {"wall": time.time, "cpu": time.process_time}


@dataclass
class SequenceConfig:
    """Everything a sequence run uses; saved as ``sequence.json`` in the run folder."""

    model: str = "lm"  # lm | gan | pianoroll-gan
    kind: str = "auto"  # text | midi | auto (midi for chorales and .mid files)
    level: str = "auto"  # text: char | word | auto (char for 'words', word otherwise)
    estimator: str = "gumbel"  # gan: gumbel | reinforce
    max_len: int = 0  # tokens per sequence, <eos> included; 0 = the longest training sequence + 1
    drop_long: bool = False  # drop training sequences longer than max_len instead of refusing them
    min_count: int = 1  # word level: rarer words become <unk>
    bars: int = 2  # midi: bars per training window (events); pianoroll-gan uses 4
    heldout: float = 0.05  # share of sequences held out for evaluation
    emb: int = 64
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.1
    d_width: int = 64
    z_dim: int = 32
    batch_size: int = 64
    lr: float = 2e-3  # MLE (lm and pre-training)
    lr_g: float = 1e-4  # adversarial phase
    lr_d: float = 1e-4
    steps: int = 2000  # lm: MLE steps; gan / pianoroll-gan: adversarial generator steps
    seconds: float = 0.0  # time budget for training (pre-training included); 0 = none
    clock: str = "wall"  # the budget's clock: wall | cpu (this process's CPU time: fair on a shared machine)
    pretrain_steps: int = 1000  # gan: MLE pre-training steps of the generator
    pretrain_share: float = 0.5  # gan with a time budget: share of it spent on pre-training
    tau_start: float = 1.0  # gumbel: temperature at the start of the adversarial phase
    tau_end: float = 0.1  # ... annealed exponentially to this
    anneal_steps: int = 1000  # ... over this many generator steps
    rollouts: int = 4  # reinforce: Monte-Carlo completions per prefix (0: whole-sequence reward only)
    mle_weight: float = 0.0  # gan: add this times the MLE loss on real data to the generator loss
    loss: str = "nonsaturating"  # adversarial loss (gankit.losses); pianoroll-gan default: wasserstein
    gp: float = 0.0  # gradient penalty weight (pianoroll-gan: 10)
    n_critic: int = 1
    seed: int = 0
    device: str = "cpu"
    threads: int = 1  # torch CPU threads; small recurrent models run fastest on one (0: PyTorch default)
    progress: bool = True

    def validate(self) -> SequenceConfig:
        if self.model not in MODELS:
            raise UserError(f"--model must be one of {', '.join(MODELS)}, got '{self.model}'")
        if self.estimator not in ESTIMATORS:
            raise UserError(f"--estimator must be gumbel or reinforce, got '{self.estimator}'")
        for key in ("emb", "hidden", "layers", "d_width", "z_dim", "batch_size", "bars", "n_critic",
                    "anneal_steps", "min_count"):
            if getattr(self, key) <= 0:
                raise UserError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("steps", "pretrain_steps", "rollouts", "max_len"):
            if getattr(self, key) < 0:
                raise UserError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.max_len > MAX_LEN_LIMIT:
            raise UserError(f"max_len must be at most {MAX_LEN_LIMIT}, got {self.max_len}")
        if not 0.0 <= self.heldout < 0.5:
            raise UserError(f"heldout must be in [0, 0.5), got {self.heldout}")
        if not 0.0 <= self.pretrain_share < 1.0:
            raise UserError(f"pretrain_share must be in [0, 1), got {self.pretrain_share}")
        if self.clock not in CLOCKS:
            raise UserError(f"clock must be wall or cpu, got '{self.clock}'")
        if self.seconds < 0 or self.tau_start <= 0 or self.tau_end <= 0:
            raise UserError("seconds must be >= 0 and tau_start, tau_end positive")
        for key in ("lr", "lr_g", "lr_d"):
            if getattr(self, key) <= 0:
                raise UserError(f"{key} must be positive, got {getattr(self, key)}")
        losses.get_loss(self.loss)
        return self

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> SequenceConfig:
        """The defaults for ``model`` (pianoroll-gan: 4 bars, WGAN-GP as in MuseGAN), then ``overrides``."""
        base: dict[str, Any] = {"model": model}
        if model == "pianoroll-gan":
            base.update(kind="midi", bars=4, loss="wasserstein", gp=10.0, n_critic=2, lr_g=2e-4, lr_d=2e-4,
                        z_dim=64, d_width=16, batch_size=32)  # small enough for a CPU
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(base)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SequenceConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UserError(f"unknown sequence option(s): {', '.join(unknown)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# networks from a config


def build_lm(cfg: SequenceConfig, vocab_size: int, max_len: int) -> LSTMLM:
    return LSTMLM(vocab_size, max_len, cfg.emb, cfg.hidden, cfg.layers,
                  z_dim=cfg.z_dim if cfg.model == "gan" else 0, dropout=cfg.dropout)


def build_pianoroll(cfg: SequenceConfig) -> tuple[PianorollGenerator, PianorollDiscriminator]:
    G = PianorollGenerator(cfg.z_dim, cfg.bars, sq.STEPS_PER_BAR, sq.N_PITCHES, cfg.d_width)
    D = PianorollDiscriminator(cfg.bars, sq.STEPS_PER_BAR, sq.N_PITCHES, cfg.d_width)
    return G, D


# ---------------------------------------------------------------------------------------------
# the adversarial tasks (the engine calls generate / d_loss / g_loss)


class TextGAN:
    """A sequence GAN. ``gumbel``: G emits straight-through Gumbel-softmax one-hots and D's gradient flows
    into G. ``reinforce``: G samples tokens; its loss is the policy gradient -sum_t (r_t - b_t) log p(x_t)
    with SeqGAN's rollout rewards r_t and the batch mean b_t as baseline."""

    def __init__(self, G: LSTMLM, D: CNNDiscriminator, cfg: SequenceConfig):
        self.G, self.D, self.cfg = G, D, cfg
        self.loss = losses.get_loss(cfg.loss)
        self.step = 0

    @property
    def tau(self) -> float:
        """Exponential annealing from tau_start to tau_end over anneal_steps (RelGAN-style temperature control)."""
        frac = min(self.step / self.cfg.anneal_steps, 1.0)
        return self.cfg.tau_start * (self.cfg.tau_end / self.cfg.tau_start) ** frac

    def generate(self, batch: Batch) -> dict[str, Tensor]:
        n = batch["x"].shape[0]
        z = torch.randn(n, self.G.z_dim, device=batch["x"].device)
        if self.cfg.estimator == "gumbel":
            return {"x": self.G.gumbel_sample(z, self.tau), "z": z}
        ids = self.G.sample(n, z)  # sampling is not differentiable; the gradient comes from log-probs
        return {"x": ids, "z": z}

    def d_loss(self, batch: Batch, fake: dict[str, Tensor], step: int) -> tuple[Tensor, Logs]:
        self.step = step
        real_out, fake_out = self.D(batch["x"]), self.D(fake["x"].detach())
        loss = self.loss.d(real_out, fake_out)
        return loss, {"loss_d": loss.detach(), **discriminator_signals(real_out.detach(), fake_out.detach())}

    def g_loss(self, batch: Batch, fake: dict[str, Tensor], step: int) -> tuple[Tensor, Logs]:
        logs: Logs = {}
        if self.cfg.estimator == "gumbel":
            real_out = self.D(batch["x"]) if self.loss.needs_real_for_g else None
            loss = self.loss.g(self.D(fake["x"]), real_out)
            logs["tau"] = torch.tensor(self.tau)
        else:
            ids, z = fake["x"], fake["z"]
            rewards = rollout_rewards(self.G, self.D, ids, z, self.cfg.rollouts)
            mask = mask_after_eos(ids)
            advantage = (rewards - policy_baseline(rewards, mask)) * mask
            logp = self.G.token_log_probs(ids, z)
            loss = -(logp * advantage).sum() / mask.sum().clamp_min(1)
            logs["reward"] = (rewards.sum() / mask.sum().clamp_min(1)).detach()
        if self.cfg.mle_weight > 0:
            mle = self.G.nll(batch["x"])
            loss = loss + self.cfg.mle_weight * mle
            logs["mle"] = mle.detach()
        logs["loss_g"] = loss.detach()
        return loss, logs


def policy_baseline(rewards: Tensor, mask: Tensor) -> Tensor:
    """The mean reward at each position over the batch's live tokens (B, T), a variance reducer."""
    return (rewards.sum(0) / mask.sum(0).clamp_min(1)).expand_as(rewards)


class PianorollGAN:
    """MuseGAN-style: z -> piano-roll in [-1, 1] (real rolls are {-1, 1}), WGAN-GP by default."""

    reuse_fake = True  # generate() is one forward of G: the engine may share it between the two phases

    def __init__(self, G: PianorollGenerator, D: PianorollDiscriminator, cfg: SequenceConfig):
        self.G, self.D, self.cfg = G, D, cfg
        self.loss = losses.get_loss(cfg.loss)

    def generate(self, batch: Batch) -> Tensor:
        return self.G(torch.randn(batch["x"].shape[0], self.G.z_dim, device=batch["x"].device))

    def d_loss(self, batch: Batch, fake: Tensor, step: int) -> tuple[Tensor, Logs]:
        real = batch["x"]
        real_out, fake_out = self.D(real), self.D(fake.detach())
        loss = self.loss.d(real_out, fake_out)
        logs = {"loss_d_adv": loss.detach()}
        if self.cfg.gp > 0:
            gp = losses.gradient_penalty(self.D, real, fake)
            loss = loss + self.cfg.gp * gp
            logs["gp"] = gp.detach()
        logs.update({"loss_d": loss.detach(), "logit_real": real_out.mean().detach(),
                     "logit_fake": fake_out.mean().detach()})
        return loss, logs

    def g_loss(self, batch: Batch, fake: Tensor, step: int) -> tuple[Tensor, Logs]:
        real_out = self.D(batch["x"]) if self.loss.needs_real_for_g else None
        loss = self.loss.g(self.D(fake), real_out)
        return loss, {"loss_g": loss.detach()}


class TimeBudget:
    """An engine hook that stops the run once its time budget is spent (checked at every logged step)."""

    def __init__(self, deadline: float, clock: str = "wall"):
        self.deadline, self.clock = deadline, CLOCKS[clock]

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.clock() >= self.deadline and trainer.stop_reason is None:
            trainer.request_stop("time budget spent")


# ---------------------------------------------------------------------------------------------
# maximum likelihood (the baseline, and the GAN's pre-training)


def mle_train(model: LSTMLM, ids: Tensor, cfg: SequenceConfig, steps: int, deadline: float | None,
              device: torch.device, desc: str = "mle") -> dict[str, Any]:
    """Teacher-forced next-token training (Adam, gradient clipping at 1) until ``steps`` or ``deadline``."""
    from tqdm import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = Batches(Dataset(x=ids, kind="sequence"), min(cfg.batch_size, len(ids)), device, seed=cfg.seed)
    model.train()
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not cfg.progress, mininterval=0.5)
    done, running = 0, None
    started, clock = time.time(), CLOCKS[cfg.clock]
    while done < steps and (deadline is None or clock() < deadline):
        x = next(batches)["x"]
        loss = model.nll(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done += 1
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        bar.update(1)
        if done % 20 == 0:
            bar.set_postfix(nll=f"{running:.3f}")
    bar.close()
    model.eval()
    return {"steps": done, "train_nll": running, "seconds": round(time.time() - started, 2)}


@torch.no_grad()
def heldout_nll(model: LSTMLM, ids: Tensor, batch_size: int = 256) -> float:
    """Mean per-token NLL (nats) of ``ids`` under ``model``, <eos> included."""
    model.eval()
    device = model.head.weight.device
    total, count = 0.0, 0.0
    for i in range(0, len(ids), batch_size):
        x = ids[i : i + batch_size].to(device)
        mask = mask_after_eos(x)
        total += float(-model.token_log_probs(x).sum())
        count += float(mask.sum())
    return total / max(count, 1.0)


# ---------------------------------------------------------------------------------------------
# fit


def split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    k = round(n * share) if n >= 20 else 0
    return order[k:], order[:k]


def fit(source: str, out: str | Path, cfg: SequenceConfig) -> dict[str, Any]:
    """Train ``cfg.model`` on ``source`` (a built-in name or a path) into the run folder ``out``."""
    cfg.validate()
    out = Path(out)
    if (out / "checkpoints" / ckpt.MANIFEST).exists():
        raise UserError(f"{out} already holds a run; choose another --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    if cfg.model == "pianoroll-gan":
        if cfg.kind == "text":
            raise UserError("--model pianoroll-gan needs MIDI data (--kind midi)")
        cfg.kind = "midi"
        data = sq.load_sequences(source, "midi", bars=cfg.bars, rolls=True)
        return _fit_pianoroll(data, out, cfg, device)
    data = sq.load_sequences(source, cfg.kind, cfg.level, bars=cfg.bars)
    cfg.kind, cfg.level = data.kind, data.level
    train_idx, held_idx = split(len(data.seqs), cfg.heldout, cfg.seed)
    train_seqs = [data.seqs[i] for i in train_idx]
    held_seqs = [data.seqs[i] for i in held_idx]
    longest = max(len(s) for s in data.seqs) + 1
    if cfg.max_len == 0:
        if longest > MAX_LEN_LIMIT:
            raise UserError(f"{source}: the longest sequence has {longest - 1} tokens, more than the maximum "
                            f"{MAX_LEN_LIMIT - 1}; pass --max-len with --drop-long")
        cfg.max_len = longest
    if cfg.drop_long:
        train_seqs = [s for s in train_seqs if len(s) < cfg.max_len]
        held_seqs = [s for s in held_seqs if len(s) < cfg.max_len]
    if len(train_seqs) < 2:
        raise UserError(f"{source}: too few sequences to train on ({len(train_seqs)})")
    vocab = sq.Vocab.build(train_seqs, data.level, cfg.min_count if data.level == "word" else 1)
    ids = sq.encode_all(train_seqs, vocab, cfg.max_len, name=str(source))
    held_ids = sq.encode_all(held_seqs, vocab, cfg.max_len, name=str(source)) if held_seqs else None

    out.mkdir(parents=True, exist_ok=True)
    vocab.save(out / "vocab.json")
    joiner = vocab.join if data.kind == "text" else " ".join
    ckpt.atomic_write_bytes(out / "train.txt", "".join(joiner(s) + "\n" for s in train_seqs).encode())
    ckpt.atomic_write_bytes(out / "heldout.txt", "".join(joiner(s) + "\n" for s in held_seqs).encode())
    ckpt.atomic_write_json(out / "sequence.json", cfg.to_dict())
    meta = {"kind": "sequence", "config": cfg.to_dict(), "vocab": vocab.to_dict(),
            "data": {"source": str(source), "name": data.name, "kind": data.kind, "level": data.level,
                     "train": len(train_seqs), "heldout": len(held_seqs)}}

    started, cpu_started = time.time(), time.process_time()
    # The budget counts training only, not reading and encoding the data.
    deadline = CLOCKS[cfg.clock]() + cfg.seconds if cfg.seconds > 0 else None
    G = build_lm(cfg, len(vocab), cfg.max_len).to(device)
    summary: dict[str, Any] = {"model": cfg.model, "data": meta["data"], "max_len": cfg.max_len,
                               "vocab_size": len(vocab)}
    if cfg.model == "lm":
        summary["mle"] = mle_train(G, ids, cfg, cfg.steps, deadline, device, desc="lm")
        ckpt.save_checkpoint(out / "checkpoints", summary["mle"]["steps"], ckpt.module_tensors("G", G),
                             {**meta, "step": summary["mle"]["steps"]})
    else:
        # With a time budget, pre-training gets its share of the time; otherwise pretrain_steps steps.
        if deadline is not None and cfg.pretrain_share > 0:
            pre_deadline = deadline - cfg.seconds * (1 - cfg.pretrain_share)
            summary["pretrain"] = mle_train(G, ids, cfg, 10**9, pre_deadline, device, desc="pretrain")
        elif deadline is None and cfg.pretrain_steps > 0:
            summary["pretrain"] = mle_train(G, ids, cfg, cfg.pretrain_steps, None, device, desc="pretrain")
        D = CNNDiscriminator(len(vocab), cfg.emb, cfg.d_width).to(device)
        task = TextGAN(G, D, cfg)
        summary["adversarial"] = _run_engine(task, ids, out, cfg, meta, deadline, device)
    if held_ids is not None and cfg.model != "pianoroll-gan":
        G.eval()
        nll = heldout_nll(G, held_ids)
        summary["heldout_nll"] = nll
        summary["heldout_ppl"] = math.exp(min(nll, 50))
    summary["seconds"] = round(time.time() - started, 2)
    summary["cpu_seconds"] = round(time.process_time() - cpu_started, 2)
    ckpt.atomic_write_json(out / "summary.json", summary)
    return summary


def _run_engine(task: Any, x: Tensor, out: Path, cfg: SequenceConfig, meta: dict[str, Any],
                deadline: float | None, device: torch.device) -> dict[str, Any]:
    """The adversarial phase through the shared engine, stopped by ``cfg.steps`` or the time budget."""
    batches = Batches(Dataset(x=x, kind="sequence"), min(cfg.batch_size, len(x)), device, seed=cfg.seed)
    train = TrainConfig(steps=cfg.steps, n_critic=cfg.n_critic, ema=0.0, seed=cfg.seed, device=cfg.device,
                        z_dim=cfg.z_dim)
    log = LogConfig(every=1 if deadline else 10, sample_every=10**9, checkpoint_every=max(cfg.steps, 1),
                    keep_last=2, progress=cfg.progress)
    opt_g = OptimConfig(lr=cfg.lr_g, beta1=0.5, beta2=0.999)
    opt_d = OptimConfig(lr=cfg.lr_d, beta1=0.5, beta2=0.999)
    hooks = [TimeBudget(deadline, cfg.clock)] if deadline else []
    trainer = Trainer(task, batches, out, train, opt_g, opt_d, log, meta,
                      d_output="probability" if task.loss.probabilistic else "sigmoid_of_logits", hooks=hooks)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    if deadline is not None and CLOCKS[cfg.clock]() >= deadline:
        trainer.save()  # the pre-training used the whole budget: keep the pre-trained generator
        return {"step": 0, "stop_reason": "time budget spent before the adversarial phase"}
    result = trainer.fit(cfg.steps)
    if trainer.stop_reason is not None:
        trainer.save()  # a time-budget stop: keep the last weights
    return {k: result[k] for k in ("step", "train_seconds", "stop_reason")} | {"last": result.get("last", {})}


def _fit_pianoroll(data: sq.SequenceData, out: Path, cfg: SequenceConfig, device: torch.device) -> dict[str, Any]:
    rolls = data.rolls
    assert rolls is not None
    train_idx, held_idx = split(len(rolls), cfg.heldout, cfg.seed)
    if len(train_idx) < 2:
        raise UserError(f"{data.name}: too few {cfg.bars}-bar windows to train on ({len(train_idx)})")
    x = torch.from_numpy(rolls[train_idx]).float() * 2 - 1
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "heldout_rolls.npz", rolls=rolls[held_idx])
    ckpt.atomic_write_json(out / "sequence.json", cfg.to_dict())
    meta = {"kind": "sequence", "config": cfg.to_dict(), "vocab": None,
            "data": {"source": data.name, "name": data.name, "kind": "midi", "train": len(train_idx),
                     "heldout": len(held_idx)}}
    G, D = build_pianoroll(cfg)
    task = PianorollGAN(G.to(device), D.to(device), cfg)
    started, cpu_started = time.time(), time.process_time()
    deadline = CLOCKS[cfg.clock]() + cfg.seconds if cfg.seconds > 0 else None
    summary = {"model": cfg.model, "data": meta["data"], "shape": list(rolls.shape[1:]),
               "adversarial": _run_engine(task, x, out, cfg, meta, deadline, device)}
    summary["seconds"] = round(time.time() - started, 2)
    summary["cpu_seconds"] = round(time.process_time() - cpu_started, 2)
    ckpt.atomic_write_json(out / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------------------------
# loading and sampling


class SequenceRun:
    """A trained sequence model ready to sample: text lines, MIDI event sequences or piano-rolls."""

    def __init__(self, run_dir: Path, cfg: SequenceConfig, vocab: sq.Vocab | None, model: nn.Module,
                 data: dict[str, Any], step: int):
        self.run_dir, self.cfg, self.vocab, self.model, self.data, self.step = run_dir, cfg, vocab, model, data, step

    @property
    def kind(self) -> str:
        return self.cfg.kind

    def sample_ids(self, n: int, seed: int = 0, temperature: float = 1.0, top_k: int = 0) -> Tensor:
        if n <= 0:
            raise UserError(f"--n must be positive, got {n}")
        if temperature <= 0:
            raise UserError(f"--temperature must be positive, got {temperature}")
        gen = torch.Generator().manual_seed(seed)
        assert isinstance(self.model, LSTMLM)
        outs = []
        for i in range(0, n, 512):
            m = min(512, n - i)
            z = torch.randn(m, self.model.z_dim, generator=gen) if self.model.z_dim else None
            outs.append(self.model.sample(m, z, temperature, top_k, generator=gen))
        return torch.cat(outs)

    def sample_tokens(self, n: int, seed: int = 0, temperature: float = 1.0, top_k: int = 0) -> list[list[str]]:
        """Token lists (characters, words or MIDI events)."""
        assert self.vocab is not None
        return [self.vocab.decode(row) for row in self.sample_ids(n, seed, temperature, top_k).tolist()]

    @torch.no_grad()
    def sample_rolls(self, n: int, seed: int = 0, temperature: float = 1.0, top_k: int = 0) -> np.ndarray:
        """Boolean piano-rolls (n, bars, steps, pitches), from either music model."""
        if self.kind != "midi":
            raise UserError("piano-rolls need a MIDI run")
        if self.cfg.model == "pianoroll-gan":
            if n <= 0:
                raise UserError(f"--n must be positive, got {n}")
            gen = torch.Generator().manual_seed(seed)
            z = torch.randn(n, self.cfg.z_dim, generator=gen)
            return (self.model(z) > 0).numpy()
        events = self.sample_tokens(n, seed, temperature, top_k)
        return sq.pianorolls([sq.events_to_notes(e) for e in events], self.cfg.bars)

    def sample_notes(self, n: int, seed: int = 0, temperature: float = 1.0, top_k: int = 0) -> list[list[sq.Note]]:
        if self.cfg.model == "pianoroll-gan":
            bars = self.cfg.bars
            return [sq.roll_to_notes(r.reshape(bars * sq.STEPS_PER_BAR, sq.N_PITCHES))
                    for r in self.sample_rolls(n, seed)]
        return [sq.events_to_notes(e) for e in self.sample_tokens(n, seed, temperature, top_k)]

    def sample_text(self, n: int, seed: int = 0, temperature: float = 1.0, top_k: int = 0) -> list[str]:
        if self.kind != "text":
            raise UserError("this run models MIDI; write .mid files instead of text")
        assert self.vocab is not None
        return [self.vocab.join(t) for t in self.sample_tokens(n, seed, temperature, top_k)]


def load(run_dir: str | Path, device: str = "cpu") -> SequenceRun:
    """The newest checkpoint of a sequence run (the EMA generator for GANs, which equals G at ema=0)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    tensors, meta = ckpt.load_latest(run_dir / "checkpoints")
    if meta.get("kind") != "sequence":
        raise UserError(f"{run_dir}: a '{meta.get('kind')}' run, not a sequence run")
    cfg = SequenceConfig.from_dict(meta["config"])
    vocab = sq.Vocab.from_dict(meta["vocab"]) if meta.get("vocab") else None
    if cfg.model == "pianoroll-gan":
        model: nn.Module = build_pianoroll(cfg)[0]
        ckpt.load_module("G_ema", model, tensors, str(run_dir))
    else:
        assert vocab is not None
        model = build_lm(cfg, len(vocab), cfg.max_len)
        ckpt.load_module("G" if cfg.model == "lm" else "G_ema", model, tensors, str(run_dir))
    return SequenceRun(run_dir, cfg, vocab, model.to(device).eval(), meta["data"], int(meta["step"]))


def write_samples(run: SequenceRun, n: int, out: str | Path, seed: int = 0, temperature: float = 1.0,
                  top_k: int = 0) -> list[Path]:
    """Text: one sample per line in ``out``. MIDI: ``out.mid`` for one sample, else ``out-000.mid``, ...
    (or files in ``out`` when it is a folder)."""
    out = Path(out)
    if out.suffix and not out.parent.exists():
        raise UserError(f"output folder does not exist: {out.parent}")
    if run.kind == "text":
        if out.suffix.lower() in (".mid", ".midi"):
            raise UserError("this run models text; write a text file, not .mid")
        lines = run.sample_text(n, seed, temperature, top_k)
        ckpt.atomic_write_bytes(out, "".join(ln + "\n" for ln in lines).encode())
        return [out]
    pieces = run.sample_notes(n, seed, temperature, top_k)
    if out.suffix.lower() in (".mid", ".midi"):
        paths = [out] if n == 1 else [out.with_name(f"{out.stem}-{i:03d}{out.suffix}") for i in range(n)]
    elif out.suffix:
        raise UserError(f"a MIDI run writes .mid files or a folder, not '{out.suffix}'")
    else:
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"{seed}-{i:03d}.mid" for i in range(n)]
    for notes, path in zip(pieces, paths):
        sq.write_midi(notes, path)
    return paths


# ---------------------------------------------------------------------------------------------
# evaluation


def evaluate(run_dir: str | Path, ref: str | None = None, n: int = 500, seed: int = 0, temperature: float = 1.0,
             top_k: int = 0, lm_run: str | Path | None = None) -> dict[str, Any]:
    """Text: BLEU-4 against ``ref`` (default: the run's held-out split), self-BLEU-4, novelty against the
    training split, and the NLL of the samples under a language model (``lm_run``, or the run itself when
    it is one). An LM run also reports the held-out NLL and perplexity of ``ref``. MIDI: MuseGAN-style
    statistics of samples and of ``ref`` and their distances."""
    from gankit.metrics import sequence as ms

    run = load(run_dir)
    result: dict[str, Any] = {"run": str(run_dir), "model": run.cfg.model, "n": n, "step": run.step,
                              "temperature": temperature, "top_k": top_k}
    if run.cfg.model == "gan":
        result["estimator"] = run.cfg.estimator
    if run.kind == "midi":
        if ref is None:
            if run.cfg.model == "pianoroll-gan":
                real = np.load(Path(run_dir) / "heldout_rolls.npz")["rolls"]
            else:
                events = [ln.split() for ln in _lines(Path(run_dir) / "heldout.txt")]
                real = sq.pianorolls([sq.events_to_notes(e) for e in events], run.cfg.bars)
        else:
            real = sq.load_sequences(ref, "midi", bars=run.cfg.bars, rolls=True).rolls
        fake = run.sample_rolls(n, seed, temperature, top_k)
        if len(real) == 0:
            raise UserError("no reference music to compare with; pass --ref")
        real_stats, fake_stats = ms.music_stats(real), ms.music_stats(fake)
        result.update({"real": real_stats, "generated": fake_stats,
                       "distance": ms.music_distances(real_stats, fake_stats), "n_real": len(real)})
        return result
    assert run.vocab is not None
    if ref is None:
        refs = [sq.tokenize(ln, run.vocab.level) for ln in _lines(Path(run_dir) / "heldout.txt")]
        result["ref"] = "heldout split"
    else:
        refs, _, _ = sq.load_text(ref, run.vocab.level)
        result["ref"] = str(ref)
    if len(refs) < 1:
        raise UserError("no reference sequences: the run has no held-out split; pass --ref DATA")
    train = {tuple(sq.tokenize(ln, run.vocab.level)) for ln in _lines(Path(run_dir) / "train.txt")}
    ids = run.sample_ids(n, seed, temperature, top_k)
    samples = [run.vocab.decode(row) for row in ids.tolist()]
    result.update(ms.text_metrics(samples, refs, train))
    lm = run if run.cfg.model == "lm" else (load(lm_run) if lm_run else None)
    if lm is not None:
        if lm.cfg.model != "lm" or lm.vocab is None or lm.vocab.level != run.vocab.level:
            raise UserError(f"{lm_run}: not a language-model run on the same kind of tokens as this run")
        # An LSTM has no length limit: samples cut at max_len without <eos> are scored with one appended.
        longest = max(len(s) for s in samples) + 1
        lm_ids = sq.encode_all(samples, lm.vocab, max(lm.cfg.max_len, longest), name="generated samples")
        result["lm_nll_of_samples"] = heldout_nll(lm.model, lm_ids)  # type: ignore[arg-type]
        result["lm"] = str(lm.run_dir)
    if run.cfg.model == "lm":
        ref_ids = sq.encode_all(refs, run.vocab, run.cfg.max_len, name=result["ref"])
        result["heldout_nll"] = heldout_nll(run.model, ref_ids)  # type: ignore[arg-type]
        result["heldout_ppl"] = math.exp(min(result["heldout_nll"], 50))
    result["samples"] = [run.vocab.join(s) for s in samples[:20]]
    return result


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [ln for ln in path.read_text().splitlines() if ln.strip()]

