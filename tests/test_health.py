"""Diagnoses on synthetic metrics.jsonl records with known patterns, and the Monitor hook's behaviour."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gankit.health import Monitor, Rules, diagnose, mode_coverage, read_jsonl, verdict

RULES = Rules(warmup=500, lasting=4)


def records(n=40, every=50, seed=0, **overrides):
    """A healthy-looking run: D near 0.5, steady gradients, diversity ~1, all modes covered.
    ``overrides`` maps a key to a function (step index -> value) that replaces it."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        r = {"step": (i + 1) * every, "d_real": 0.55 + 0.03 * rng.standard_normal(),
             "d_fake": 0.45 + 0.03 * rng.standard_normal(), "acc_real": 0.6, "acc_fake": 0.6,
             "loss_d": 1.3 + 0.05 * rng.standard_normal(), "loss_g": 0.8 + 0.05 * rng.standard_normal(),
             "grad_norm_g": 2.0 * math.exp(0.3 * rng.standard_normal()),
             "grad_norm_d": 1.5 * math.exp(0.3 * rng.standard_normal()),
             "diversity": 1.0 + 0.03 * rng.standard_normal(), "mode_coverage": 1.0,
             "samples_per_s": 1000.0, "d_output": "probability", "nonfinite": 0}
        for key, fn in overrides.items():
            r[key] = fn(i)
        out.append(r)
    return out


def codes(findings):
    return [f.code for f in findings]


def test_healthy_run_is_converging_and_nothing_else():
    for seed in range(5):
        f = diagnose(records(seed=seed), rules=RULES)
        assert codes(f) == ["converging"], (seed, [x.to_dict() for x in f])
        assert verdict(f) == "healthy"
        assert f[0].last_step == 2000 and f[0].evidence["records"] == 4


def test_vanishing_gradients_minimax_pattern():
    recs = records(d_real=lambda i: 0.999, d_fake=lambda i: 1e-4, acc_real=lambda i: 1.0, acc_fake=lambda i: 1.0,
                   grad_norm_g=lambda i: 3.0 if i < 3 else 3e-5)
    f = {x.code: x for x in diagnose(recs, rules=RULES)}
    assert "vanishing_gradients" in f and verdict(list(f.values())) == "unhealthy"
    v = f["vanishing_gradients"]
    assert v.first_step == 200 and v.last_step == 2000  # from the 4th record, warm-up does not apply
    assert v.evidence["grad_norm_g"] == pytest.approx(3e-5) and v.evidence["d_real"] == pytest.approx(0.999)
    assert "nonsaturating" in v.remedy
    assert "d_overpowers" not in f  # the stronger diagnosis explains the imbalance
    # already vanishing at the first record (no healthy peak to compare with): the absolute floor
    f2 = codes(diagnose(records(d_real=lambda i: 1.0, d_fake=lambda i: 0.0, grad_norm_g=lambda i: 1e-5),
                        rules=RULES))
    assert "vanishing_gradients" in f2


def test_d_overpowers_after_warmup_only():
    recs = records(d_real=lambda i: 0.95, d_fake=lambda i: 0.05)
    f = {x.code: x for x in diagnose(recs, rules=RULES)}
    assert set(f) == {"d_overpowers"}
    assert f["d_overpowers"].first_step == 500  # the warm-up hides steps 50-450
    assert f["d_overpowers"].evidence["d_real"] == pytest.approx(0.95)


def test_d_overpowers_despite_a_flickering_generator_gradient():
    # D wins throughout while G's gradient norm dips below its peak every other record (a ring8 run with a
    # 40x-lr D did this): too short to be vanishing gradients, and it must not hide the imbalance either
    recs = records(d_real=lambda i: 0.9, d_fake=lambda i: 0.1, grad_norm_g=lambda i: 100.0 if i % 2 else 5.0)
    f = codes(diagnose(recs, rules=RULES))
    assert "d_overpowers" in f and "vanishing_gradients" not in f


def test_g_overpowers():
    f = codes(diagnose(records(d_real=lambda i: 0.3, d_fake=lambda i: 0.7), rules=RULES))
    assert f == ["g_overpowers"]


def test_condition_must_last():
    # D wins for 3 records in a row (lasting = 4), twice: no finding
    recs = records(d_real=lambda i: 0.95 if i % 5 < 3 else 0.55, d_fake=lambda i: 0.05 if i % 5 < 3 else 0.45)
    assert "d_overpowers" not in codes(diagnose(recs, rules=RULES))
    assert "d_overpowers" in codes(diagnose(recs, rules=Rules(warmup=500, lasting=3)))


