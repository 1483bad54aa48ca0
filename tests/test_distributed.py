"""Distributed training: torchrun + DDP (gloo on CPU) takes the same steps as one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gankit
from gankit import checkpoint as ckpt
from gankit.data import Batches, Dataset
from gankit.distributed import World, mean_over_ranks, world


def test_rank_slices_make_the_global_batch():
    ds = Dataset(x=torch.randn(50, 3), kind="vector")
    whole = Batches(ds, 8, torch.device("cpu"), seed=5, z_dim=4)
    parts = [Batches(ds, 4, torch.device("cpu"), seed=5, rank=r, world=2, z_dim=4) for r in (0, 1)]
    for _ in range(14):  # crosses several epoch boundaries (a reshuffle every 6 global batches)
        full = next(whole)
        halves = [next(p) for p in parts]
        for key in ("x", "z"):
            assert torch.equal(torch.cat([h[key] for h in halves]), full[key]), key
    assert parts[0].state_dict()["pos"] == whole.state_dict()["pos"]  # counts global samples


def test_single_process_defaults(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert world() == World() and world().is_main and not world().active
    logs = {"a": torch.tensor(2.0)}
    assert mean_over_ranks(logs) is logs
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert world().launched and not world().is_main and world().active


def _torchrun(nproc: int, out: Path, batch: int, steps: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "gankit", "train", "--preset", "ring8", "--out", str(out), "--steps", str(steps), "--quiet",
           "--set", f"data.batch_size={batch}", "--set", "g.width=32", "--set", "d.width=32",
           "--set", "log.every=2", "--set", "log.checkpoint_every=2", "--set", "log.sample_every=1000",
           "--set", "log.n_samples=64", "--set", "train.device=cpu", "--set", "train.threads=1",
           # minibatch-std sees each rank's own samples (as in StyleGAN2): not world-size invariant
           "--set", "d.mbstd=false",
           # two micro-batches per step: DDP all-reduces once per phase, after the second (no_sync first)
           "--set", "train.accumulate=2",
           # evaluation at the last step: each rank embeds half of the samples, the features are gathered
           "--set", "eval.every=4", "--set", "eval.n=300", "--set", "eval.metrics=fid,modes",
           "--set", "eval.features=raw"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_match_one_and_resume_in_one(tmp_path):
    _torchrun(2, tmp_path / "two", batch=32, steps=4)  # global batch 64 ...
    _torchrun(1, tmp_path / "one", batch=64, steps=4)  # ... as one process with the whole batch
    a, _ = ckpt.load_latest(tmp_path / "one" / "checkpoints")
    b, _ = ckpt.load_latest(tmp_path / "two" / "checkpoints")
    nets = [k for k in a if k.split(".")[0] in ("G", "D", "G_ema")]
    assert nets and a.keys() == b.keys()
    for k in nets:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)

    run = tmp_path / "two"  # rank 0 alone wrote it: one line per logging step, one sample grid
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    assert [p.name for p in (run / "samples").iterdir()] == ["step-00000004.png"]
    assert json.loads((run / "summary.json").read_text())["step"] == 4
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["samples_per_s"] > 0 and 0 <= record["d_real"] <= 1
    # sharded evaluation scores the same 300 samples as one process does (half of them would not agree)
    alone = json.loads((tmp_path / "one" / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(record["fid"] - alone["fid"]) <= 1e-4 * max(1.0, alone["fid"])
    assert record["hq"] == alone["hq"] and record["modes"] == alone["modes"]

    # the 2-process checkpoint continues in this single process (global sample count kept)
    config = gankit.Config.load(run / "config.yaml")
    summary = gankit.train(config, run, steps=6, resume=True)
    assert summary["step"] == 6 and summary["finished"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    c, _ = ckpt.load_latest(run / "checkpoints")
    assert int(c["batches.pos"]) == 4 * 64 + 2 * 32  # 4 global batches of 2 x 32, then 2 batches of 32


def test_sync_bn_converts_in_place_and_refuses_cpu(monkeypatch):
    from gankit.config import Config
    from gankit.distributed import sync_batchnorm
    from gankit.errors import UserError
    from gankit.tasks.gan import build_nets

    cfg = gankit.preset("digits")
    G, _ = build_nets(cfg, {"shape": [1, 16, 16], "classes": []})
    before = dict(G.state_dict())
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules())
    assert n_bn > 0
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert sync_batchnorm(G, torch.device("cpu")) is G  # one process: nothing to synchronise
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="sync_bn needs CUDA"):
        sync_batchnorm(G, torch.device("cpu"))
    synced = sync_batchnorm(G, torch.device("cuda"))  # conversion only: no CUDA tensor is touched
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == n_bn
    after = synced.state_dict()
    assert after.keys() == before.keys()  # checkpoints stay loadable by plain BatchNorm nets
    assert all(after[k] is before[k] or after[k].data_ptr() == before[k].data_ptr() for k in before)
    assert Config.from_dict(cfg.to_dict()).train.sync_bn is False


def test_sync_bn_refuses_double_backward_penalties():
    from gankit.errors import UserError
    from gankit.tasks.gan import build_nets, check_sync_bn

    cfg = gankit.preset("digits")
    cfg.d.norm, cfg.loss.r1 = "batch", 1.0
    G, D = build_nets(cfg, {"shape": [1, 16, 16], "classes": []})
    with pytest.raises(UserError, match="no double backward"):
        check_sync_bn(cfg, G, D)
    cfg.loss.r1 = 0.0
    check_sync_bn(cfg, G, D)  # BatchNorm without a penalty through it is fine


def test_eval_needs_a_sample_per_process(monkeypatch):
    from gankit.config import apply_overrides
    from gankit.data import load_data
    from gankit.errors import UserError
    from gankit.eval import make_eval_hook

    cfg = apply_overrides(gankit.preset("ring8"), ["eval.every=10", "eval.n=3", "eval.metrics=fid",
                                                   "eval.features=raw", "eval.best="])
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="smaller than the number of processes"):
        make_eval_hook(cfg, load_data(cfg.data), torch.device("cpu"))
