"""Crash safety: SIGKILL `gankit train` at random moments and resume; a crash at every point of a
checkpoint write; SIGTERM stops cleanly. The long version is benchmarks/faults.py (20 kills)."""

import importlib.util
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from gankit import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("faults_bench", ROOT / "benchmarks" / "faults.py")
faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    result = faults.run_faults(kills=3, seed=1, steps=24, kills_per_episode=3, workdir=tmp_path)
    assert result["errors"] == []
    assert result["kills"] == 3 and result["resumed"] == 3, result["per_kill"]
    assert result["corrupt_checkpoints"] == 0 and result["lost_checkpoints"] == 0
    assert result["bit_identical"] and result["metrics_identical"], result["per_episode"]
    assert result["leftover_files_after_finish"] == 0


def _tiny_save(ckpt_dir, step, value):
    ckpt.save_checkpoint(ckpt_dir, step, {"w": torch.full((64,), float(value))}, {"step": step}, keep_last=2)


def test_crash_at_every_point_of_a_checkpoint_write(tmp_path, monkeypatch):
    """Kill the writer (an exception stands in for SIGKILL) at each of the file operations of a save,
    leaving the half-written temporary file behind as a real kill would: the manifest only ever names
    complete, verified checkpoints, the newest survivor is the previous one, and the next save sweeps
    what the crash left."""
    real_replace = ckpt.os.replace
    n_ops = 3  # weights, meta, manifest: each a temporary file renamed into place
    for crash_at in range(n_ops):
        ckpt_dir = tmp_path / f"crash{crash_at}" / "checkpoints"
        _tiny_save(ckpt_dir, 3, 1)
        _tiny_save(ckpt_dir, 6, 2)
        calls = []

        def dying_replace(src, dst, crash_at=crash_at, calls=calls):
            calls.append(dst)
            if len(calls) - 1 == crash_at:
                raise SystemExit("killed")  # the temporary file stays, like after SIGKILL
            return real_replace(src, dst)

        monkeypatch.setattr(ckpt.os, "replace", dying_replace)
        monkeypatch.setattr(ckpt.Path, "unlink", lambda self, missing_ok=False: None)  # no cleanup either
        with pytest.raises(SystemExit):
            _tiny_save(ckpt_dir, 9, 3)
        monkeypatch.undo()
        entries = ckpt.read_manifest(ckpt_dir)
        for entry in entries:
            ckpt.verify(ckpt_dir, entry)  # raises if any named checkpoint is incomplete
        tensors, meta = ckpt.load_latest(ckpt_dir)
        assert meta["step"] == 6 and tensors["w"][0] == 2
        assert any(p.name.endswith(".tmp") for p in ckpt_dir.iterdir())  # the crash left its mark
        _tiny_save(ckpt_dir, 9, 3)
        names = sorted(p.name for p in ckpt_dir.iterdir())
        assert names == ["manifest.json", "step-00000006.json", "step-00000006.safetensors",
                         "step-00000009.json", "step-00000009.safetensors"], names


def test_torn_log_lines_and_no_checkpoint_yet_resume(quiet_toy, tmp_path):
    """A kill can cut a log line in half or come before the first checkpoint: --resume still works."""
    import gankit

    tiny_toy = quiet_toy
    straight = gankit.train(tiny_toy, tmp_path / "straight", steps=10)
    run = tmp_path / "run"
    gankit.train(tiny_toy, run, steps=10)
    ckpt_dir = run / "checkpoints"
    for p in ckpt_dir.iterdir():  # as if killed before the first checkpoint
        p.unlink()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "loss_d": 0.6')
    with open(run / "events.jsonl", "a") as f:
        f.write('{"step": 7, "ev')
    with pytest.warns(UserWarning, match="no checkpoint yet"):
        summary = gankit.train(tiny_toy, run, steps=10, resume=True)
    assert summary["step"] == 10
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "resume" and events[-1]["to_step"] == 0
    a, _ = ckpt.load_latest(tmp_path / "straight" / "checkpoints")
    b, _ = ckpt.load_latest(ckpt_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10] and straight["step"] == 10


def test_sigterm_stops_cleanly_with_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    cmd = faults.train_cmd(run, 100000, False)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "checkpoints" / ckpt.MANIFEST).exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "--resume" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] and not summary["finished"]
    _, meta = ckpt.load_latest(run / "checkpoints")
    assert meta["step"] == summary["step"]  # the stop wrote a checkpoint at the step it stopped