def test_oscillation():
    recs = records(d_real=lambda i: 0.85 if i % 2 else 0.5, d_fake=lambda i: 0.15 if i % 2 else 0.5)
    f = {x.code: x for x in diagnose(recs, rules=RULES)}
    assert "oscillation" in f and f["oscillation"].first_step >= 500
    assert f["oscillation"].evidence["gap_change"] == pytest.approx(0.7)


def test_divergence_nonfinite_and_blowup():
    recs = records(loss_d=lambda i: float("nan") if i >= 30 else 1.3, nonfinite=lambda i: int(i >= 30))
    f = {x.code: x for x in diagnose(recs, rules=RULES)}
    assert f["divergence"].first_step == 1550 and "loss_d" in f["divergence"].evidence["nonfinite_keys"]
    recs = records(loss_g=lambda i: 0.8 if i < 20 else 0.8 * 10 ** (i - 18))
    f = {x.code: x for x in diagnose(recs, rules=RULES)}
    assert f["divergence"].first_step == 1050  # record 21: 0.8e2 = 80 > 20 x 0.8 and > 10
    # blown from the start (no healthy median): D's cross-entropy far above chance, lasting
    f = codes(diagnose(records(loss_d=lambda i: 50.0 if i < 4 else 1.3), rules=RULES))
    assert "divergence" in f
    assert "divergence" not in codes(diagnose(records(loss_d=lambda i: 50.0 if i < 3 else 1.3), rules=RULES))
    # a probabilistic D loss in the thousands is blown up even in one record (lr_too_high, seed 0, step 50)
    f = {x.code: x for x in diagnose(records(loss_d=lambda i: 2890.0 if i == 0 else 1.3), rules=RULES)}
    assert f["divergence"].first_step == 50 and f["divergence"].evidence["records"] == 1
    assert "divergence" not in codes(diagnose(records(loss_d=lambda i: 90.0 if i == 0 else 1.3), rules=RULES))
    # ... not for losses whose scale means nothing (a critic's Wasserstein estimate)
    recs = records(loss_d=lambda i: 2890.0 if i == 0 else 1.3, d_output=lambda i: "critic")
    assert "divergence" not in codes(diagnose(recs, rules=RULES))


def test_mode_collapse_by_diversity_and_by_coverage_drop():
    f = {x.code: x for x in diagnose(records(diversity=lambda i: 1.0 if i < 20 else 0.2), rules=RULES)}
    assert f["mode_collapse"].first_step == 1050 and f["mode_collapse"].evidence["diversity"] == pytest.approx(0.2)
    f = codes(diagnose(records(mode_coverage=lambda i: 1.0 if i < 20 else 0.25), rules=RULES))
    assert "mode_collapse" in f
    # coverage low from the start: a collapse only while D still tells real from fake
    low = {"mode_coverage": lambda i: 0.25}
    assert "mode_collapse" not in codes(diagnose(records(**low), rules=RULES))
    f = codes(diagnose(records(**low, d_real=lambda i: 0.75, d_fake=lambda i: 0.25), rules=RULES))
    assert f == ["mode_collapse"]
    # low diversity only during the warm-up: every GAN starts collapsed
    f = codes(diagnose(records(diversity=lambda i: 0.3 if i < 9 else 1.0), rules=RULES))
    assert "mode_collapse" not in f


def test_non_probabilistic_losses_skip_d_based_findings():
    recs = records(d_real=lambda i: 1.0, d_fake=lambda i: 0.0, d_output=lambda i: "sigmoid_of_logits")
    assert diagnose(recs, rules=RULES) == []


def test_rollback_events_count_as_divergence():
    events = [{"step": 900, "event": "rollback", "reason": "loss_d=nan", "from_step": 900, "to_step": 500,
               "lr_g": 1e-4, "lr_d": 1e-4}]
    f = {x.code: x for x in diagnose(records(), events, rules=RULES)}
    assert f["divergence"].first_step == 500 and f["divergence"].evidence["rollbacks"] == 1
    skipped = [{"step": 700, "event": "nonfinite", "action": "skip", "phase": "d", "at_step": 701}]
    f = {x.code: x for x in diagnose(records(), skipped, rules=RULES)}
    assert (f["divergence"].first_step, f["divergence"].evidence["nonfinite_events"]) == (701, 1)


