"""DiffAugment and ADA: differentiable, shape-preserving, and ADA's p controller."""

from __future__ import annotations

import pytest
import torch

from gankit.augmentations import AdaptiveAugment, DiffAugment, build_augment, translate
from gankit.config import Config, LossConfig, NetConfig
from gankit.errors import UserError
from gankit.nets import build_discriminator, build_generator
from gankit.tasks.gan import GAN


@pytest.mark.parametrize("channels", [1, 3])
def test_diffaugment_is_differentiable_and_keeps_shape(channels):
    torch.manual_seed(0)
    x = torch.randn(8, channels, 16, 16, requires_grad=True)
    out = DiffAugment()(x)
    assert out.shape == x.shape
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.allclose(out, x)


def test_translation_moves_whole_pixels_and_cutout_blanks_a_square():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    shifted = translate(x, torch.tensor([[1, 0]]))
    assert torch.equal(shifted[0, 0, :, 1:], x[0, 0, :, :3]) and (shifted[0, 0, :, 0] == 0).all()
    torch.manual_seed(0)
    ones = torch.ones(200, 1, 16, 16)
    out = DiffAugment("cutout")(ones)
    holes = (out == 0).float().mean(dim=(1, 2, 3))
    assert (holes <= 0.25 + 1e-6).all() and (holes > 0).all()
    assert (holes == 0.25).float().mean() > 0.2  # an 8x8 square fully inside for many samples
    with pytest.raises(UserError, match="policy"):
        DiffAugment("color,zoom")


def test_ada_p_zero_is_identity_and_p_one_augments_differentiably():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 16, 16, requires_grad=True)
    ada = AdaptiveAugment()
    assert torch.allclose(ada(x), x, atol=1e-5)
    ada.p.fill_(1.0)
    out = ada(x)
    assert out.shape == x.shape and (out - x).abs().amax() > 0.1
    out.sum().backward()
    assert x.grad.abs().sum() > 0


def test_ada_controller_rises_on_overfitting_logits_and_falls_otherwise():
    ada = AdaptiveAugment(target=0.6, kimg=1.0, interval=4)
    for i in range(3):  # no change before `interval` observations
        ada.observe(torch.full((64,), 3.0))
        assert float(ada.p) == 0.0
    ada.observe(torch.full((64,), 3.0))
    assert float(ada.p) == pytest.approx(256 / 1000)
    assert float(ada.rt) == 1.0
    for _ in range(40):  # D confident on real data: r_t = 1 > 0.6
        ada.observe(torch.rand(64) + 0.1)
    assert float(ada.p) == 1.0  # clamped
    for _ in range(12):  # half the real logits positive: r_t = 0 < 0.6
        ada.observe(torch.linspace(-1, 1, 64))
    assert float(ada.p) == pytest.approx(1.0 - 3 * 256 / 1000, abs=1e-5)
    for _ in range(100):
        ada.observe(torch.linspace(-1, 1, 64))
    assert float(ada.p) == 0.0


def test_ada_p_rises_when_d_overfits_a_tiny_set_and_falls_when_it_cannot():
    """A real D: trained to tell 8 fixed real images from fresh noise it overfits and p rises; an
    untrained D given the same images in both roles cannot separate them and p falls."""
    torch.manual_seed(0)
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    D = build_discriminator(NetConfig(family="dcgan", width=4, norm="none", activation="leaky_relu"), (1, 16, 16))
    opt = torch.optim.Adam(D.parameters(), lr=2e-3)
    ada = AdaptiveAugment(target=0.6, kimg=0.1, interval=2)
    for _ in range(20):
        r, f = D(ada(real)), D(ada(torch.randn(8, 1, 16, 16) * 0.1))
        loss = torch.nn.functional.softplus(-r).mean() + torch.nn.functional.softplus(f).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ada.observe(r.detach())
    assert float(ada.p) > 0.5
    high = float(ada.p)
    # now D's real logits carry no signal (a fresh D, centred): r_t ~ 0 and p falls
    fresh = build_discriminator(NetConfig(family="dcgan", width=4, norm="none"), (1, 16, 16))
    for _ in range(8):
        with torch.no_grad():
            out = fresh(ada(real))
        ada.observe(out - out.median())
    assert float(ada.p) < high - 0.3


def test_augment_in_gan_task_state_travels_with_d():
    torch.manual_seed(0)
    G = build_generator(NetConfig(width=4), 8, (1, 16, 16))
    D = build_discriminator(NetConfig(width=4), (1, 16, 16))
    task = GAN(G, D, LossConfig(), augment=build_augment("ada", 0.6, 1.0))
    assert "augment_pipe.p" in D.state_dict()
    batch = {"x": torch.randn(8, 1, 16, 16)}
    _, logs = task.d_loss(batch, task.generate(batch), step=0)
    assert "ada_p" in logs and "ada_rt" in logs
    D.augment_pipe.p.fill_(0.37)
    D2 = build_discriminator(NetConfig(width=4), (1, 16, 16))
    GAN(G, D2, LossConfig(), augment=build_augment("ada"))
    D2.load_state_dict(D.state_dict())
    assert float(D2.augment_pipe.p) == pytest.approx(0.37)


def test_augment_config_errors():
    cfg = Config()
    cfg.train.augment = "mixup"
    with pytest.raises(UserError, match="train.augment"):
        cfg.validate()
    assert build_augment("none") is None
    with pytest.raises(UserError, match="ada_target"):
        build_augment("ada", target=1.5)


def _ada_rank(rank: int, init: str, logits: torch.Tensor, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        ada = AdaptiveAugment(target=0.6, kimg=0.1, interval=2)
        for step_logits in logits:
            ada.observe(step_logits.chunk(2)[rank])  # each rank sees its half of the global batch
        torch.save(ada.p.clone(), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_ada_p_follows_the_global_batch_under_ddp(tmp_path):
    """Two processes, each with half of every batch, move p exactly as one process with the whole batch;
    here rank 0's half alone would push p the other way."""
    import torch.multiprocessing as mp

    steps = 8
    # rank 0's half: r_t = 0.5 < target; rank 1's half: all positive; global r_t = 0.75 > target = 0.6
    logits = torch.cat([torch.cat([torch.full((12,), 1.0), torch.full((4,), -1.0)]).expand(steps, 16),
                        torch.ones(steps, 16)], dim=1)
    mp.spawn(_ada_rank, args=(f"file://{tmp_path / 'store'}", logits, str(tmp_path / "p")), nprocs=2)
    p0, p1 = (torch.load(tmp_path / f"p.{r}", weights_only=True) for r in (0, 1))
    alone = AdaptiveAugment(target=0.6, kimg=0.1, interval=2)
    for step_logits in logits:
        alone.observe(step_logits)
    assert p0 == p1 == alone.p > 0
