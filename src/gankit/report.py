"""The HTML report of a run (``gankit report``): one self-contained page, no network needed to view it.

Curves of the losses, D(real)/D(fake), gradient norms, diversity and coverage, the evaluation metrics
when the run logged any, sample grids over time and the health diagnosis with its evidence. Plots are
matplotlib PNGs and sample grids the run's own PNGs, both embedded as base64 data URIs.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from gankit import health
from gankit.checkpoint import atomic_write_bytes
from gankit.errors import UserError

# keys written by the training loop and the health monitor; anything else numeric is an evaluation metric
TRAINING_KEYS = {"step", "time", "samples_per_s", "lr_g", "lr_d", "nonfinite", "d_real", "d_fake", "acc_real",
                 "acc_fake", "logit_real", "logit_fake", "diversity", "mode_coverage", "class_coverage"}
TRAINING_PREFIXES = ("loss_", "grad_norm", "gp", "r1", "aux_", "d_", "g_")
MAX_GRIDS = 8
SPAN_COLORS = {"divergence": "#d62728", "oscillation": "#ff7f0e", "mode_collapse": "#9467bd",
               "vanishing_gradients": "#8c564b", "d_overpowers": "#e377c2", "g_overpowers": "#17becf",
               "converging": "#2ca02c"}


def eval_keys(records: list[dict[str, Any]]) -> list[str]:
    """Numeric keys that are not training signals: the evaluation metrics (fid, kid_mean, precision, ...)."""
    keys: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in TRAINING_KEYS \
                    and not k.startswith(TRAINING_PREFIXES) and not k.endswith("_trend"):
                keys[k] = None
    return list(keys)


def _column(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], float(r[key])) for r in records if isinstance(r.get(key), (int, float)) and "step" in r]
    if not pts:
        return np.empty(0), np.empty(0)
    steps, values = np.array(pts).T
    return steps, values


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plot(records: list[dict[str, Any]], title: str, keys: list[str], findings: list[health.Finding],
          ylabel: str = "", log: bool = False, hline: float | None = None) -> str | None:
    """One curve per key that the run logged, with the findings' step ranges shaded; None if no key was."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(k, *_column(records, k)) for k in keys]
    series = [(k, s, v) for k, s, v in series if len(s)]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for key, steps, values in series:
        if log:
            values = np.where(values > 0, values, np.nan)
        ax.plot(steps, values, label=key, lw=1.3 if "/" not in key else 0.8, ls="-" if "/" not in key else "--")
    if hline is not None:
        ax.axhline(hline, color="#888888", lw=0.8, ls=":")
    for f in findings:
        ax.axvspan(f.first_step, f.last_step, color=SPAN_COLORS.get(f.code, "#cccccc"), alpha=0.12, lw=0)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("generator step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(series)), loc="best")
    fig.tight_layout()
    return _png(fig)


def _grids(run_dir: Path) -> list[tuple[str, str]]:
    """Up to MAX_GRIDS sample grids, evenly spaced over the run and always including the last."""
    paths = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    if len(paths) > MAX_GRIDS:
        idx = np.unique(np.linspace(0, len(paths) - 1, MAX_GRIDS).round().astype(int))
        paths = [paths[i] for i in idx]
    return [(p.stem, base64.b64encode(p.read_bytes()).decode("ascii")) for p in paths]


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _findings_html(result: dict[str, Any]) -> str:
    rows = []
    for f in result["findings"]:
        ev = "<br />".join(f"{_e(k)} = {_e(_fmt(v))}" for k, v in f["evidence"].items())
        cls = "good" if f["code"] == "converging" else "bad"
        rows.append(f'<tr><td class="{cls}"><b>{_e(f["code"])}</b></td><td>{f["first_step"]}&#8211;'
                    f'{f["last_step"]}</td><td class="ev">{ev}</td><td>{_e(f["remedy"])}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="4">No findings: no failure pattern, and not (yet) settled at '
                    "equilibrium.</td></tr>")
    return ('<table><tr><th>code</th><th>steps</th><th>evidence</th><th>remedy</th></tr>'
            + "".join(rows) + "</table>")


CSS = """body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border:1px solid #ddd;padding:.35em;
vertical-align:top;text-align:left}th{background:#f4f4f4}.good{color:#1a7f37}.bad{color:#b42318}
.ev{font-family:monospace;font-size:.85em}.verdict{font-size:1.1em;padding:.4em .7em;display:inline-block;
border-radius:4px}.healthy{background:#dafbe1}.unhealthy{background:#ffebe9}figure{display:inline-block;
margin:.3em;text-align:center;font-size:.8em}img{max-width:100%}.grids img{width:240px;
image-rendering:pixelated}.kv td{font-family:monospace}"""


def build_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report/index.html`` and return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    records = health.read_jsonl(run_dir / "metrics.jsonl")
    if not records:
        raise UserError(f"{run_dir}: no metrics.jsonl records to report (has the run logged a step yet?)")
    result = health.doctor(run_dir)
    findings = [health.Finding(**f) for f in result["findings"]]
    shaded = [f for f in findings if f.code != "converging"]
    train = [r for r in records if "loss_d" in r or "d_real" in r]
    d_note = "sigmoid of D's raw scores" if any(r.get("d_output") == "sigmoid_of_logits" for r in train) \
        else "probability"
    blocks = sorted({k for r in train for k in r if k.startswith("grad_norm_") and "/" in k})
    evals = eval_keys(records)
    plots = [
        ("Losses", _plot(train, "losses", ["loss_d", "loss_g"], shaded)),
        ("Discriminator outputs", _plot(train, f"D(real), D(fake) ({d_note}) and D's accuracy",
                                        ["d_real", "d_fake", "acc_real", "acc_fake"], shaded, hline=0.5)),
        ("Gradient norms", _plot(train, "gradient norms (global, and per block dashed)",
                                 ["grad_norm_g", "grad_norm_d", *blocks], shaded, log=True)),
        ("Diversity and coverage", _plot(train, "generated spread / real spread, and coverage",
                                         ["diversity", "mode_coverage", "class_coverage"], shaded, hline=1.0)),
        ("Throughput and learning rates", _plot(train, "samples per second", ["samples_per_s"], [])),
    ]
    if evals:
        plots.append(("Evaluation metrics", _plot(records, "evaluation metrics", evals, shaded)))
    last = {k: v for k, v in (train[-1] if train else records[-1]).items() if isinstance(v, (int, float))}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8" /><title>gankit report: ' + _e(run_dir.name) + "</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Training report: {_e(run_dir.resolve().name)}</h1>",
        f"<p>{len(train)} logged steps, last step {records[-1].get('step')}.</p>",
        "<h2>Diagnosis</h2>",
        f'<p><span class="verdict {result["verdict"]}">verdict: {result["verdict"]}</span></p>',
        _findings_html(result),
        "<h2>Samples over time</h2>",
    ]
    grids = _grids(run_dir)
    if grids:
        parts.append('<div class="grids">' + "".join(
            f'<figure><img alt="{_e(name)}" src="data:image/png;base64,{b64}" /><figcaption>{_e(name)}'
            "</figcaption></figure>" for name, b64 in grids) + "</div>")
    else:
        parts.append("<p>No sample grids in samples/.</p>")
    parts.append("<h2>Curves</h2>")
    for title, b64 in plots:
        if b64:
            parts.append(f'<figure><img alt="{_e(title)}" src="data:image/png;base64,{b64}" /></figure>')
    if evals:
        ev_rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(_column(records, k)[1][-1]))}</td></tr>"
                          for k in evals)
        parts.append(f'<h2>Evaluation (last)</h2><table class="kv">{ev_rows}</table>')
    events = health.read_jsonl(run_dir / "events.jsonl")
    if events:
        rows = "".join(f"<tr><td>{_e(e.get('step'))}</td><td>{_e(e.get('event'))}</td><td>"
                       + _e(", ".join(f"{k}={_fmt(v)}" for k, v in e.items() if k not in ("step", "event")))
                       + "</td></tr>" for e in events)
        parts.append(f'<h2>Events</h2><table class="kv"><tr><th>step</th><th>event</th><th>details</th></tr>{rows}'
                     "</table>")
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in last.items())
    parts += [f'<h2>Last logged values</h2><table class="kv">{rows}</table>', "</body></html>"]
    out = run_dir / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, "\n".join(parts).encode("utf-8"))
    return out
