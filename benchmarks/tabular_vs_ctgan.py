"""gankit's TabularGAN against the reference `ctgan` package on tables that ship offline. Prints JSON.

Both get the same train split, discrete columns, epochs, batch size (500), pac (10), network widths and
torch thread count; both are scored by :func:`gankit.metrics.tabular.evaluate` on the same real holdout.
ctgan runs in its own virtual environment (``--ctgan-python``) through a subprocess, so its fit and sample
times are measured inside that process exactly like gankit's (wall clock around ``fit`` and ``sample``, and
the process's CPU time around ``fit``, which a shared machine disturbs less). The tools take turns seed by
seed, so each seed gives a paired fit-time ratio as well as the ratio of the means.

    python benchmarks/tabular_vs_ctgan.py --tables anes96,breast_cancer,fair --seeds 0,1,2 --epochs 300
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CTGAN_RUNNER = r"""
import json, sys, time
import pandas as pd, numpy as np, torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
import torch._dynamo  # noqa: F401  (imported by the first Adam; warmed up outside the timing, as for gankit)
from ctgan import CTGAN
df = pd.read_csv(args["train"])
model = CTGAN(epochs=args["epochs"], batch_size=args["batch_size"], pac=10, enable_gpu=False, verbose=False)
model.set_random_state(args["seed"])
t, c = time.perf_counter(), time.process_time()
model.fit(df, discrete_columns=args["discrete"])
fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c
t = time.perf_counter(); synth = model.sample(args["n"]); sample_s = time.perf_counter() - t
synth.to_csv(args["out"], index=False)
import ctgan
print(json.dumps({"fit_seconds": fit_s, "fit_cpu_seconds": fit_cpu, "sample_seconds": sample_s, "version": ctgan.__version__,
                  "torch": torch.__version__}))
