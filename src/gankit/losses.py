"""Adversarial losses and regularisers as plain functions, found by name in :data:`LOSSES`.

Every loss takes raw discriminator outputs (logits / critic values), never probabilities, so that the
numerically stable forms (``softplus``) are used. ``d(real, fake)`` is minimised by the discriminator,
``g(fake, real)`` by the generator; ``real`` is only read by the relativistic loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# softplus(-x) = -log(sigmoid(x)), softplus(x) = -log(1 - sigmoid(x))


def minimax_d(real: Tensor, fake: Tensor) -> Tensor:
    """Goodfellow et al. (2014): maximise log D(x) + log(1 - D(G(z)))."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    """The saturating generator loss: minimise log(1 - D(G(z))). Its gradient vanishes when D wins."""
    return -F.softplus(fake).mean()


def nonsaturating_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    """The 2014 paper's practical fix: maximise log D(G(z)) instead."""
    return F.softplus(-fake).mean()


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    """Lim & Ye (2017), used by SNGAN/BigGAN."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    return -fake.mean()


def wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    """Arjovsky et al. (2017): the critic maximises E[D(x)] - E[D(G(z))]. Pair with a gradient penalty."""
    return fake.mean() - real.mean()


def wasserstein_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    return -fake.mean()


def lsgan_d(real: Tensor, fake: Tensor) -> Tensor:
    """Mao et al. (2017), least squares with targets 1 (real) and 0 (fake)."""
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


def relativistic_d(real: Tensor, fake: Tensor) -> Tensor:
    """Jolicoeur-Martineau (2018), relativistic average: is real more realistic than the average fake?"""
    return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()


def relativistic_g(fake: Tensor, real: Tensor | None = None) -> Tensor:
    if real is None:
        raise ValueError("the relativistic generator loss needs the discriminator's outputs on real data")
    return F.softplus(-(fake - real.mean())).mean() + F.softplus(real - fake.mean()).mean()


@dataclass(frozen=True)
class Loss:
    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[..., Tensor]
    probabilistic: bool  # is sigmoid(D) a probability of "real" under this loss? (for D(real)/D(fake) logs)
    needs_real_for_g: bool = False


LOSSES: dict[str, Loss] = {
    "minimax": Loss(minimax_d, minimax_g, probabilistic=True),
    "nonsaturating": Loss(minimax_d, nonsaturating_g, probabilistic=True),
    "hinge": Loss(hinge_d, hinge_g, probabilistic=False),
    "wasserstein": Loss(wasserstein_d, wasserstein_g, probabilistic=False),
    "lsgan": Loss(lsgan_d, lsgan_g, probabilistic=False),
    "relativistic": Loss(relativistic_d, relativistic_g, probabilistic=False, needs_real_for_g=True),
}


# ---------------------------------------------------------------------------------------------
# regularisers


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al., 2017): (||grad D(x_hat)|| - 1)^2 on random interpolates."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def r1_penalty(real_out: Tensor, real: Tensor) -> Tensor:
    """R1 (Mescheder et al., 2018): ||grad D(x)||^2 on real data; ``real`` must require grad."""
    (grad,) = torch.autograd.grad(real_out.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


def get_loss(name: str) -> Loss:
    from gankit.errors import UserError

    if name not in LOSSES:
        raise UserError(f"unknown loss '{name}'; choose from {', '.join(LOSSES)}")
    return LOSSES[name]
