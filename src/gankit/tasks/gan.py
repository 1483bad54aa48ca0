"""The plain (optionally class-conditional) GAN: noise z -> sample, judged by D. Images and vectors.

``train(config, out)`` is the whole recipe behind ``gankit train``; ``load(run_dir)`` gives back a
:class:`Generator` for sampling.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.nn import functional as F

from gankit import checkpoint as ckpt
from gankit import distributed, losses
from gankit.config import Config, LossConfig
from gankit.data import Batches, Dataset, load_data, to_data_units
from gankit.engine import Batch, Logs, Trainer, compile_module, resolve_device, seed_everything
from gankit.errors import UserError
from gankit.nets import build_discriminator, build_generator
from gankit.nets.mlp import latent_code


class GAN:
    """The adversarial game of Goodfellow et al. (2014) with a loss from :data:`gankit.losses.LOSSES`."""

    reuse_fake = True  # generate() is one forward of G: the engine may share it between the two phases

    def __init__(self, G: nn.Module, D: nn.Module, loss: LossConfig, acgan: bool = False,
                 augment: nn.Module | None = None):
        self.G, self.D, self.cfg = G, D, loss
        self.loss = losses.get_loss(loss.name)
        self.acgan = acgan  # D also classifies (Odena et al., 2017); both players get its cross-entropy
        self.info = loss.info > 0  # InfoGAN (Chen et al., 2016): D's Q head recovers G's categorical code
        self.augment = augment  # gankit.augmentations pipeline: every image D sees goes through it
        if augment is not None:
            D.add_module("augment_pipe", augment)  # so its state (ADA's p) is saved and resumed with D
        if (loss.pl > 0 or loss.mixing > 0) and not hasattr(G, "mapping"):
            raise UserError("loss.pl and loss.mixing need a style-based generator (g.family=stylegan2)")

    def judge(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """D's realness logits and, for AC-GAN, its class logits (for InfoGAN its latent-code logits), of the
        augmented ``x``."""
        if self.augment is not None:
            x = self.augment(x)
        if self.acgan:
            return self.D(x, y, aux=True)
        return self.D(x, y, info=True) if self.info else (self.D(x, y), None)

    def generate(self, batch: Batch) -> Tensor:
        x = batch["x"]
        z = batch["z"] if "z" in batch else torch.randn(x.shape[0], self.G.z_dim, device=x.device)
        if self.info:  # the engine calls d_loss/g_loss right after generate: both read this step's codes
            self.code = latent_code(z, self.G.codes)
        if self.cfg.mixing > 0:
            return self.G(z, batch.get("y"), mixing=self.cfg.mixing)
        return self.G(z, batch.get("y"))

    def path_length(self, batch: Batch) -> Tensor:
        """StyleGAN2's path-length penalty on half a batch: ``|J_w^T u|`` for random image-space ``u``
        should stay at its running mean ``G.pl_mean``, so a fixed step in w moves the image by a fixed amount."""
        x, y = batch["x"], batch.get("y")
        n = max(1, x.shape[0] // 2)
        ws = self.G.map(torch.randn(n, self.G.z_dim, device=x.device), y[:n] if y is not None else None)
        img = self.G.synthesis(ws, self.G.noise_mode)
        u = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * u).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        with torch.no_grad():
            self.G.pl_mean.copy_(self.G.pl_mean.lerp(lengths.mean(), 0.01))
        return (lengths - self.G.pl_mean).square().mean()

    def d_loss(self, batch: Batch, fake: Tensor, step: int) -> tuple[Tensor, Logs]:
        real, y = batch["x"], batch.get("y")
        lazy_r1 = self.cfg.r1 > 0 and step % self.cfg.r1_every == 0
        if lazy_r1:
            real = real.detach().requires_grad_(True)
        (real_out, real_cls), (fake_out, fake_cls) = self.judge(real, y), self.judge(fake, y)
        loss = self.loss.d(real_out, fake_out)
        logs = {"loss_d_adv": loss.detach()}
        if hasattr(self.augment, "observe"):  # ADA: D(real)'s signs drive the augmentation probability
            self.augment.observe(real_out)
            logs.update(ada_p=self.augment.p.clone(), ada_rt=self.augment.rt.clone())
        if self.acgan:
            aux = F.cross_entropy(real_cls, y) + F.cross_entropy(fake_cls, y)
            loss = loss + self.cfg.aux * aux
            logs.update(loss_d_aux=aux.detach(), aux_acc_real=(real_cls.argmax(1) == y).float().mean())
        # Penalties on input gradients run in fp32 under mixed precision: squared bf16/fp16 gradient
        # norms lose their small values (and overflow in fp16).
        mixed = torch.is_autocast_enabled(real.device.type)
        if self.cfg.gp > 0:
            with torch.autocast(real.device.type, enabled=False):
                gp = losses.gradient_penalty(lambda x: self.D(x, y), real.float(), fake.float())
            loss = loss + self.cfg.gp * gp
            logs["gp"] = gp.detach()
        if lazy_r1:
            if mixed:
                with torch.autocast(real.device.type, enabled=False):
                    r1 = losses.r1_penalty(self.judge(real, y)[0].float(), real)
            else:
                r1 = losses.r1_penalty(real_out, real)
            loss = loss + 0.5 * self.cfg.r1 * self.cfg.r1_every * r1
            logs["r1"] = r1.detach()
        if self.info:  # Q shares D's body and learns, on the fakes, which code made them
            info = F.cross_entropy(fake_cls, self.code)
            loss = loss + self.cfg.info * info
            logs["loss_info"] = info.detach()
        logs.update(discriminator_signals(real_out.detach(), fake_out.detach()))
        logs["loss_d"] = loss.detach()
        return loss, logs

    def g_loss(self, batch: Batch, fake: Tensor, step: int) -> tuple[Tensor, Logs]:
        y = batch.get("y")
        real_out = self.judge(batch["x"], y)[0] if self.loss.needs_real_for_g else None
        fake_out, fake_cls = self.judge(fake, y)
        loss = self.loss.g(fake_out, real_out)
        logs = {}
        if self.acgan:
            aux = F.cross_entropy(fake_cls, y)
            loss = loss + self.cfg.aux * aux
            logs.update(loss_g_aux=aux.detach(), aux_acc_fake=(fake_cls.argmax(1) == y).float().mean())
        if self.cfg.pl > 0 and step % self.cfg.pl_every == 0:  # lazy, scaled by its interval
            with torch.autocast(batch["x"].device.type, enabled=False):  # a gradient norm: fp32, as R1
                pl = self.path_length(batch)
            loss = loss + self.cfg.pl * self.cfg.pl_every * pl
            logs["pl"] = pl.detach()
        if self.info:  # G makes its codes tell apart: one code per mode rather than samples bridging modes
            loss = loss + self.cfg.info * F.cross_entropy(fake_cls, self.code)
        logs["loss_g"] = loss.detach()
        return loss, logs


def discriminator_signals(real_out: Tensor, fake_out: Tensor) -> Logs:
    """D(real), D(fake) as probabilities (sigmoid of the logits) and D's accuracy on each."""
    return {"d_real": torch.sigmoid(real_out).mean(), "d_fake": torch.sigmoid(fake_out).mean(),
            "acc_real": (real_out > 0).float().mean(), "acc_fake": (fake_out < 0).float().mean(),
            "logit_real": real_out.mean(), "logit_fake": fake_out.mean()}


