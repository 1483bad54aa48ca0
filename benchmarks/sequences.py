"""Language model vs sequence GANs at equal training time, on words, short texts and Bach chorales.

Every model gets the same wall-clock budget (the GANs spend half of it on MLE pre-training, as SeqGAN
does, and the rest in the adversarial engine). Text: BLEU-4 against the held-out split, self-BLEU-4,
novelty, and the NLL of the samples under the language model. Music: MuseGAN statistics of generated vs
held-out piano-rolls; a generated .mid and a piano-roll picture go to docs/. Prints JSON.

    .venv/bin/python benchmarks/sequences.py --seconds 60 --out runs/bench-seq
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from gankit.tasks.sequence import SequenceConfig, evaluate, fit, load

TEXT_MODELS = [("lm", {}), ("gan-gumbel", {"estimator": "gumbel"}), ("gan-reinforce", {"estimator": "reinforce"})]


def text_bench(source: str, seconds: float, out: Path, n: int, seed: int, temps: tuple[float, ...],
               hidden: int, clock: str) -> dict:
    results = {}
    lm_dir = out / source / "lm"
    for name, extra in TEXT_MODELS:
        run = out / source / name
        shutil.rmtree(run, ignore_errors=True)
        cfg = SequenceConfig.for_model("lm" if name == "lm" else "gan", seconds=seconds, steps=10**9,
                                       seed=seed, progress=False, hidden=hidden, clock=clock, **extra)
        t = time.time()
        summary = fit(source, run, cfg)
        entry = {"fit_seconds": round(time.time() - t, 1), "train_cpu_seconds": summary["cpu_seconds"],
                 "train_wall_seconds": summary["seconds"], "max_len": summary["max_len"],
                 "heldout_nll": summary.get("heldout_nll")}
        if "mle" in summary:
            entry["mle_steps"] = summary["mle"]["steps"]
        if "pretrain" in summary:
            entry["pretrain_steps"] = summary["pretrain"]["steps"]
        if "adversarial" in summary:
            entry["adversarial_steps"] = summary["adversarial"]["step"]
        entry["eval"] = {}
        for temp in temps if name == "lm" else (1.0,):
            ev = evaluate(run, n=n, seed=seed, temperature=temp, lm_run=lm_dir if name != "lm" else None)
            entry["eval"][f"T={temp}"] = {k: ev[k] for k in ("bleu4", "self_bleu4", "novelty", "unique", "mean_len",
                                                            "ref_mean_len", "lm_nll_of_samples") if k in ev}
            entry["eval"][f"T={temp}"]["samples"] = ev["samples"][:12]
        results[name] = entry
    return results


def music_bench(seconds: float, out: Path, n: int, seed: int, docs: Path | None, clock: str) -> dict:
    results = {}
    for name, model, extra in (("pianoroll-gan", "pianoroll-gan", {}), ("event-lm", "lm", {"kind": "midi", "bars": 1})):
        run = out / "chorales" / name
        shutil.rmtree(run, ignore_errors=True)
        cfg = SequenceConfig.for_model(model, seconds=seconds, steps=10**9, seed=seed, progress=False, clock=clock,
                                       **extra)
        t = time.time()
        summary = fit("chorales", run, cfg)
        ev = evaluate(run, n=n, seed=seed)
        results[name] = {"fit_seconds": round(time.time() - t, 1), "train_cpu_seconds": summary["cpu_seconds"],
                         "steps": summary["adversarial"]["step"] if "adversarial" in summary else summary["mle"]["steps"],
                         "bars": cfg.bars, "real": ev["real"], "generated": ev["generated"],
                         "distance": ev["distance"], "n_real": ev["n_real"]}
        if name == "pianoroll-gan" and docs is not None:
            results[name]["docs"] = write_docs(run, docs, seed)
    return results


def write_docs(run_dir: Path, docs: Path, seed: int) -> dict:
    """Four generated 4-bar samples one after another as docs/generated.mid, and their piano-roll with a
    held-out real passage as docs/pianoroll.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gankit.data import sequences as sq

    run = load(run_dir)
    rolls = run.sample_rolls(4, seed=seed)
    fake = rolls.reshape(-1, sq.N_PITCHES)  # 16 bars
    docs.mkdir(parents=True, exist_ok=True)
    sq.write_midi(sq.roll_to_notes(fake), docs / "generated.mid")
    real = np.load(run_dir / "heldout_rolls.npz")["rolls"][:4].reshape(-1, sq.N_PITCHES)
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), dpi=110, sharex=True)
    for ax, roll, title in ((axes[0], real, "real (held-out Bach chorale windows)"),
                            (axes[1], fake, "generated (pianoroll-gan, 4 samples of 4 bars)")):
        ax.imshow(roll.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                  extent=(0, roll.shape[0], sq.LOW_PITCH - 0.5, sq.LOW_PITCH + sq.N_PITCHES - 0.5))
        for bar in range(0, roll.shape[0] + 1, sq.STEPS_PER_BAR):
            ax.axvline(bar, color="#d62728" if bar % (4 * sq.STEPS_PER_BAR) == 0 else "#cccccc", lw=0.6)
        ax.set_ylabel("MIDI pitch")
        ax.set_title(title, fontsize=10)
    axes[1].set_xlabel("time (16th-note steps)")
    fig.tight_layout()
    fig.savefig(docs / "pianoroll.png")
    plt.close(fig)
    return {"midi": str(docs / "generated.mid"), "png": str(docs / "pianoroll.png")}


