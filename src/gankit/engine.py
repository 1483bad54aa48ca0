"""The adversarial engine: one step that alternates discriminator and generator updates, and the loop
around it (optimizers, generator EMA, logging, checkpoints, resume). Every GAN variant reuses both.

A variant supplies a :class:`Task`: its networks and three functions, ``generate``, ``d_loss`` and
``g_loss``. The engine never knows what the samples are (images, points, tables, sequences) or how
the losses are built; it only knows the order of the updates.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import signal
import sys
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from gankit import checkpoint as ckpt
from gankit import distributed
from gankit.config import LogConfig, OptimConfig, TrainConfig
from gankit.errors import UserError

Batch = dict[str, Tensor]
Logs = dict[str, Tensor]


class Task(Protocol):
    """What a GAN variant gives the engine. ``G`` and ``D`` may be ModuleDicts (CycleGAN has two of each)."""

    G: nn.Module
    D: nn.Module

    # reuse_fake = True (optional attribute): generate() is a plain forward of G, so with n_critic=1
    # the engine may run it once per step, with gradients, and give D the detached result.
    # state_dict() / load_state_dict() (optional): tensors beyond G and D that a resumed run needs
    # (CycleGAN's history pools); saved in every checkpoint under "task.".

    def generate(self, batch: Batch) -> Any:
        """Fake samples for this batch of real data (noise for a plain GAN, a source image for translation)."""

    def d_loss(self, batch: Batch, fake: Any, step: int) -> tuple[Tensor, Logs]:
        """Discriminator loss, regularisers included, and detached scalars to log."""

    def g_loss(self, batch: Batch, fake: Any, step: int) -> tuple[Tensor, Logs]:
        """Generator loss and detached scalars to log."""


def detach(fake: Any) -> Any:
    """``fake`` without its graph (a tensor, or a dict/tuple of them)."""
    if isinstance(fake, Tensor):
        return fake.detach()
    if isinstance(fake, dict):
        return {k: detach(v) for k, v in fake.items()}
    if isinstance(fake, (tuple, list)):
        return type(fake)(detach(v) for v in fake)
    return fake


def split(batch: Batch, parts: int) -> list[Batch]:
    """Micro-batches for gradient accumulation."""
    if parts == 1:
        return [batch]
    chunks = {k: v.chunk(parts) for k, v in batch.items()}
    return [{k: chunks[k][i] for k in batch} for i in range(parts)]


def sync_at_last(net: nn.Module, i: int, parts: int) -> AbstractContextManager:
    """Under DDP, gradient accumulation all-reduces once, after the last micro-batch's backward pass
    (``no_sync`` for the others); a no-op for a network trained in one process."""
    return net.no_sync() if i < parts - 1 and hasattr(net, "no_sync") else nullcontext()


_PARAMETERS: weakref.WeakKeyDictionary[nn.Module, list[Tensor]] = weakref.WeakKeyDictionary()


def parameter_list(net: nn.Module) -> list[Tensor]:
    """``list(net.parameters())``, gathered once per network: the step asks for the critic's three times and
    the non-finite guard for both networks', and walking a module tree cost more than what is done with the
    list (8 of 8.5 µs for the critic's trainable switch). The list is the network's parameters when first
    seen: gankit's networks are built whole before training, and checkpoints load into the same tensors."""
    params = _PARAMETERS.get(net)
    if params is None:
        params = _PARAMETERS[net] = list(net.parameters())
    return params


def set_trainable(net: nn.Module, flag: bool) -> None:
    """``net.requires_grad_(flag)`` over :func:`parameter_list`."""
    for p in parameter_list(net):
        p.requires_grad_(flag)


@contextmanager
def players(task: Task, G: nn.Module, D: nn.Module) -> Iterator[None]:
    """Let ``task`` play with these modules for one phase (a DDP wrapper or the raw network)."""
    saved = task.G, task.D
    task.G, task.D = G, D
    try:
        yield
    finally:
        task.G, task.D = saved


class Precision:
    """Mixed precision for the step: ``bf16`` or ``fp16`` autocast around both players' forward passes.
    fp16 keeps one gradient scaler per player (its range is too narrow for small gradients; bf16 has
    fp32's range and needs none). The scaler skips updates whose gradients overflowed and lowers its
    scale, so under fp16 the non-finite guard judges the loss only."""

    DTYPES: ClassVar[dict[str, torch.dtype | None]] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

    def __init__(self, name: str = "fp32", device_type: str = "cpu"):
        if name not in self.DTYPES:
            raise UserError(f"train.precision must be one of {', '.join(self.DTYPES)}, got '{name}'")
        self.name, self.dtype, self.device_type = name, self.DTYPES[name], device_type
        self.scalers = {p: torch.amp.GradScaler(device_type) for p in "dg"} if name == "fp16" else {}

    def autocast(self) -> Any:
        if self.dtype is None:  # fp32: entering a disabled autocast still costs a few microseconds, three times a step
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, player: str, loss: Tensor) -> None:
        (self.scalers[player].scale(loss) if self.scalers else loss).backward()

    def unscale(self, player: str, opt: torch.optim.Optimizer) -> None:
        if self.scalers:  # gradient norms and the guard see true gradients
            self.scalers[player].unscale_(opt)

    def step(self, player: str, opt: torch.optim.Optimizer) -> None:
        if self.scalers:
            self.scalers[player].step(opt)
            self.scalers[player].update()
        else:
            opt.step()

    def skip(self, player: str) -> None:
        """A vetoed update: the scaler still closes its step (its next unscale_ would fail otherwise)."""
        if self.scalers:
            self.scalers[player].update()

    def state_dict(self) -> dict[str, Any]:
        return {p: s.state_dict() for p, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for p, s in self.scalers.items():
            if p in state:
                s.load_state_dict(state[p])


FP32 = Precision()


def adversarial_step(task: Task, opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer,
                     batches: Iterator[Batch], step: int, n_critic: int = 1, accumulate: int = 1,
                     measure: Callable[[str, nn.Module], Logs] | None = None,
                     guard: Callable[[str, Tensor, nn.Module | None], bool] | None = None,
                     synced: tuple[nn.Module, nn.Module] | None = None, precision: Precision = FP32) -> Logs:
    """One generator update preceded by ``n_critic`` discriminator updates. Returns detached logs.
    ``guard(phase, loss, net)``, called before each optimizer step, may veto it (non-finite policy).
    ``synced``: G and D in DDP (several processes). Each phase uses the wrapper only for the network it
    updates; the other one runs raw, since DDP would wait for gradients it never gets. ``precision``:
    autocast (and fp16's gradient scalers) around the players' forward passes."""
    logs: Logs = {}
    G_sync, D_sync = synced or (task.G, task.D)
    # With one critic step and no accumulation, one G forward serves both phases, as in the classic
    # loop: D learns from the detached fakes, then G's loss back-propagates through the same ones.
    reuse = n_critic == 1 and accumulate == 1 and getattr(task, "reuse_fake", False)
    set_trainable(task.D, True)
    for _ in range(n_critic):
        batch = next(batches)
        opt_d.zero_grad(set_to_none=True)
        for i, micro in enumerate(split(batch, accumulate)):
            if reuse:
                with players(task, G_sync, task.D), precision.autocast():
                    fake_g = task.generate(micro)
                fake = detach(fake_g)
            else:
                with torch.no_grad(), precision.autocast():
                    fake = task.generate(micro)
            with sync_at_last(D_sync, i, accumulate):
                with players(task, task.G, D_sync), precision.autocast():
                    loss_d, logs_d = task.d_loss(micro, fake, step)
                precision.backward("d", loss_d / accumulate)
        precision.unscale("d", opt_d)
        if measure:
            logs.update(measure("d", task.D))
        if guard is None or guard("d", loss_d, None if precision.scalers else task.D):
            precision.step("d", opt_d)
        else:
            precision.skip("d")
    logs.update(logs_d)

    set_trainable(task.D, False)  # the generator phase needs gradients through D, not for D's weights
    opt_g.zero_grad(set_to_none=True)
    for i, micro in enumerate(split(batch, accumulate)):
        with sync_at_last(G_sync, i, accumulate):
            with players(task, G_sync, task.D), precision.autocast():
                fake = fake_g if reuse else task.generate(micro)
                loss_g, logs_g = task.g_loss(micro, fake, step)
            precision.backward("g", loss_g / accumulate)
    precision.unscale("g", opt_g)
    if measure:
        logs.update(measure("g", task.G))
    if guard is None or guard("g", loss_g, None if precision.scalers else task.G):
        precision.step("g", opt_g)
    else:
        precision.skip("g")
    set_trainable(task.D, True)
    logs.update(logs_g)
    return logs


# ---------------------------------------------------------------------------------------------
# pieces of the loop


def grad_norms(name: str, net: nn.Module) -> Logs:
    """Global and per-block gradient norms (blocks = the network's top-level children)."""
    out: Logs = {}
    total = []
    for child_name, child in net.named_children():
        grads = [p.grad for p in child.parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            out[f"grad_norm_{name}/{child_name}"] = norm
            total.append(norm)
    out[f"grad_norm_{name}"] = torch.linalg.vector_norm(torch.stack(total)) if total else torch.tensor(0.0)
    return out


def make_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if cfg.name not in kinds:
        raise UserError(f"unknown optimizer '{cfg.name}'; choose adam or adamw")
    params = list(params)
    kw = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "weight_decay": cfg.weight_decay}
    try:
        # One fused kernel for all tensors: on CPU PyTorch's default is a per-tensor loop, about 3x slower,
        # which small GANs (toy MLPs, tables) feel in every step.
        return kinds[cfg.name](params, fused=True, **kw)
    except (RuntimeError, ValueError, TypeError):  # a device or dtype the fused kernel does not support
        return kinds[cfg.name](params, **kw)


class WeightEMA:
    """Exponential moving average of the generator's weights (Karras et al., 2018; Yazici et al., 2019),
    with buffers (batch-norm statistics) copied. The tensor lists are gathered once (:func:`parameter_list`):
    walking the module tree each step cost more than the averaging itself on small networks."""

    def __init__(self, ema: nn.Module, net: nn.Module):
        self.params = (parameter_list(ema), parameter_list(net))
        self.buffers = (list(ema.buffers()), list(net.buffers()))

    @torch.no_grad()
    def update(self, decay: float) -> None:
        if decay == 0.0:
            torch._foreach_copy_(*self.params)
        else:
            torch._foreach_lerp_(*self.params, 1.0 - decay)
        if self.buffers[0]:
            torch._foreach_copy_(*self.buffers)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name} but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}'") from None


