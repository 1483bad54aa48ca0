"""Fault suite, long version: SIGKILL ``gankit train`` at random moments, resume after every kill, and
check that no checkpoint was lost or corrupted and that the finished run is bit-identical to one that
was never interrupted. Prints one JSON object.

    .venv/bin/python benchmarks/faults.py --kills 20 --seed 0

How it works. A reference run trains without interruption. Then "episodes" start the same run in a
fresh folder; each session of an episode is killed (SIGKILL, no chance to clean up) at a moment drawn
uniformly from a window after the session started training (its resume event, or config.yaml for the
first session), then restarted with ``--resume``; after ``--kills-per-episode`` kills, or when a session
outlives its window, the session runs to the end and finishes the episode, whose final checkpoint (weights, EMA, optimizer moments, RNG and data-order state) and logged
losses are compared bit for bit with the reference. After every kill each checkpoint named by the
manifest is verified (SHA-256 + safetensors parse), and the newest valid step must never go backwards
(a lost checkpoint). A kill that leaves a temporary or unlisted checkpoint file behind happened during
a checkpoint write. ``--rows N`` trains on N ring8 points written to an .npz instead of the built-in
50,000: every checkpoint then carries N int64 of data order, so writes take longer and more kills land
in them (no test-only switch in gankit itself). ``tests/test_faults.py`` runs the harness with 3 kills.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit import checkpoint as ckpt
from gankit.errors import UserError

# Small ring8 networks so that a run takes seconds, and a checkpoint every 3 steps so that kills often
# land in checkpoint writes. Log lines come at the same steps: a record logged after a resume then
# averages the same steps as the uninterrupted run's, so metrics.jsonl can be compared too.
TRAIN_ARGS = ["--preset", "ring8", "--quiet", "--set", "g.width=64", "--set", "d.width=64",
              "--set", "data.batch_size=64", "--set", "log.every=3", "--set", "log.checkpoint_every=3",
              "--set", "log.keep_last=2", "--set", "log.sample_every=1000000", "--set", "log.n_samples=64",
              "--set", "train.threads=1"]
VOLATILE = {"time", "samples_per_s"}  # metrics.jsonl fields that depend on the wall clock


def train_cmd(out: Path, steps: int, resume: bool, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "gankit", "train", "--out", str(out), "--steps", str(steps), *TRAIN_ARGS,
            *extra, *(["--resume"] if resume else [])]


def resume_events(run: Path) -> list[dict[str, Any]]:
    path = run / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(record, dict) and record.get("event") == "resume":
            out.append(record)
    return out


def inspect(run: Path) -> dict[str, Any]:
    """Verify every checkpoint the manifest names; list what a crash left behind."""
    ckpt_dir = run / "checkpoints"
    try:
        entries = ckpt.read_manifest(ckpt_dir)
    except UserError:
        return {"steps": [], "valid": [], "corrupt": 1, "leftovers": []}
    valid, corrupt = [], 0
    for entry in entries:
        try:
            ckpt.verify(ckpt_dir, entry)
            valid.append(entry["step"])
        except UserError:
            corrupt += 1
    named = {e[k] for e in entries for k in ("weights", "meta")} | {ckpt.MANIFEST}
    leftovers = sorted(p.name for p in ckpt_dir.iterdir() if p.name not in named) if ckpt_dir.is_dir() else []
    return {"steps": [e["step"] for e in entries], "valid": valid, "corrupt": corrupt, "leftovers": leftovers}


def wait_started(proc: subprocess.Popen, run: Path, resumes_before: int, launched: float) -> bool:
    """Until the session trains: a new resume event, or (first session) a fresh config.yaml."""
    while proc.poll() is None:
        if resumes_before >= 0:
            if len(resume_events(run)) > resumes_before:
                return True
        elif (run / "config.yaml").exists() and (run / "config.yaml").stat().st_mtime >= launched - 1:
            return True
        time.sleep(0.01)
    return False


def final_state(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], list[dict[str, Any]]]:
    tensors, meta = ckpt.load_latest(run / "checkpoints")
    records = [{k: v for k, v in json.loads(line).items() if k not in VOLATILE}
               for line in (run / "metrics.jsonl").read_text().splitlines()]
    return tensors, meta, records


def same_run(a: Path, b: Path) -> tuple[bool, bool]:
    """(final checkpoints bit-identical, logged metrics identical)."""
    ta, ma, ra = final_state(a)
    tb, mb, rb = final_state(b)
    tensors_equal = (ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
                     and ma["optim"] == mb["optim"] and ma["step"] == mb["step"])
    return tensors_equal, ra == rb


def run_reference(run: Path, steps: int, timeout: float = 600.0, extra: tuple[str, ...] = ()) -> float:
    """The uninterrupted run; returns its training time in seconds (start of training to exit)."""
    err = run.with_suffix(".err")
    launched = time.time()
    with open(err, "w") as err_file:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(train_cmd(run, steps, False, extra), stdout=subprocess.DEVNULL, stderr=err_file)
    started = wait_started(proc, run, -1, launched)
    t_train = time.time()
    if proc.wait(timeout=timeout) != 0 or not started:
        raise RuntimeError(f"reference run failed: {err.read_text()[-2000:]}")
    return time.time() - t_train


def run_faults(kills: int = 20, seed: int = 0, steps: int = 60, kills_per_episode: int = 5,
               workdir: Path | None = None, reference: Path | None = None, train_s: float | None = None,
               rows: int = 0, timeout: float = 600.0) -> dict[str, Any]:
    """SIGKILL ``kills`` training sessions at random moments, resuming after each; see the module doc.
    ``reference`` (with its training time ``train_s``) reuses an uninterrupted run of ``train_cmd``."""
    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="gankit-faults-") if workdir is None else None
    work = Path(tmp.name if tmp else workdir)
    t0 = time.time()
    extra: tuple[str, ...] = ()
    if rows:
        from gankit.data.builtin import sample_mixture

        np.savez(work / "ring8.npz", x=sample_mixture("ring8", rows, seed=0).astype(np.float32))
        extra = ("--set", f"data.source={work / 'ring8.npz'}")
    if reference is None or train_s is None:
        reference = work / "reference"
        train_s = run_reference(reference, steps, timeout, extra)
    window = 2 * train_s / (kills_per_episode + 1)  # k kills spread over one run on average

    per_kill: list[dict[str, Any]] = []
    episodes: list[dict[str, Any]] = []
    errors: list[str] = []
    while len(per_kill) < kills and len(episodes) < 4 * kills:
        run = work / f"episode-{len(episodes)}"
        resume, best_valid, pending = False, -1, None  # pending: the kill whose resume we wait for
        episode_kills = 0
        while True:
            before = len(resume_events(run)) if resume else -1
            err_path = work / f"{run.name}-session-{len(per_kill)}.err"
            launched = time.time()
            with open(err_path, "w") as err_file:
                proc = subprocess.Popen(train_cmd(run, steps, resume, extra), stdout=subprocess.DEVNULL,
                                    stderr=err_file)
            started = wait_started(proc, run, before, launched)
            if pending is not None:
                events = resume_events(run)
                pending["resumed"] = bool(started and events and events[-1].get("to_step") == pending["expect_step"])
                pending = None
            if started and len(per_kill) < kills and episode_kills < kills_per_episode:
                delay = rng.uniform(0, window)
                time.sleep(delay)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    state = inspect(run)
                    newest = max(state["valid"], default=0)
                    record = {"episode": len(episodes), "after_s": round(delay, 3), "newest_step": newest,
                              "corrupt": state["corrupt"], "lost": newest < best_valid,
                              "during_checkpoint_write": bool(state["leftovers"]),
                              "leftovers": state["leftovers"], "expect_step": newest, "resumed": False}
                    best_valid = max(best_valid, newest)
                    per_kill.append(record)
                    pending, resume = record, True
                    episode_kills += 1
                    continue
            rc = proc.wait(timeout=timeout)
            if rc != 0:
                errors.append(f"{err_path.name}: exit {rc}: {err_path.read_text()[-500:]}")
            break
        if pending is not None:  # the episode ended before its last kill could be resumed
            errors.append(f"kill {len(per_kill)} was not followed by a resume")
        state = inspect(run)
        identical, metrics_same = same_run(reference, run) if not errors else (False, False)
        episodes.append({"episode": len(episodes), "kills": sum(r["episode"] == len(episodes) for r in per_kill),
                         "bit_identical": identical, "metrics_identical": metrics_same,
                         "corrupt_at_end": state["corrupt"], "leftovers_at_end": state["leftovers"]})
        if errors:
            break
    if tmp:
        tmp.cleanup()
    return {
        "kills": len(per_kill),
        "resumed": sum(r["resumed"] for r in per_kill),
        "corrupt_checkpoints": sum(r["corrupt"] for r in per_kill) + sum(e["corrupt_at_end"] for e in episodes),
        "lost_checkpoints": sum(r["lost"] for r in per_kill),
        "kills_during_checkpoint_write": sum(r["during_checkpoint_write"] for r in per_kill),
        "episodes": len(episodes),
        "bit_identical": bool(episodes) and all(e["bit_identical"] for e in episodes),
        "metrics_identical": bool(episodes) and all(e["metrics_identical"] for e in episodes),
        "leftover_files_after_finish": sum(len(e["leftovers_at_end"]) for e in episodes),
        "errors": errors,
        "steps": steps, "seed": seed, "rows": rows or "built-in 50000", "kill_window_s": round(window, 3), "reference_train_s": round(train_s, 2),
        "wall_s": round(time.time() - t0, 1),
        "per_kill": per_kill, "per_episode": episodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--kills-per-episode", type=int, default=2)
    parser.add_argument("--rows", type=int, default=0, help="train on this many ring8 points (0: built-in)")
    args = parser.parse_args()
    result = run_faults(args.kills, args.seed, args.steps, args.kills_per_episode, rows=args.rows)
    result["command"] = " ".join(["benchmarks/faults.py", *sys.argv[1:]])
    result["machine"] = f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}"
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