def test_cli_resume_without_steps_keeps_the_runs_length(tmp_path):
    from gankit.cli import main

    run = tmp_path / "run"
    args = ["train", "--preset", "ring8", "--out", str(run), "--quiet", "--set", "g.width=16",
            "--set", "d.width=16", "--set", "log.every=5", "--set", "log.checkpoint_every=5"]
    assert main([*args, "--steps", "5"]) == 0
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0  # no --preset, no --steps
    assert json.loads((run / "summary.json").read_text())["step"] == 5  # not the default preset's 2500




# ---------------------------------------------------------------------------------------------
# numerical faults: train.nonfinite = skip | rollback | stop


def _plant_nan(monkeypatch, at_steps, once=True):
    """Make the discriminator loss NaN at the given (1-based) generator steps."""
    from gankit.tasks.gan import GAN

    original, fired = GAN.d_loss, set()

    def d_loss(self, batch, fake, step):
        loss, logs = original(self, batch, fake, step)
        if step + 1 in at_steps and not (once and step + 1 in fired):
            fired.add(step + 1)
            loss = loss * float("nan")
        return loss, logs

    monkeypatch.setattr(GAN, "d_loss", d_loss)


@pytest.fixture
def quiet_toy(tiny_toy):
    """tiny_toy without sample plots or health signals: only the non-finite policy acts."""
    tiny_toy.log.sample_every = 10**6
    tiny_toy.health.enabled = False
    return tiny_toy


def _events(run):
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def _adam_steps(run, prefix):
    tensors, _ = ckpt.load_latest(run / "checkpoints")
    return {int(v) for k, v in tensors.items() if k.startswith(f"{prefix}.state.") and k.endswith(".step")}


def test_nonfinite_skip_drops_that_update(quiet_toy, tmp_path, monkeypatch):
    _plant_nan(monkeypatch, {5})
    quiet_toy.train.nonfinite = "skip"
    summary = gankit_train(quiet_toy, tmp_path / "run", steps=10)
    assert summary["finished"] and summary["step"] == 10
    skips = [e for e in _events(tmp_path / "run") if e["event"] == "nonfinite"]
    assert [(e["action"], e["phase"], e["at_step"]) for e in skips] == [("skip", "d", 5)]
    assert _adam_steps(tmp_path / "run", "opt_d") == {9}  # D's optimizer did not step at step 5
    assert _adam_steps(tmp_path / "run", "opt_g") == {10}
    tensors, _ = ckpt.load_latest(tmp_path / "run" / "checkpoints")
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if v.is_floating_point())


def test_nonfinite_rollback_returns_to_the_last_checkpoint(quiet_toy, tmp_path, monkeypatch):
    _plant_nan(monkeypatch, {13})
    quiet_toy.train.nonfinite = "rollback"
    quiet_toy.log.every, quiet_toy.log.checkpoint_every = 5, 10
    summary = gankit_train(quiet_toy, tmp_path / "run", steps=20)
    assert summary["finished"] and summary["step"] == 20
    events = _events(tmp_path / "run")
    fault = next(e for e in events if e["event"] == "nonfinite")
    rollback = next(e for e in events if e["event"] == "rollback")
    assert fault["at_step"] == 13 and fault["action"] == "rollback"
    assert rollback["from_step"] == 15 and rollback["to_step"] == 10  # detected at the next log line
    assert summary["last"]["lr_d"] == pytest.approx(quiet_toy.opt_d.lr * 0.5)
    tensors, _ = ckpt.load_latest(tmp_path / "run" / "checkpoints")
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())


def test_nonfinite_stop_saves_nothing_after_the_fault(quiet_toy, tmp_path, monkeypatch):
    _plant_nan(monkeypatch, {13})
    quiet_toy.train.nonfinite = "stop"
    quiet_toy.log.every, quiet_toy.log.checkpoint_every = 5, 5
    summary = gankit_train(quiet_toy, tmp_path / "run", steps=20)
    assert not summary["finished"] and "non-finite" in summary["stop_reason"] and summary["step"] == 15
    assert [e["step"] for e in ckpt.read_manifest(tmp_path / "run" / "checkpoints")] == [5, 10]  # not 15


def test_huge_learning_rate_is_caught_and_stops(quiet_toy, tmp_path):
    """A real divergence rather than a planted NaN: lr = 1e30 blows the weights up within a few steps."""
    quiet_toy.opt_d.lr = quiet_toy.opt_g.lr = 1e30
    summary = gankit_train(quiet_toy, tmp_path / "run", steps=30)
    assert "non-finite" in (summary["stop_reason"] or ""), summary
    assert any(e["event"] == "nonfinite" for e in _events(tmp_path / "run"))


def gankit_train(cfg, out, steps):
    import gankit

    return gankit.train(cfg, out, steps=steps)