# ---------------------------------------------------------------------------------------------
# building, training, loading


def build_nets(config: Config, data_meta: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    shape = tuple(data_meta["shape"])
    n_classes = len(data_meta["classes"]) if config.data.conditional else 0
    G = build_generator(config.g, config.train.z_dim, shape, n_classes)
    D = build_discriminator(config.d, shape, n_classes, config.g.codes if config.loss.info > 0 else 0)
    return G, D


def _snapshot(meta: dict[str, Any], n: int, z_dim: int, conditional: bool, device: torch.device):
    """A function that draws the same latents every time, so grids over time are comparable."""
    gen = torch.Generator().manual_seed(1234)
    z = torch.randn(n, z_dim, generator=gen).to(device)
    y = (torch.arange(n) % max(len(meta["classes"]), 1)).to(device) if conditional else None

    @torch.no_grad()
    def snapshot(G: nn.Module, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        x = G(z, y).cpu()
        if meta["kind"] == "image":
            from gankit.data.images import make_grid

            nrow = len(meta["classes"]) if conditional else None
            make_grid(x[:n], nrow=nrow, scale=max(1, 64 // x.shape[-1])).save(path)
        else:
            save_scatter(to_data_units(x, meta).numpy(), path)

    return snapshot


def save_scatter(points: Any, path: Path, reference: Any = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if reference is not None:
        ax.scatter(reference[:, 0], reference[:, 1], s=2, c="#bbbbbb", label="real")
    ax.scatter(points[:, 0], points[:, 1], s=2, c="#d62728", alpha=0.5, label="generated")
    ax.set_aspect("equal")
    ax.set_title(path.stem)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def check_sync_bn(config: Config, G: nn.Module, D: nn.Module) -> None:
    """SyncBatchNorm has no second derivative in PyTorch, which R1, the gradient penalty and the
    path-length penalty need through the network they regularise."""
    def has_bn(net: nn.Module) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())

    d_penalty = config.loss.r1 > 0 or config.loss.gp > 0
    if has_bn(D) and d_penalty:
        raise UserError("train.sync_bn cannot be combined with R1 or the gradient penalty on a discriminator with "
                        "BatchNorm (SyncBatchNorm has no double backward); use d.norm=none or turn the penalty off")
    if has_bn(G) and config.loss.pl > 0:
        raise UserError("train.sync_bn cannot be combined with the path-length penalty on a generator with BatchNorm")


def players_for(G: nn.Module, D: nn.Module, distributed_run: bool, compiled: bool
                ) -> tuple[nn.Module, nn.Module] | None:
    """The modules each phase trains through: DDP wrappers under torchrun, compiled with
    ``train.compile``; None when the raw networks serve."""
    if not distributed_run and not compiled:
        return None
    G_sync, D_sync = (distributed.wrap(G), distributed.wrap(D)) if distributed_run else (G, D)
    return (compile_module(G_sync), compile_module(D_sync)) if compiled else (G_sync, D_sync)


def train(config: Config, out: str | Path, steps: int | None = None, resume: bool = False,
          data: Dataset | None = None) -> dict[str, Any]:
    """Train ``config`` into the run folder ``out``; returns the summary (also in ``summary.json``)."""
    config.validate()
    out = Path(out)
    ckpt.check_run_folder(out, resume)
    if resume:
        saved = Config.load(out / "config.yaml")
        saved.train.steps = steps if steps is not None else max(saved.train.steps, config.train.steps)
        config = saved
    elif steps is not None:
        config.train.steps = steps
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    device = distributed.local_device(resolve_device(config.train.device))
    world = distributed.setup(device)
    ds = data if data is not None else load_data(config.data)
    if config.data.conditional and ds.y is None:
        raise UserError("data.conditional needs labelled data")
    if config.g.codes == -1:  # resolved once: config.yaml keeps the count, so resume and load use it
        if ds.kind == "image":
            raise UserError("g.codes=-1 (count the clusters) works on vector data, not images")
        from gankit.data.clusters import count_clusters
        from gankit.health import warn

        k = count_clusters(ds.x.cpu().numpy(), seed=config.train.seed)
        # one cluster: nothing to jump between, so no code (and no Q head)
        config.g.codes, config.loss.info = (k, config.loss.info) if k > 1 else (0, 0.0)
        if world.is_main:
            warn(f"g.codes=-1: the data form {k} separate clusters (HDBSCAN); "
                 + (f"the InfoGAN code gets {k} values" if k > 1 else "no InfoGAN code"))
    G, D = build_nets(config, ds.meta())
    G, D = G.to(device), D.to(device)
    if config.train.sync_bn and world.active:
        check_sync_bn(config, G, D)
        G, D = distributed.sync_batchnorm(G, device), distributed.sync_batchnorm(D, device)
    if config.train.channels_last and ds.kind == "image":
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        ds = dataclasses.replace(ds, x=ds.x.contiguous(memory_format=torch.channels_last))
    if config.train.augment != "none" and ds.kind != "image":
        raise UserError(f"train.augment={config.train.augment} needs image data")
    from gankit.augmentations import build_augment

    augment = build_augment(config.train.augment, config.train.ada_target, config.train.ada_kimg)
    task = GAN(G, D, config.loss, acgan=config.data.conditional and config.d.cond == "acgan",
               augment=augment.to(device) if augment is not None else None)
    # Under torchrun the noise comes with the data (a global draw, sliced per rank): N processes then
    # take exactly the steps of one process with the global batch.
    batches = Batches(ds if config.data.conditional else Dataset(x=ds.x, kind=ds.kind), config.data.batch_size,
                      device, seed=config.train.seed, rank=world.rank, world=world.size,
                      z_dim=config.train.z_dim if world.launched else 0)
    meta = {"kind": "gan", "config": config.to_dict(), "data": ds.meta()}
    snapshot = _snapshot(ds.meta(), config.log.n_samples, config.train.z_dim, config.data.conditional, device)
    from gankit.eval import make_eval_hook
    from gankit.health import make_monitor

    hooks = [h for h in (make_monitor(config, ds, G, device), make_eval_hook(config, ds, device)) if h is not None]
    trainer = Trainer(task, batches, out, config.train, config.opt_g, config.opt_d, config.log, meta,
                      d_output="probability" if task.loss.probabilistic else "sigmoid_of_logits",
                      snapshot=snapshot, hooks=hooks,
                      synced=players_for(G, D, world.active, config.train.compile))
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    if resume:
        trainer.resume()
    elif world.is_main:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    if world.is_main:
        config.save(out / "config.yaml")
        ckpt.atomic_write_json(out / "data.json", ds.meta())
    return trainer.fit(config.train.steps)


class Generator:
    """A trained generator (the EMA weights) ready to sample, with what it needs to return data units."""

    def __init__(self, G: nn.Module, config: Config, data_meta: dict[str, Any], step: int):
        self.G, self.config, self.data_meta, self.step = G.eval(), config, data_meta, step
        if self.style_based:
            self.G.noise_mode = "const"  # per-layer noise fixed, so a seed always gives the same sample

    @property
    def style_based(self) -> bool:
        """A StyleGAN2 generator: truncation works in w space, and w can be mixed, walked and projected."""
        return hasattr(self.G, "mapping")

    @property
    def classes(self) -> list[str]:
        return list(self.data_meta["classes"]) if self.config.data.conditional else []

    @property
    def z_dim(self) -> int:
        return self.G.z_dim

    def latents(self, n: int, seed: int | None = None, truncation: float = 1.0) -> Tensor:
        """Standard normal latents. ``truncation`` (psi in [0, 1]) pulls them toward the average latent
        z = 0 (the truncation trick): higher fidelity, less variety; psi = 0 gives the average sample."""
        check_truncation(truncation)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.z_dim, generator=gen) * truncation

    def class_index(self, label: int | str) -> int:
        classes = self.classes
        if not classes:
            raise UserError("this run is not conditional; --class needs a run trained with data.conditional=true")
        if isinstance(label, str) and label in classes:
            return classes.index(label)
        try:
            idx = int(label)
        except ValueError:
            idx = -1
        if not 0 <= idx < len(classes):
            raise UserError(f"unknown class '{label}'; valid classes: {', '.join(classes)}")
        return idx

    def balanced_labels(self, n: int) -> Tensor:
        """Class indices for ``n`` samples, as equal a share per class as ``n`` allows, grouped by class."""
        k = len(self.classes)
        return (torch.arange(n) % k).sort().values if k else torch.zeros(n, dtype=torch.long)

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Tensor | None = None, batch_size: int = 256) -> Tensor:
        """G(z) in batches; images in [-1, 1], vectors in data units."""
        device = next(self.G.parameters()).device
        if self.classes and labels is None:
            labels = torch.arange(z.shape[0]) % len(self.classes)
        outs = []
        for i in range(0, z.shape[0], batch_size):
            y = labels[i : i + batch_size].to(device) if labels is not None else None
            outs.append(self.G(z[i : i + batch_size].to(device), y).cpu())
        x = torch.cat(outs) if outs else torch.empty(0, *self.data_meta["shape"])
        if self.style_based:  # StyleGAN2's output is linear (no tanh): keep images in [-1, 1]
            x = x.clamp(-1, 1)
        return to_data_units(x, self.data_meta)

    def sample(self, n: int, seed: int | None = None, truncation: float = 1.0,
               labels: Tensor | None = None) -> Tensor:
        """``n`` new samples; the same seed gives the same samples."""
        if n <= 0:
            raise UserError(f"--n must be positive, got {n}")
        if self.style_based:  # the truncation trick in w space, around the tracked w_avg
            check_truncation(truncation)
            return self.synthesize(self.ws(self.latents(n, seed), labels, truncation))
        return self.decode(self.latents(n, seed, truncation), labels)

    def _style_G(self) -> nn.Module:
        if not self.style_based:
            raise UserError(f"this run's generator ({self.config.g.family}) has no w space; "
                            "train with g.family=stylegan2")
        return self.G

    @torch.no_grad()
    def ws(self, z: Tensor, labels: Tensor | None = None, truncation: float = 1.0) -> Tensor:
        """StyleGAN2 runs: latents z -> per-layer styles ws (N, num_ws, w_dim), truncated toward w_avg."""
        G = self._style_G()
        device = G.w_avg.device
        if self.classes and labels is None:
            labels = torch.arange(z.shape[0]) % len(self.classes)
        y = labels.to(device) if labels is not None else None
        return G.map(z.to(device), y, truncation).cpu()

    @torch.no_grad()
    def synthesize(self, ws: Tensor, batch_size: int = 256) -> Tensor:
        """StyleGAN2 runs: images from per-layer styles ws, clipped to [-1, 1] (the network's output is
        linear, as in the paper, and may overshoot slightly)."""
        G = self._style_G()
        device = G.w_avg.device
        outs = [G.synthesis(ws[i : i + batch_size].to(device), G.noise_mode).clamp(-1, 1).cpu()
                for i in range(0, ws.shape[0], batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, *self.data_meta["shape"])

    def interpolate(self, a: int, b: int, frames: int = 16, rows: int = 1, space: str = "z") -> Tensor:
        """Interpolation between latents drawn with seeds a+r and b+r for each of ``rows``: spherical in
        z, or (StyleGAN2 runs, ``space="w"``) linear in w, where the paper finds paths perceptually shorter."""
        za = torch.stack([self.latents(1, a + r)[0] for r in range(rows)])
        zb = torch.stack([self.latents(1, b + r)[0] for r in range(rows)])
        t = torch.linspace(0, 1, frames)[None, :, None]
        if space == "w":
            labels = (torch.arange(rows) % len(self.classes)) if self.classes else None
            wa, wb = self.ws(za, labels)[:, :1], self.ws(zb, labels)[:, :1]  # (rows, 1, w_dim)
            w = torch.lerp(wa, wb, t).reshape(rows * frames, -1)
            return self.synthesize(w[:, None].expand(-1, self.G.num_ws, -1))
        if space != "z":
            raise UserError(f"--space must be z or w, got '{space}'")
        zs = slerp(za[:, None], zb[:, None], t).reshape(rows * frames, -1)
        labels = None
        if self.classes:
            labels = (torch.arange(rows) % len(self.classes)).repeat_interleave(frames)
        return self.decode(zs, labels)


def check_truncation(psi: float) -> None:
    if not 0.0 <= psi <= 1.0:
        raise UserError(f"--truncation must be in [0, 1], got {psi}")


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation: stays on the shell where Gaussian latents live (White, 2016)."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def load(run_dir: str | Path, device: str = "cpu") -> Generator:
    """The EMA generator of the newest valid checkpoint in ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    tensors, meta = ckpt.load_latest(run_dir / "checkpoints")
    if meta.get("kind") != "gan":
        raise UserError(f"{run_dir}: a '{meta.get('kind')}' run, not a GAN run")
    config = Config.from_dict(meta["config"])
    G, _ = build_nets(config, meta["data"])
    ckpt.load_module("G_ema", G, tensors, str(run_dir))
    return Generator(G.to(device), config, meta["data"], int(meta["step"]))


def info(run_dir: str | Path) -> dict[str, Any]:
    """What a run folder holds: config summary, steps, last logged values, checkpoints."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    entries = ckpt.read_manifest(run_dir / "checkpoints")
    if not entries:
        raise UserError(f"{run_dir}: not a run folder (no checkpoints/manifest.json)")
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    try:  # the kind of run (gan, translate, upscale, sequence, tabular) is in every checkpoint's metadata
        meta = json.loads((run_dir / "checkpoints" / entries[-1]["meta"]).read_text())
        kind = str(meta.get("kind", "gan")) if isinstance(meta, dict) else "gan"
    except (OSError, ValueError, KeyError, TypeError):
        kind = "gan"
    out: dict[str, Any] = {"run_dir": str(run_dir), "kind": kind, "checkpoints": [e["step"] for e in entries]}
    if kind == "gan" and (run_dir / "config.yaml").exists():
        config = Config.load(run_dir / "config.yaml")
        out.update({"data": config.data.source, "g": config.g.family, "d": config.d.family,
                    "loss": config.loss.name, "steps": config.train.steps})
        if config.loss.info > 0:
            out["infogan"] = f"{config.g.codes} codes, weight {config.loss.info:g}"
    elif (run_dir / "config.yaml").exists():  # other recipes: their own config, shown flat (scalars only)
        try:
            raw = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        except yaml.YAMLError:
            raw = {}
        if isinstance(raw, dict):
            out["config"] = {k: v for k, v in raw.items() if isinstance(v, (int, float, str, bool))}
            train = raw.get("train")
            if isinstance(train, dict) and "steps" in train:
                out["steps"] = train["steps"]
    if kind == "tabular" and (run_dir / "model.json").is_file():  # a tabular fit's record is its model.json
        try:
            model = json.loads((run_dir / "model.json").read_text())
            fit, types = model.get("fit") or {}, model.get("types") or {}
            out.update({"columns": len(types), **{k: fit[k] for k in ("rows", "steps", "precision") if k in fit}})
        except (OSError, ValueError, AttributeError):
            pass
    if summary:
        out.update({"trained_steps": summary.get("step"), "train_seconds": summary.get("train_seconds"),
                    "finished": summary.get("finished")})
        last = summary.get("last") or {}
        out["last"] = {k: round(v, 4) for k, v in last.items()
                       if k in ("loss_d", "loss_g", "d_real", "d_fake", "loss_cycle", "loss_semantic", "samples_per_s")}
    samples = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    if samples:
        out["latest_grid"] = str(samples[-1])
    return out
