import math

import pytest
import torch

from gankit import losses
from gankit.errors import UserError

R = torch.tensor([2.0, 0.0])
F_ = torch.tensor([-1.0, 1.0])


def softplus(x):
    return math.log1p(math.exp(x))


def test_minimax_d_value_by_hand():
    # -log sigmoid(2) - log sigmoid(0) over 2, plus -log(1-sigmoid(-1)) - log(1-sigmoid(1)) over 2
    expected = (softplus(-2) + softplus(0)) / 2 + (softplus(-1) + softplus(1)) / 2
    assert losses.minimax_d(R, F_).item() == pytest.approx(expected, rel=1e-6)


def test_generator_losses_by_hand():
    assert losses.minimax_g(F_).item() == pytest.approx(-(softplus(-1) + softplus(1)) / 2, rel=1e-6)
    assert losses.nonsaturating_g(F_).item() == pytest.approx((softplus(1) + softplus(-1)) / 2, rel=1e-6)
    assert losses.hinge_g(F_).item() == pytest.approx(0.0)
    assert losses.wasserstein_g(torch.tensor([3.0, 1.0])).item() == pytest.approx(-2.0)
    assert losses.lsgan_g(torch.tensor([1.0, 3.0])).item() == pytest.approx(0.5 * (0 + 4) / 2)


def test_d_losses_by_hand():
    assert losses.hinge_d(R, F_).item() == pytest.approx((0 + 1) / 2 + (0 + 2) / 2)
    assert losses.wasserstein_d(R, F_).item() == pytest.approx(0.0 - 1.0)
    assert losses.lsgan_d(R, F_).item() == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (1 + 1) / 2)
    # relativistic: real minus mean fake = [2, 0]; fake minus mean real = [-2, 0]
    expected = (softplus(-2) + softplus(0)) / 2 + (softplus(-2) + softplus(0)) / 2
    assert losses.relativistic_d(R, F_).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_gradient_signs(name):
    """Descending D's loss raises D on real and lowers it on fake; descending G's loss raises D(fake)."""
    loss = losses.LOSSES[name]
    real = torch.tensor([0.3, 0.6], requires_grad=True)  # inside every loss's active region
    fake = torch.tensor([0.1, 0.4], requires_grad=True)
    loss.d(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    fake_g = torch.tensor([0.1, 0.4], requires_grad=True)
    loss.g(fake_g, real.detach()).backward()
    assert (fake_g.grad < 0).all()


def test_saturating_gradient_vanishes_when_d_wins():
    """The reason for the non-saturating loss: when D(G(z)) ~ 0 the minimax G gradient is tiny."""
    fake = torch.tensor([-8.0], requires_grad=True)
    losses.minimax_g(fake).backward()
    sat = fake.grad.abs().item()
    fake2 = torch.tensor([-8.0], requires_grad=True)
    losses.nonsaturating_g(fake2).backward()
    assert sat < 1e-3 < fake2.grad.abs().item()


def test_gradient_penalty_zero_for_unit_slope_critic():
    critic = lambda x: x.sum(dim=1)
    real, fake = torch.randn(8, 1), torch.randn(8, 1)
    assert losses.gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-6)
    critic2 = lambda x: 3 * x.sum(dim=1)
    assert losses.gradient_penalty(critic2, real, fake).item() == pytest.approx(4.0, rel=1e-5)


def test_r1_penalty_value():
    x = torch.randn(5, 3, requires_grad=True)
    out = (2 * x).sum(dim=1)
    assert losses.r1_penalty(out, x).item() == pytest.approx(12.0, rel=1e-5)


def test_unknown_loss():
    with pytest.raises(UserError, match="unknown loss"):
        losses.get_loss("nope")