def markdown(report: dict) -> str:
    """The report's tables as markdown (for BENCHMARKS.md)."""
    lines = []
    for source, models in report.get("text", {}).items():
        header = ("| model | sampling | steps (MLE + adversarial) | BLEU-4 (higher = closer to held-out) | "
                  "self-BLEU-4 (lower = more diverse) | novelty | unique | LM NLL of samples (nats/token) |")
        lines += [f"#### {source}", "", header, "|---|---|---|---|---|---|---|---|"]
        for name, entry in models.items():
            steps = (f"{entry['mle_steps']}" if "mle_steps" in entry
                     else f"{entry.get('pretrain_steps', 0)} + {entry.get('adversarial_steps', 0)}")
            for temp, ev in entry["eval"].items():
                lines.append(f"| {name} | {temp} | {steps} | {ev['bleu4']:.3f} | {ev['self_bleu4']:.3f} | "
                             f"{ev['novelty']:.3f} | {ev['unique']:.3f} | {ev.get('lm_nll_of_samples', float('nan')):.3f} |")
        lines.append("")
        for name, entry in models.items():
            ev = entry["eval"]["T=1.0"]
            lines.append(f"- **{name}** (T=1.0): " + ", ".join(f"`{s}`" for s in ev["samples"][:12]))
        lines.append("")
    music = report.get("music")
    if music:
        stats = list(next(iter(music.values()))["real"])
        lines += ["#### chorales: MuseGAN statistics, real (held-out) vs generated", "",
                  "| model | steps | " + " | ".join(stats) + " |", "|---|---|" + "---|" * len(stats)]
        for name, entry in music.items():
            for which in ("real", "generated", "distance"):
                lines.append(f"| {name} ({which}) | {entry['steps']} | "
                             + " | ".join(f"{entry[which][k]:.3f}" for k in stats) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="training budget per model (default 60)")
    p.add_argument("--music-seconds", type=float, default=120.0, help="budget per music model (default 120)")
    p.add_argument("--text", default="words,fortunes", help="text data sets (comma-separated)")
    p.add_argument("--no-music", action="store_true")
    p.add_argument("--n", type=int, default=500, help="samples per evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench-seq")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                   help="budget clock: cpu = this process's CPU time, fair on a shared machine (default)")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown to FILE")
    p.add_argument("--temperatures", default="1.0,0.9,0.8,0.7,0.5", help="LM sampling temperatures")
    p.add_argument("--hidden", type=int, default=256, help="LSTM units of every text model (default 256)")
    p.add_argument("--docs", default="docs", help="where generated.mid and pianoroll.png go ('' to skip)")
    args = p.parse_args()
    out = Path(args.out)
    report = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "seconds": args.seconds,
              "clock": args.clock, "hidden": args.hidden,
              "music_seconds": args.music_seconds, "n": args.n, "seed": args.seed, "text": {}}
    for source in [s for s in args.text.split(",") if s]:
        temps = tuple(float(t) for t in args.temperatures.split(","))
        report["text"][source] = text_bench(source, args.seconds, out, args.n, args.seed, temps, args.hidden,
                                            args.clock)
        print(json.dumps({source: report["text"][source]}), flush=True)
    if not args.no_music:
        report["music"] = music_bench(args.music_seconds, out, args.n, args.seed, Path(args.docs) if args.docs else None,
                                      args.clock)
    print(json.dumps(report, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))


if __name__ == "__main__":
    main()
