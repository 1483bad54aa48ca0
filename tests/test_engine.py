"""The adversarial step against the textbook loop, and the engine's lr decay."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit.config import LossConfig
from gankit.engine import adversarial_step, linear_decay
from gankit.tasks.gan import GAN


class TinyG(nn.Module):
    z_dim = 3

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        self.calls = 0

    def forward(self, z, y=None):
        self.calls += 1
        return self.net(z)


class TinyD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))

    def forward(self, x, y=None):
        return self.net(x).squeeze(1)


def _players(seed=0):
    torch.manual_seed(seed)
    G, D = TinyG(), TinyD()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.5, 0.99))
    return G, D, opt_g, opt_d


def _real(step):
    return torch.randn(16, 2, generator=torch.Generator().manual_seed(100 + step))


def test_step_equals_the_textbook_loop():
    # gankit's step with n_critic=1 must be exactly the classic DCGAN-tutorial loop: one batch of fakes,
    # D trained on them detached, then G trained through the same fakes with the updated D.
    G, D, opt_g, opt_d = _players()
    task = GAN(G, D, LossConfig(name="nonsaturating"))
    batches = ({"x": _real(s)} for s in itertools.count())
    torch.manual_seed(1)
    for step in range(5):
        adversarial_step(task, opt_d, opt_g, batches, step)

    G2, D2, opt_g2, opt_d2 = _players()
    torch.manual_seed(1)
    for step in range(5):
        x = _real(step)
        fake = G2(torch.randn(16, 3))
        opt_d2.zero_grad()
        (F.softplus(-D2(x)).mean() + F.softplus(D2(fake.detach())).mean()).backward()
        opt_d2.step()
        opt_g2.zero_grad()
        F.softplus(-D2(fake)).mean().backward()
        opt_g2.step()
    for a, b in zip([*G.parameters(), *D.parameters()], [*G2.parameters(), *D2.parameters()]):
        torch.testing.assert_close(a, b)
    assert G.calls == 5  # one generator forward per step


@pytest.mark.parametrize("n_critic,calls", [(1, 1), (2, 3)])
def test_generator_forwards_per_step(n_critic, calls):
    G, D, opt_g, opt_d = _players()
    task = GAN(G, D, LossConfig(name="hinge"))
    batches = ({"x": _real(s)} for s in itertools.count())
    adversarial_step(task, opt_d, opt_g, batches, 0, n_critic=n_critic)
    assert G.calls == calls  # with several critic steps G must regenerate against the new D
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in D.parameters())


def test_linear_decay():
    f = linear_decay(100, 0.5)
    assert f(0) == f(50) == 1.0
    assert 0.0 < f(99) < f(75) < 1.0
    assert linear_decay(10, 0.0)(0) == 1.0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_run_trains_and_resumes(tiny_toy, tmp_path, precision):
    import json

    import gankit
    from gankit import checkpoint as ckpt

    cfg = gankit.config.apply_overrides(tiny_toy, [f"train.precision={precision}"])
    summary = gankit.train(cfg, tmp_path / "run", steps=20)
    assert summary["finished"] and summary["last"]["nonfinite"] == 0
    _, meta = ckpt.load_latest(tmp_path / "run" / "checkpoints")
    assert set(meta["scalers"]) == ({"d", "g"} if precision == "fp16" else set())
    assert gankit.train(cfg, tmp_path / "run", steps=40, resume=True)["step"] == 40
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30, 40]


def test_penalties_stay_fp32_under_autocast():
    # R1 and the gradient penalty square input gradients: in bf16 they would lose ~3 significant digits.
    torch.manual_seed(0)
    for cfg in (LossConfig(r1=1.0), LossConfig(gp=1.0)):
        task = GAN(TinyG(), TinyD(), cfg)
        batch = {"x": _real(0)}
        fake = task.generate(batch).detach()
        torch.manual_seed(1)
        _, ref = task.d_loss(batch, fake, 0)
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, mixed = task.d_loss(batch, fake, 0)
        key = "r1" if cfg.r1 else "gp"
        assert mixed["loss_d_adv"] != ref["loss_d_adv"]  # the adversarial term did run in bf16
        torch.testing.assert_close(mixed[key], ref[key], rtol=1e-5, atol=1e-7)


def test_channels_last_and_compile(tiny_digits, tmp_path, monkeypatch):
    import gankit
    import gankit.tasks.gan as gan_task

    compiled = []

    def eager_compile(module):  # the plumbing, without waiting for a C++ build
        compiled.append(module)
        return torch.compile(module, backend="eager")

    monkeypatch.setattr(gan_task, "compile_module", eager_compile)
    cfg = gankit.config.apply_overrides(tiny_digits, ["train.channels_last=true", "train.compile=true"])
    summary = gankit.train(cfg, tmp_path / "run", steps=4)
    assert summary["finished"] and len(compiled) == 2
    assert gankit.load(tmp_path / "run").sample(4, seed=0).shape[0] == 4


def test_fp16_step_survives_a_vetoed_update():
    from gankit.engine import Precision

    G, D, opt_g, opt_d = _players()
    task = GAN(G, D, LossConfig(name="nonsaturating"))
    batches = ({"x": _real(s)} for s in itertools.count())
    precision = Precision("fp16", "cpu")
    calls = []

    def guard(phase, loss, net):  # veto the first update of each player, as train.nonfinite=skip would
        calls.append(phase)
        return calls.count(phase) > 1

    before = [p.detach().clone() for p in G.parameters()]
    for step in range(3):
        adversarial_step(task, opt_d, opt_g, batches, step, guard=guard, precision=precision)
    assert calls == ["d", "g"] * 3
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))


def test_weight_ema_averages_weights_and_copies_buffers():
    from gankit.engine import WeightEMA

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    before = [p.detach().clone() for p in ema.parameters()]
    avg = WeightEMA(ema, net)
    net(torch.randn(16, 3))  # moves batch norm's running statistics
    avg.update(0.9)
    for e, b, n in zip(ema.parameters(), before, net.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * n)
    for e, n in zip(ema.buffers(), net.buffers()):
        assert torch.equal(e, n)
    # the lists are gathered once: weights loaded in place later are still the ones averaged
    with torch.no_grad():
        net.load_state_dict({k: torch.full_like(v, 2) for k, v in net.state_dict().items()})
    avg.update(0.0)
    assert all(torch.equal(p, torch.full_like(p, 2)) for p in ema.parameters())


def test_a_run_without_checkpoints_writes_none(tiny_toy, tmp_path):
    """log.checkpoints=false (TabularGAN.fit's throwaway folder) trains and logs as usual and writes no
    checkpoint; the default writes them."""
    import gankit

    off = gankit.config.apply_overrides(tiny_toy, ["log.checkpoints=false", "health.enabled=false"])
    summary = gankit.train(off, tmp_path / "off", steps=20)
    assert summary["finished"] and (tmp_path / "off" / "metrics.jsonl").is_file()
    assert not any((tmp_path / "off").rglob("*.safetensors"))
    gankit.train(gankit.config.apply_overrides(tiny_toy, ["health.enabled=false"]), tmp_path / "on", steps=20)
    assert any((tmp_path / "on").rglob("*.safetensors"))
