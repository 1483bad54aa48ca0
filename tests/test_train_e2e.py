"""Train -> checkpoint -> resume -> sample, end to end on CPU."""

import json

import numpy as np
import pytest
import torch

import gankit
from gankit import checkpoint as ckpt
from gankit.errors import UserError


def _tensors(run_dir):
    tensors, meta = ckpt.load_latest(run_dir / "checkpoints")
    return tensors, meta


def test_train_writes_run_folder(tiny_toy, tmp_path):
    summary = gankit.train(tiny_toy, tmp_path / "run")
    run = tmp_path / "run"
    assert summary["step"] == 40 and summary["finished"]
    for name in ("config.yaml", "summary.json", "metrics.jsonl", "data.json"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "samples_per_s"):
        assert all(np.isfinite(r[key]) for r in records), key
    assert 0 <= records[-1]["d_real"] <= 1
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000020.png", "step-00000040.png"]
    # keep-last-k: checkpoints at 20 and 40, both kept (keep_last=3)
    assert [e["step"] for e in ckpt.read_manifest(run / "checkpoints")] == [20, 40]


def test_resume_is_bit_identical(tiny_toy, tmp_path):
    gankit.train(tiny_toy, tmp_path / "straight")
    gankit.train(tiny_toy, tmp_path / "split", steps=20)
    summary = gankit.train(tiny_toy, tmp_path / "split", steps=40, resume=True)
    assert summary["step"] == 40
    a, meta_a = _tensors(tmp_path / "straight")
    b, meta_b = _tensors(tmp_path / "split")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # parameters, EMA, optimizer moments, RNG state
    assert meta_a["optim"] == meta_b["optim"]
    steps = [json.loads(x)["step"] for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 30, 40]


def test_sample_reproducible_and_in_data_units(tiny_toy, tmp_path):
    gankit.train(tiny_toy, tmp_path / "run")
    G = gankit.load(tmp_path / "run")
    x1, x2, x3 = G.sample(100, seed=1), G.sample(100, seed=1), G.sample(100, seed=2)
    assert x1.shape == (100, 2) and torch.equal(x1, x2) and not torch.equal(x1, x3)
    assert x1.abs().max() < 20  # data units of a ring of radius 2, not wild
    avg = G.sample(3, truncation=0.0)
    assert torch.allclose(avg[0], avg[1])  # psi = 0: every latent is the average latent


def test_digits_image_run(tiny_digits, tmp_path):
    gankit.train(tiny_digits, tmp_path / "run")
    G = gankit.load(tmp_path / "run")
    x = G.sample(5, seed=0)
    assert x.shape == (5, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    frames = G.interpolate(0, 1, frames=4, rows=2)
    assert frames.shape == (8, 1, 8, 8)


def test_refuses_to_overwrite_and_to_resume_nothing(tiny_toy, tmp_path):
    gankit.train(tiny_toy, tmp_path / "run", steps=10)
    with pytest.raises(UserError, match="already holds a run"):
        gankit.train(tiny_toy, tmp_path / "run")
    with pytest.raises(UserError, match="nothing to resume"):
        gankit.train(tiny_toy, tmp_path / "empty", resume=True)


@pytest.mark.parametrize("loss, extra", [("hinge", {}), ("wasserstein", {"gp": 1.0}), ("lsgan", {}),
                                         ("relativistic", {}), ("minimax", {}), ("nonsaturating", {"r1": 1.0})])
def test_every_loss_trains(tiny_toy, tmp_path, loss, extra):
    tiny_toy.loss.name = loss
    for k, v in extra.items():
        setattr(tiny_toy.loss, k, v)
    tiny_toy.train.n_critic = 2
    tiny_toy.train.accumulate = 2
    summary = gankit.train(tiny_toy, tmp_path / loss, steps=10)
    assert summary["step"] == 10 and np.isfinite(summary["last"]["loss_d"])


def test_corrupt_newest_checkpoint_falls_back(tiny_toy, tmp_path):
    gankit.train(tiny_toy, tmp_path / "run")
    newest = tmp_path / "run" / "checkpoints" / "step-00000040.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="skipping a bad checkpoint"):
        G = gankit.load(tmp_path / "run")
    assert G.step == 20


def test_no_training_starts_after_a_stop_signal(tiny_toy, tmp_path, monkeypatch):
    """A script training several runs stops at the first SIGINT/SIGTERM instead of starting the next."""
    import pytest

    import gankit
    from gankit import engine

    monkeypatch.setattr(engine, "_SIGNALLED", 15)
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        gankit.train(tiny_toy, tmp_path / "run")


def test_infogan_code_is_learnt(tiny_toy, tmp_path):
    # ring8's preset has an 8-way InfoGAN code: Q can tell the codes apart only once G makes them differ,
    # so a cross-entropy well under ln 8 = 2.08 (chance) shows both players use the code.
    tiny_toy.train.steps = 300
    tiny_toy.log.every = 50
    tiny_toy.log.sample_every = tiny_toy.log.checkpoint_every = 300
    gankit.train(tiny_toy, tmp_path / "run")
    info = [json.loads(line)["loss_info"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert info[0] > 1.8 and info[-1] < 1.4, info  # chance is ln 8; here ~1.0 after 300 steps
    from gankit.tasks.gan import info as run_info

    assert run_info(tmp_path / "run")["infogan"] == "8 codes, weight 1"  # gankit info shows it


def test_code_count_from_the_data(tmp_path):
    # three tight blobs: g.codes=-1 counts them before training and the run folder keeps the count
    from gankit.config import apply_overrides
    from gankit.data.clusters import count_clusters

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    x = centres[rng.integers(0, 3, 1500)] + 0.05 * rng.standard_normal((1500, 2))
    assert count_clusters(x) == 3
    assert count_clusters(rng.standard_normal((1500, 2))) == 1  # one blob is one cluster
    np.savez(tmp_path / "blobs.npz", samples=x.astype(np.float32))
    cfg = apply_overrides(gankit.preset("ring8"), [f"data.source={tmp_path / 'blobs.npz'}", "g.codes=-1",
                                                   "train.steps=20", "log.progress=false", "g.width=16",
                                                   "d.width=16", "data.batch_size=64", "log.n_samples=64"])
    gankit.train(cfg, tmp_path / "run")
    assert gankit.Config.load(tmp_path / "run" / "config.yaml").g.codes == 3
    assert gankit.load(tmp_path / "run").sample(10, seed=0).shape == (10, 2)
    # one connected cluster: the code is turned off (with its Q head), and the run trains as a plain GAN
    np.savez(tmp_path / "one.npz", samples=rng.standard_normal((1500, 2)).astype(np.float32))
    cfg.data.source, cfg.g.codes = str(tmp_path / "one.npz"), -1
    gankit.train(cfg, tmp_path / "one")
    saved = gankit.Config.load(tmp_path / "one" / "config.yaml")
    assert saved.g.codes == 0 and saved.loss.info == 0
    with pytest.raises(UserError, match="not images"):
        gankit.train(apply_overrides(gankit.preset("digits"), ["g.family=mlp", "g.codes=-1", "loss.info=1",
                                                               "d.family=mlp", "d.pack=1"]), tmp_path / "img")