"""


def load_table(name: str) -> tuple[pd.DataFrame, list[str], str]:
    """(table, discrete columns, ML-efficacy target)."""
    if name == "anes96":
        import statsmodels.api as sm

        df = sm.datasets.anes96.load_pandas().data
        disc = ["TVnews", "selfLR", "ClinLR", "DoleLR", "PID", "educ", "vote"]
        return df, disc, "vote"
    if name == "fair":
        import statsmodels.api as sm

        df = sm.datasets.fair.load_pandas().data
        # the data set's documented use: did the respondent have an affair (affairs > 0)?
        df = df.assign(had_affair=(df.pop("affairs") > 0).astype(int))
        disc = ["rate_marriage", "religious", "educ", "occupation", "occupation_husb", "had_affair"]
        return df, disc, "had_affair"
    if name == "modechoice":
        import statsmodels.api as sm

        df = sm.datasets.modechoice.load_pandas().data.drop(columns=["individual"])
        return df, ["mode", "choice", "psize"], "choice"
    if name in ("breast_cancer", "wine"):
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        df = bunch.frame.copy()
        df["target"] = [str(bunch.target_names[i]) for i in df["target"]]
        return df, ["target"], "target"
    raise SystemExit(f"unknown table {name}")


def run_gankit(train: pd.DataFrame, disc: list[str], args: argparse.Namespace, seed: int) -> tuple[pd.DataFrame, dict]:
    import torch
    import torch._dynamo  # imported by the first Adam: warmed up outside the timing, as for ctgan

    from gankit.tasks.tabular import TabularGAN

    torch.set_num_threads(args.threads)
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.gankit_set)}
    gan = TabularGAN(epochs=args.epochs, batch_size=args.batch_size, seed=seed, verbose=False, threads=args.threads,
                     **extra)
    t, c = time.perf_counter(), time.process_time()
    gan.fit(train, discrete_columns=disc)
    fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    synth = gan.sample(len(train), seed=seed)
    sample_s = time.perf_counter() - t
    return synth, {"fit_seconds": fit_s, "fit_cpu_seconds": fit_cpu, "sample_seconds": sample_s,
                   "precision": gan.fit_info["precision"]}


def run_ctgan(train: pd.DataFrame, disc: list[str], args: argparse.Namespace, seed: int,
              tmp: Path) -> tuple[pd.DataFrame, dict]:
    train_csv, out_csv = tmp / "train.csv", tmp / f"ctgan-{seed}.csv"
    train.to_csv(train_csv, index=False)
    spec = {"train": str(train_csv), "out": str(out_csv), "discrete": disc, "epochs": args.epochs,
            "batch_size": args.batch_size, "seed": seed, "n": len(train), "threads": args.threads}
    proc = subprocess.run([args.ctgan_python, "-c", CTGAN_RUNNER, json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"ctgan failed: {proc.stderr.strip().splitlines()[-1:]}")
    timing = json.loads(proc.stdout.strip().splitlines()[-1])
    return pd.read_csv(out_csv), timing


def machine() -> dict:
    """What the times were measured on: the VMs behind this benchmark have changed between sessions."""
    import os
    import platform

    import torch

    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        info["simd"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    except (OSError, StopIteration):
        pass
    return info


def summarise(rows: list[dict]) -> dict:
    keys = ["fit_seconds", "fit_cpu_seconds", "sample_seconds", "fidelity", "column_shape", "pair_trend", "ml_efficacy",
            "ml_efficacy_real", "dcr_synthetic_median", "dcr_holdout_median", "exact_copies_share"]
    return {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))}
            for k in keys}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", default="anes96,breast_cancer,fair")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--epochs-for", default="", help="per-table epochs, e.g. fair=100 (same for both tools)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=2, help="torch threads for both tools")
    p.add_argument("--ctgan-python", default="/work/venv-ctgan/bin/python")
    p.add_argument("--tools", default="gankit,ctgan")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--gankit-set", action="append", default=[], metavar="KEY=JSON",
                   help="a TabularGAN setting for gankit's side, e.g. gp_every=4 (repeatable)")
    args = p.parse_args()

    from sklearn.model_selection import train_test_split

    from gankit.data.tables import infer_types
    from gankit.metrics.tabular import evaluate

    per_table_epochs = dict(kv.split("=") for kv in args.epochs_for.split(",") if kv)
    base_epochs = args.epochs
    result: dict = {"config": {**vars(args), "python": sys.version.split()[0], "machine": machine()}, "tables": {}}
    for name in args.tables.split(","):
        args.epochs = int(per_table_epochs.get(name, base_epochs))
        df, disc, target = load_table(name)
        train, holdout = train_test_split(df, test_size=0.3, random_state=0, stratify=df[target])
        train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)
        types = infer_types(df, disc)
        table: dict = {"rows": len(df), "columns": df.shape[1], "train_rows": len(train), "epochs": args.epochs,
                       "target": target, "discrete": disc, "runs": {}}
        tools = args.tools.split(",")
        rows: dict[str, list[dict]] = {tool: [] for tool in tools}
        # Seed by seed, the tools take turns: this VM's speed drifts over minutes, and a paired order puts
        # both tools' fits of a seed under nearly the same conditions (see fit_speedup_per_seed).
        for seed in map(int, args.seeds.split(",")):
            for tool in tools:
                with tempfile.TemporaryDirectory() as tmp:
                    if tool == "gankit":
                        synth, timing = run_gankit(train, disc, args, seed)
                    else:
                        synth, timing = run_ctgan(train, disc, args, seed, Path(tmp))
                rep = evaluate(train, synth, types, holdout, [target], seed=seed)
                row = {"seed": seed, **timing, "fidelity": rep["fidelity"]["overall"],
                       "column_shape": rep["fidelity"]["column_shape_score"],
                       "pair_trend": rep["fidelity"]["pair_trend_score"],
                       "ml_efficacy": rep["utility"][target]["synthetic_mean"],
                       "ml_efficacy_real": rep["utility"][target]["real_mean"],
                       **{k: rep["privacy"][k] for k in ("dcr_synthetic_median", "dcr_holdout_median",
                                                        "exact_copies_share")}}
                rows[tool].append(row)
                print(json.dumps({"table": name, "tool": tool, **row}), file=sys.stderr, flush=True)
        for tool in tools:
            table["runs"][tool] = {"seeds": rows[tool], "mean": summarise(rows[tool])}
        if "gankit" in table["runs"] and "ctgan" in table["runs"]:
            g, c = table["runs"]["gankit"]["mean"], table["runs"]["ctgan"]["mean"]
            table["comparison"] = {"fit_speedup": c["fit_seconds"]["mean"] / g["fit_seconds"]["mean"],
                                   "fit_cpu_speedup": c["fit_cpu_seconds"]["mean"] / g["fit_cpu_seconds"]["mean"],
                                   "sample_speedup": c["sample_seconds"]["mean"] / g["sample_seconds"]["mean"],
                                   "fidelity_delta": g["fidelity"]["mean"] - c["fidelity"]["mean"],
                                   "ml_efficacy_delta": g["ml_efficacy"]["mean"] - c["ml_efficacy"]["mean"]}
            paired = [rc["fit_seconds"] / rg["fit_seconds"] for rg, rc in zip(rows["gankit"], rows["ctgan"])]
            table["comparison"]["fit_speedup_per_seed"] = paired
            table["comparison"]["fit_speedup_median"] = float(np.median(paired))
        result["tables"][name] = table
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