def test_read_jsonl_skips_torn_last_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert [r["step"] for r in read_jsonl(p)] == [1, 2]
    p.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    from gankit.errors import UserError

    with pytest.raises(UserError, match="line 2"):
        read_jsonl(p)


def test_mode_coverage_counts_modes():
    centers = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    rng = np.random.default_rng(0)
    all_modes = centers[rng.integers(0, 4, 400)] + 0.05 * rng.standard_normal((400, 2))
    assert mode_coverage(all_modes, centers) == 1.0
    one = centers[[0] * 400] + 0.05 * rng.standard_normal((400, 2))
    assert mode_coverage(one, centers) == 0.25


# ---------------------------------------------------------------------------------------------
# the Monitor hook


class FakeTrainer:
    def __init__(self, run_dir, step):
        self.run_dir, self.state = run_dir, SimpleNamespace(step=step)
        self.events, self.stopped, self.rolled = [], None, []

    def event(self, kind, **details):
        self.events.append((kind, details))

    def request_stop(self, reason):
        self.stopped = reason

    def rollback(self, reason, lr_factor=0.5):
        self.rolled.append((reason, lr_factor))
        self.state.step = 500
        return True


@pytest.fixture
def monitor(tiny_toy):
    from gankit.data import load_data
    from gankit.tasks.gan import build_nets

    data = load_data(tiny_toy.data)
    G, _ = build_nets(tiny_toy, data.meta())
    return lambda **health: Monitor(_with(tiny_toy, **health), data, G, "cpu")


def _with(cfg, **health):
    for k, v in health.items():
        setattr(cfg.health, k, v)
    return cfg


def test_monitor_signals_leave_the_global_rng_alone(monitor):
    m = monitor()
    before = torch.get_rng_state()
    out = m.signals()
    assert torch.equal(before, torch.get_rng_state())
    assert 0 < out["diversity"] and 0 <= out["mode_coverage"] <= 1
    assert m.signals() == out  # fixed latents: same G, same signals


def test_monitor_reloads_history_on_resume_and_acts(monitor, tmp_path):
    earlier = records(n=12)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in earlier))
    m = monitor(on_failure="stop")
    trainer = FakeTrainer(tmp_path, 650)
    record = dict(earlier[-1], step=650, d_real=0.99, d_fake=0.01)
    m.on_log(trainer, record)
    assert [r["step"] for r in m.records] == [r["step"] for r in earlier] + [650]
    assert "loss_d_trend" in record and "diversity" in record
    assert trainer.stopped is None  # one record of D winning is not a finding yet
    for step in (700, 750, 800):
        trainer.state.step = step
        m.on_log(trainer, dict(record, step=step))
    assert trainer.stopped and trainer.stopped.startswith("d_overpowers")
    # an untrained G is also collapsed (its signals replace the synthetic ones): both are reported, once
    assert sorted(e[1]["code"] for e in trainer.events if e[0] == "health") == ["d_overpowers", "mode_collapse"]


def test_monitor_rolls_back_on_divergence(monitor, tmp_path):
    m = monitor(on_failure="rollback")
    trainer = FakeTrainer(tmp_path, 50)
    for r in records(n=11):
        trainer.state.step = r["step"]
        m.on_log(trainer, r)
    trainer.state.step = 600
    m.on_log(trainer, dict(records(n=12)[-1], loss_d=float("inf")))
    assert trainer.rolled == [(trainer.rolled[0][0], 0.5)] and "loss_d" in trainer.rolled[0][0]
    assert all(r["step"] <= 500 for r in m.records) and m.rollbacks == 1


@pytest.mark.slow
def test_training_logs_health_signals_and_doctor_reads_them(tiny_toy, tmp_path):
    import gankit
    from gankit.health import doctor

    gankit.train(tiny_toy, tmp_path / "on")
    recs = read_jsonl(tmp_path / "on" / "metrics.jsonl")
    for key in ("d_real", "d_fake", "acc_real", "acc_fake", "grad_norm_g", "grad_norm_d", "diversity",
                "mode_coverage", "nonfinite"):
        assert all(key in r for r in recs), key
    assert "loss_g_trend" in recs[-1] and recs[-1]["d_output"] == "probability"
    assert set(doctor(tmp_path / "on")) == {"findings", "verdict"}
    tiny_toy.health.enabled = False
    gankit.train(tiny_toy, tmp_path / "off", steps=10)
    assert "diversity" not in read_jsonl(tmp_path / "off" / "metrics.jsonl")[-1]