@dataclass
class RunState:
    step: int = 0
    started: float = field(default_factory=time.time)
    history_s: float = 0.0  # training seconds in earlier sessions of a resumed run


class Hook(Protocol):
    """Watches the run at each logging step. It may add keys to ``record`` (which then goes to
    metrics.jsonl) and act through ``trainer.event``, ``trainer.request_stop`` or ``trainer.rollback``."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None: ...


_SIGNALLED: int | None = None  # SIGINT/SIGTERM caught by any Trainer of this process


class Trainer:
    """The loop: steps, EMA, logs, snapshots and checkpoints for any :class:`Task`.

    ``meta`` is JSON saved in every checkpoint (the config and the data description), so that a run
    folder can be loaded without the code that created it guessing anything.
    """

    def __init__(self, task: Task, batches: Any, run_dir: Path, train: TrainConfig, opt_g: OptimConfig,
                 opt_d: OptimConfig, log: LogConfig, meta: dict[str, Any], d_output: str = "probability",
                 snapshot: Callable[[nn.Module, Path], None] | None = None, hooks: list[Hook] | None = None,
                 synced: tuple[nn.Module, nn.Module] | None = None):
        self.task, self.batches, self.run_dir = task, batches, Path(run_dir)
        self.hooks = list(hooks or [])
        self.stop_reason: str | None = None
        self.best_steps: set[int] = set()  # checkpoints kept beyond keep_last (e.g. the best by a metric)
        self.train_cfg, self.log_cfg, self.meta = train, log, meta
        self.d_output, self.snapshot = d_output, snapshot
        self.opt_g = make_optimizer(task.G.parameters(), opt_g)
        self.opt_d = make_optimizer(task.D.parameters(), opt_d)
        self.world = distributed.world()  # under torchrun only rank 0 writes the run folder
        self.synced = synced  # G and D in DDP (gankit.distributed.wrap) when the task splits its batches over ranks
        device = next(task.G.parameters()).device
        self.precision = Precision(getattr(train, "precision", "fp32"), device.type)
        self.G_ema = copy.deepcopy(task.G).eval().requires_grad_(False)
        self._ema = WeightEMA(self.G_ema, task.G)
        self.state = RunState()
        self._stop_signal: int | None = None
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._skips = 0  # updates skipped in a row (train.nonfinite=skip)
        self._first_nonfinite: Tensor | None = None  # rollback/stop: first bad step, on the device (-1: none)
        self._nonfinite_rollbacks = 0
        # Optional: step -> factor on each group's base lr ("initial_lr", saved with the optimizer),
        # applied before every step (e.g. CycleGAN's constant-then-linear decay).
        self.lr_schedule: Callable[[int], float] | None = None
        if train.lr_decay_start < 1.0:
            self.lr_schedule = linear_decay(train.steps, train.lr_decay_start)

    # -- checkpoints --------------------------------------------------------------------------
    def _tensors(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {**ckpt.module_tensors("G", self.task.G), **ckpt.module_tensors("D", self.task.D),
                   **ckpt.module_tensors("G_ema", self.G_ema)}
        info = {}
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            t, info[name] = ckpt.optimizer_tensors(name, opt)
            tensors.update(t)
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        if hasattr(self.batches, "state_dict"):
            tensors.update({f"batches.{k}": v for k, v in self.batches.state_dict().items()})
        if hasattr(self.task, "state_dict"):  # e.g. CycleGAN's history pools
            tensors.update({f"task.{k}": v for k, v in self.task.state_dict().items()})
        return tensors, info

    def save(self) -> None:
        if self.world.is_main:
            tensors, info = self._tensors()
            meta = {**self.meta, "step": self.state.step, "optim": info, "scalers": self.precision.state_dict(),
                    "train_seconds": self.state.history_s + time.time() - self.state.started}
            ckpt.save_checkpoint(self.ckpt_dir, self.state.step, tensors, meta, keep_last=self.log_cfg.keep_last,
                                 keep_steps=self.best_steps)
        distributed.barrier()  # no rank runs ahead (or reads the checkpoint) before it is complete

    def resume(self) -> None:
        """Continue from the newest valid checkpoint. A run killed before its first checkpoint starts
        again from step 0 (the same seeds give the same run)."""
        if not ckpt.read_manifest(self.ckpt_dir):
            warnings.warn(f"{self.ckpt_dir}: no checkpoint yet, starting from step 0", stacklevel=2)
            self._trim_logs()
            self.event("resume", to_step=0)
            return
        tensors, meta = ckpt.load_latest(self.ckpt_dir)
        self._first_nonfinite, self._skips = None, 0
        name = str(self.ckpt_dir)
        for prefix, module in (("G", self.task.G), ("D", self.task.D), ("G_ema", self.G_ema)):
            ckpt.load_module(prefix, module, tensors, name)
        ckpt.load_optimizer("opt_g", self.opt_g, tensors, meta["optim"]["opt_g"])
        ckpt.load_optimizer("opt_d", self.opt_d, tensors, meta["optim"]["opt_d"])
        self.precision.load_state_dict(meta.get("scalers", {}))
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        if hasattr(self.batches, "load_state_dict"):
            self.batches.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("batches.")})
        if hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("task.")})
        self.state.step = int(meta["step"])
        self.state.history_s = float(meta.get("train_seconds", 0.0))
        self._trim_logs()
        self.event("resume", to_step=self.state.step)

    def _trim_logs(self) -> None:
        """Drop what an interrupted session logged after the checkpoint being resumed (metrics.jsonl
        lines beyond its step), any line a crash cut short, and temporary files it left."""
        if not self.world.is_main:
            return
        for tmp in self.run_dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        for name, upto in (("metrics.jsonl", self.state.step), ("events.jsonl", None)):
            path = self.run_dir / name
            if not path.exists():
                continue
            keep = []
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and (upto is None or record.get("step", 0) <= upto):
                    keep.append(line + "\n")
            ckpt.atomic_write_bytes(path, "".join(keep).encode())

    # -- actions for hooks --------------------------------------------------------------------
    def event(self, kind: str, **details: Any) -> None:
        """Record something the run did or noticed in ``events.jsonl`` (rollbacks, skips, stops)."""
        if not self.world.is_main:
            return
        line = json.dumps({"step": self.state.step, "event": kind, **details})
        with open(self.run_dir / "events.jsonl", "a") as f:
            f.write(line + "\n")

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.event("stop", reason=reason)

    def rollback(self, reason: str, lr_factor: float = 0.5) -> bool:
        """Return to the last checkpoint and scale both learning rates by ``lr_factor``. False if there
        is no checkpoint to return to."""
        if not ckpt.read_manifest(self.ckpt_dir):
            return False
        from_step = self.state.step
        self.resume()
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] *= lr_factor
                if "initial_lr" in group:  # keep the reduction under an lr_schedule
                    group["initial_lr"] *= lr_factor
        self.event("rollback", reason=reason, from_step=from_step, to_step=self.state.step,
                   lr_g=self.opt_g.param_groups[0]["lr"], lr_d=self.opt_d.param_groups[0]["lr"])
        return True

    # -- numerical faults (train.nonfinite) ---------------------------------------------------
    MAX_SKIPS = 25  # updates skipped in a row before the skip policy gives up and stops the run
    MAX_ROLLBACKS = 3

    def _guard(self, phase: str, loss: Tensor, net: nn.Module | None) -> bool:
        """Before an optimizer step: are the loss (of the last micro-batch) and the gradients finite?

        ``skip`` must decide now, so it reads one flag from the device per phase: free on a CPU, one
        synchronisation per phase on a GPU. ``rollback`` and ``stop`` keep the first bad step on the
        device and act at the next logging step, where the loop synchronises anyway; meanwhile no
        checkpoint is written."""
        grads = [p.grad for p in parameter_list(net) if p.grad is not None] if net is not None else []
        total = loss.detach().float().sum()
        if grads:
            total = total + torch.stack(torch._foreach_norm(grads)).float().sum()
        finite = torch.isfinite(total)
        if self.train_cfg.nonfinite != "skip":
            first = self._first_nonfinite
            if first is None:
                first = torch.full((), -1, dtype=torch.long, device=finite.device)
            self._first_nonfinite = torch.where(finite | (first >= 0), first, self.state.step + 1)
            return True
        if finite:
            self._skips = 0
            return True
        self._skips += 1
        self.event("nonfinite", action="skip", phase=phase, at_step=self.state.step + 1)
        if self._skips >= self.MAX_SKIPS:
            self.request_stop(f"non-finite loss or gradients in {self._skips} updates in a row")
        return False

    def _nonfinite_step(self) -> int | None:
        """rollback/stop policies: the first step with a non-finite loss or gradient since the start or
        the last rollback, or None."""
        if self._first_nonfinite is None:
            return None
        at = int(self._first_nonfinite)
        return at if at >= 0 else None

    def _act_on_nonfinite(self) -> bool:
        """rollback/stop policies: act on a flagged fault. True if it did (rolled back or stopping)."""
        at = self._nonfinite_step()
        if at is None:
            return False
        reason = f"non-finite loss or gradients at step {at}"
        self.event("nonfinite", action=self.train_cfg.nonfinite, at_step=at)
        rollbacks_left = self._nonfinite_rollbacks < self.MAX_ROLLBACKS
        if self.train_cfg.nonfinite == "rollback" and rollbacks_left and self.rollback(reason):
            self._nonfinite_rollbacks += 1
            return True
        self.request_stop(reason)  # the flag stays set, so nothing after the fault is saved
        return True

    # -- signals ------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        global _SIGNALLED
        self._stop_signal = _SIGNALLED = signum

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, steps: int) -> dict[str, Any]:
        """Train until ``steps`` generator steps have been taken in total (a resumed run continues)."""
        from tqdm import tqdm

        if _SIGNALLED is not None:
            # The user asked this process to stop (Ctrl-C, kill, timeout): a script that trains several
            # runs must not carry on with the next one.
            raise KeyboardInterrupt(f"signal {_SIGNALLED} received earlier; not starting another training")

        cfg, log = self.train_cfg, self.log_cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = self.run_dir / "metrics.jsonl" if self.world.is_main else os.devnull
        metrics_file = open(metrics_path, "a")  # noqa: SIM115 - open for the whole loop, reopened after a rollback
        old_handlers = {}
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, self._on_signal)
        bar = tqdm(total=steps, initial=self.state.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not log.progress or not self.world.is_main, file=sys.stderr, mininterval=0.5)
        sums: dict[str, Tensor] = {}
        count, t_last, step_last = 0, time.time(), self.state.step
        last_record: dict[str, Any] = {}
        try:
            self.task.G.train()
            self.task.D.train()
            while self.state.step < steps and self._stop_signal is None and self.stop_reason is None:
                step = self.state.step
                measuring = (step + 1) % log.every == 0 or step + 1 == steps
                if self.lr_schedule is not None:
                    self._apply_lr_schedule(step)
                logs = adversarial_step(self.task, self.opt_d, self.opt_g, self.batches, step, cfg.n_critic,
                                        cfg.accumulate, grad_norms if measuring else None, self._guard,
                                        self.synced, self.precision)
                self._ema.update(cfg.ema if step >= cfg.ema_start else 0.0)
                self.state.step = step = step + 1
                for k, v in logs.items():
                    if not k.startswith("grad_norm"):
                        sums[k] = sums[k] + v if k in sums else v.clone()
                count += 1
                bar.update(1)
                if measuring:
                    # The only host-device synchronisation: once per logging interval.
                    now = time.time()
                    sums = distributed.mean_over_ranks(sums)
                    record = {"step": step, "time": round(now - self.state.started + self.state.history_s, 3)}
                    record.update({k: float(v) / count for k, v in sums.items()})
                    record.update({k: float(v) for k, v in logs.items() if k.startswith("grad_norm")})
                    record["samples_per_s"] = (step - step_last) * self._batch_size() * cfg.n_critic / (now - t_last)
                    record["lr_g"] = self.opt_g.param_groups[0]["lr"]
                    record["lr_d"] = self.opt_d.param_groups[0]["lr"]
                    record["d_output"] = self.d_output
                    record["nonfinite"] = int(not all(math.isfinite(v) for v in record.values()
                                                      if isinstance(v, float)))
                    if not self._act_on_nonfinite():  # train.nonfinite rollback/stop act before the hooks
                        for hook in self.hooks:
                            hook.on_log(self, record)
                    if self.state.step != step:  # rolled back (train.nonfinite or a hook): this record is void
                        metrics_file.close()
                        metrics_file = open(metrics_path, "a")  # noqa: SIM115 - closed in the loop's finally
                        sums, count, t_last, step_last = {}, 0, time.time(), self.state.step
                        bar.n = self.state.step
                        continue
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                    last_record = record
                    sums, count, t_last, step_last = {}, 0, now, step
                    bar.set_postfix({k: f"{record[k]:.3g}" for k in ("loss_d", "loss_g", "d_real", "d_fake",
                                                                    "samples_per_s") if k in record})
                if self.snapshot and self.world.is_main and (step % log.sample_every == 0 or step == steps):
                    self.snapshot(self.G_ema, self.run_dir / "samples" / f"step-{step:08d}.png")
                if log.checkpoints and (step % log.checkpoint_every == 0 or step == steps) \
                        and self._nonfinite_step() is None:
                    self.save()
            # A signal stops cleanly: the work so far is kept and --resume continues it. A health stop saves
            # nothing: the last good checkpoints stay the newest.
            if log.checkpoints and self._stop_signal is not None and self._nonfinite_step() is None:
                self.save()
        finally:
            bar.close()
            metrics_file.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        summary = {"step": self.state.step, "steps": steps, "finished": self.state.step >= steps,
                   "interrupted": self._stop_signal is not None, "stop_reason": self.stop_reason,
                   "train_seconds": round(self.state.history_s + time.time() - self.state.started, 2),
                   "last": last_record}
        if self.world.is_main:
            ckpt.atomic_write_json(self.run_dir / "summary.json", summary)
        return summary

    def _apply_lr_schedule(self, step: int) -> None:
        factor = self.lr_schedule(step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def _batch_size(self) -> int:
        """Samples per step over all ranks."""
        return int(getattr(self.batches, "batch_size", 0)) * self.world.size


def compile_module(module: nn.Module) -> nn.Module:
    """``torch.compile`` (train.compile): the parameters stay the module's own, so checkpoints, the
    EMA and the optimizers are untouched."""
    return torch.compile(module)


def linear_decay(steps: int, decay_start: float) -> Callable[[int], float]:
    """lr factor: 1 for the first ``decay_start * steps`` steps, then linearly towards 0 (as in
    pix2pix/CycleGAN's ``lambda_rule``). A late decay lets G settle instead of orbiting the optimum."""
    n_const = round(decay_start * steps)

    def factor(step: int) -> float:
        return 1.0 - max(0, step - n_const) / float(steps - n_const + 1)

    return factor


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread() and os.name == "posix"
