"""The HTML report for a synthetic table: scores from :mod:`gankit.metrics.tabular` and plots (embedded
as base64 PNG, so the report is one self-contained file)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import pandas as pd

from gankit.data.tables import DISCRETE_KINDS
from gankit.metrics.tabular import _labels, _numbers

_MAX_PLOTTED_COLUMNS = 24


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _column_plots(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = list(types)[:_MAX_PLOTTED_COLUMNS]
    ncol = 4
    nrow = (len(cols) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.8 * nrow), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        kind = types[col]
        if kind in DISCRETE_KINDS:
            r, s = _labels(real[col]).value_counts(normalize=True), _labels(synth[col]).value_counts(normalize=True)
            keys = r.index.union(s.index)[:20]
            x = np.arange(len(keys))
            ax.bar(x - 0.2, r.reindex(keys, fill_value=0), 0.4, label="real", color="#7f7f7f")
            ax.bar(x + 0.2, s.reindex(keys, fill_value=0), 0.4, label="synthetic", color="#d62728")
            ax.set_xticks(x, [str(k)[:10] for k in keys], rotation=45, fontsize=7)
        else:
            r, s = _numbers(real[col], kind), _numbers(synth[col], kind)
            r, s = r[~np.isnan(r)], s[~np.isnan(s)]
            bins = np.histogram_bin_edges(r, bins=30)
            ax.hist(r, bins=bins, density=True, alpha=0.5, label="real", color="#7f7f7f")
            ax.hist(s, bins=bins, density=True, alpha=0.5, label="synthetic", color="#d62728")
        ax.set_title(f"{col} ({kind})", fontsize=9)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    return _png(fig)


def _correlation_plot(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str]) -> str:
    import matplotlib.pyplot as plt

    num = [c for c, k in types.items() if k not in DISCRETE_KINDS][:_MAX_PLOTTED_COLUMNS]
    if len(num) < 2:
        return "<p>Fewer than two numeric columns: no correlation matrix.</p>"

    def corr(df: pd.DataFrame) -> np.ndarray:
        return pd.DataFrame({c: _numbers(df[c], types[c]) for c in num}).corr().fillna(0).to_numpy()

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, m, title in zip(axes, (corr(real), corr(synth), np.abs(corr(real) - corr(synth))),
                            ("real", "synthetic", "|difference|")):
        im = ax.imshow(m, vmin=-1 if title != "|difference|" else 0, vmax=1, cmap="coolwarm" if title !=
                       "|difference|" else "Reds")
        ax.set_title(f"correlation: {title}", fontsize=10)
        ax.set_xticks(range(len(num)), [c[:10] for c in num], rotation=90, fontsize=6)
        ax.set_yticks(range(len(num)), [c[:10] for c in num], fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + body + "</table>"


def _fit_line(fit: dict[str, Any]) -> str:
    """How the model was trained (from its model.json), when known: models saved before a field existed lack it."""
    known = [(label, fit[key]) for key, label in (("rows", "training rows"), ("steps", "steps"),
                                                  ("precision", "precision"), ("fit_seconds", "fit seconds"))
             if key in fit]
    if not known:
        return ""
    return "<p>Model: " + ", ".join(f"{label} {html.escape(str(v))}" for label, v in known) + ".</p>"


def render(result: dict[str, Any], real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str],
           title: str = "Synthetic table report") -> str:
    """The report as one HTML page."""
    fid = result["fidelity"]
    parts = [f"<h1>{html.escape(title)}</h1>",
             (f"<p>Rows: real {result['rows']['real']}, synthetic {result['rows']['synthetic']}, holdout "
             f"{result['rows']['holdout'] or 'none'}.</p>"),
             _fit_line(result.get("model", {}).get("fit", {})),
             "<h2>Fidelity</h2>",
             _table([("overall", fid["overall"]), ("column shapes", fid["column_shape_score"]),
                     ("pair trends", fid["pair_trend_score"])], ("score (1 = identical)", "value")),
             "<h3>Column shapes</h3>",
             _table([(c, types[c], v) for c, v in fid["column_shapes"].items()], ("column", "type", "similarity")),
             _column_plots(real, synth, types), "<h3>Pair trends</h3>", _correlation_plot(real, synth, types)]
    worst = sorted(fid["pair_trends"].items(), key=lambda kv: kv[1])[:10]
    if worst:
        parts += ["<p>Least similar pairs:</p>", _table(worst, ("pair", "similarity"))]
    parts.append("<h2>Utility (machine-learning efficacy on the real holdout)</h2>")
    if result["utility"]:
        rows = []
        for target, u in result["utility"].items():
            for model in u["real"]:
                rows.append((target, u["metric"], model, u["real"][model], u["synthetic"][model]))
        parts.append(_table(rows, ("target", "metric", "model", "trained on real", "trained on synthetic")))
    else:
        parts.append("<p>Not measured: give a holdout table and one or more targets.</p>")
    parts += ["<h2>Privacy</h2>", _table(list(result["privacy"].items()), ("measure", "value")),
              ("<p>DCR is the distance from a row to its closest training row (numbers scaled to the training "
              "range, categories one-hot). Synthetic rows as far from the training rows as unseen holdout "
              "rows (dcr_ratio near or above 1) and no exact copies are the safe pattern.</p>")]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
             "margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
