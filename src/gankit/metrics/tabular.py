"""How good is a synthetic table? Fidelity, utility and privacy against the real one.

* **Fidelity** (the SDMetrics quality-report recipe): per column, 1 - Kolmogorov-Smirnov statistic for
  numbers and 1 - total-variation distance for categories ("shape"); per pair of columns, 1 - |r_real -
  r_synth| / 2 for two numbers and 1 - total variation of the joint frequencies otherwise, numbers binned
  at the real deciles ("trend"); overall = mean of the two averages. All in [0, 1], higher is better.
* **Utility** (machine-learning efficacy): scikit-learn models trained on synthetic rows and on real
  training rows, each tested on a real holdout; macro-F1 for a categorical target, R^2 for a number.
* **Privacy**: distance to the closest training record (DCR) of synthetic rows against that of holdout
  rows (real rows the model never saw: the yardstick of "as close as new real data"), and the share of
  synthetic rows that are exact copies of training rows.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from gankit.data.tables import DISCRETE_KINDS
from gankit.errors import UserError

_MISSING = "<missing>"


def _numbers(s: pd.Series, kind: str) -> np.ndarray:
    if kind == "datetime":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = pd.to_datetime(s, errors="coerce", format="mixed") if s.dtype.kind != "M" else s
        return d.astype("datetime64[ns]").astype("int64").to_numpy().astype(float) / 1e9 * \
            np.where(d.isna(), np.nan, 1.0)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def _labels(s: pd.Series) -> pd.Series:
    """Categories as text, missing as its own category (so 1 and 1.0, True and 'True' match)."""
    def text(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v)

    return s.map(lambda v: _MISSING if pd.isna(v) else text(v)).astype(str)


def _tv_complement(a: pd.Series, b: pd.Series) -> float:
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    keys = pa.index.union(pb.index)
    return float(1.0 - 0.5 * np.abs(pa.reindex(keys, fill_value=0) - pb.reindex(keys, fill_value=0)).sum())


def check_columns(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str], name: str = "synthetic") -> None:
    missing = [c for c in types if c not in real.columns or c not in synth.columns]
    if missing:
        raise UserError(f"{name}: column '{missing[0]}' of the model is missing from the compared tables")


def column_shapes(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str]) -> dict[str, float]:
    out = {}
    for col, kind in types.items():
        if kind in DISCRETE_KINDS:
            out[col] = _tv_complement(_labels(real[col]), _labels(synth[col]))
        else:
            a, b = _numbers(real[col], kind), _numbers(synth[col], kind)
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            out[col] = float(1.0 - stats.ks_2samp(a, b).statistic) if len(a) and len(b) else 0.0
    return out


def _binned(real: pd.Series, synth: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """Both columns as category labels: categories as they are, numbers by the real data's deciles."""
    if kind in DISCRETE_KINDS:
        return _labels(real), _labels(synth)
    a, b = _numbers(real, kind), _numbers(synth, kind)
    edges = np.unique(np.nanquantile(a, np.linspace(0, 1, 11)[1:-1])) if np.isfinite(a).any() else np.array([])

    def cut(x: np.ndarray) -> pd.Series:
        return pd.Series(np.where(np.isnan(x), -1, np.searchsorted(edges, x, side="right"))).astype(str)

    return cut(a), cut(b)


def pair_trends(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str], max_pairs: int = 300,
                seed: int = 0) -> dict[str, float]:
    """Pairwise trend similarity; with many columns a random subset of ``max_pairs`` pairs is scored."""
    pairs = list(itertools.combinations(types, 2))
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), max_pairs, replace=False))]
    binned = {c: _binned(real[c], synth[c], k) for c, k in types.items()}
    out = {}
    for a, b in pairs:
        ka, kb = types[a], types[b]
        if ka not in DISCRETE_KINDS and kb not in DISCRETE_KINDS:
            r = _corr(_numbers(real[a], ka), _numbers(real[b], kb))
            s = _corr(_numbers(synth[a], ka), _numbers(synth[b], kb))
            out[f"{a} | {b}"] = float(1.0 - abs(r - s) / 2.0)
        else:
            ra, sa = binned[a]
            rb, sb = binned[b]
            out[f"{a} | {b}"] = _tv_complement(ra + "\x1f" + rb, sa + "\x1f" + sb)
    return out


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return 0.0
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def fidelity(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str]) -> dict[str, Any]:
    check_columns(real, synth, types)
    shapes = column_shapes(real, synth, types)
    trends = pair_trends(real, synth, types)
    shape_score = float(np.mean(list(shapes.values())))
    trend_score = float(np.mean(list(trends.values()))) if trends else shape_score
    return {"column_shapes": shapes, "pair_trends": trends, "column_shape_score": shape_score,
            "pair_trend_score": trend_score, "overall": (shape_score + trend_score) / 2.0}


# ---------------------------------------------------------------------------------------------
# utility


def _design(types: dict[str, str], exclude: str):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = [c for c, k in types.items() if c != exclude and k not in DISCRETE_KINDS]
    cat = [c for c, k in types.items() if c != exclude and k in DISCRETE_KINDS]
    parts = []
    if num:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                           StandardScaler()), num))
    if cat:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), cat))
    return ColumnTransformer(parts), num, cat


def _frame(df: pd.DataFrame, types: dict[str, str], num: list[str], cat: list[str]) -> pd.DataFrame:
    out = {c: _numbers(df[c], types[c]) for c in num}
    out.update({c: _labels(df[c]).to_numpy() for c in cat})
    return pd.DataFrame(out, index=df.index)


def ml_efficacy(train: pd.DataFrame, synth: pd.DataFrame, holdout: pd.DataFrame, types: dict[str, str],
                target: str, seed: int = 0) -> dict[str, Any]:
    """Scores on ``holdout`` of models trained on ``synth`` versus on the real ``train`` rows."""
    from sklearn.base import clone
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import f1_score, r2_score
    from sklearn.pipeline import make_pipeline

    if target not in types:
        raise UserError(f"target '{target}' is not a column of the model ({', '.join(types)})")
    classify = types[target] in DISCRETE_KINDS
    design, num, cat = _design(types, target)
    models = ({"logistic_regression": LogisticRegression(max_iter=1000),
               "random_forest": RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)}
              if classify else {"ridge": Ridge(), "random_forest":
                                RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1)})

    def xy(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        df = df[df[target].notna()]
        y = _labels(df[target]).to_numpy() if classify else _numbers(df[target], types[target])
        return _frame(df, types, num, cat), y

    x_test, y_test = xy(holdout)
    if len(y_test) == 0:
        raise UserError(f"the holdout has no rows with a value in target '{target}'")
    scores: dict[str, dict[str, float]] = {"real": {}, "synthetic": {}}
    for source, df in (("real", train), ("synthetic", synth)):
        x, y = xy(df)
        for name, model in models.items():
            if len(y) == 0 or (classify and len(np.unique(y)) < 2):
                model = DummyClassifier() if classify else DummyRegressor()
            pipe = make_pipeline(clone(design), clone(model))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if len(y) == 0:
                    y = np.array([_MISSING] if classify else [0.0])
                    x = x_test.iloc[:1]
                pipe.fit(x, y)
                pred = pipe.predict(x_test)
            score = f1_score(y_test, pred, average="macro") if classify else r2_score(y_test, pred)
            scores[source][name] = float(score)
    real_mean = float(np.mean(list(scores["real"].values())))
    synth_mean = float(np.mean(list(scores["synthetic"].values())))
    return {"target": target, "task": "classification" if classify else "regression",
            "metric": "macro_f1" if classify else "r2", **scores, "real_mean": real_mean,
            "synthetic_mean": synth_mean}


# ---------------------------------------------------------------------------------------------
# privacy


def _points(df: pd.DataFrame, types: dict[str, str], ref: pd.DataFrame) -> np.ndarray:
    """Rows as vectors: numbers scaled to the training range (missing -> -1), categories one-hot."""
    cols = []
    for c, k in types.items():
        if k in DISCRETE_KINDS:
            levels = sorted(_labels(ref[c]).unique())
            lab = _labels(df[c]).to_numpy()
            cols.append((lab[:, None] == np.array(levels)[None, :]).astype(float))
        else:
            r = _numbers(ref[c], k)
            lo, hi = np.nanmin(r), np.nanmax(r)
            x = (_numbers(df[c], k) - lo) / ((hi - lo) or 1.0)
            cols.append(np.where(np.isnan(x), -1.0, x)[:, None])
    return np.hstack(cols)


def privacy(train: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str], holdout: pd.DataFrame | None = None,
            max_rows: int = 3000, seed: int = 0) -> dict[str, Any]:
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)

    def sub(df: pd.DataFrame) -> pd.DataFrame:
        return df.iloc[np.sort(rng.choice(len(df), max_rows, replace=False))] if len(df) > max_rows else df

    cols = list(types)
    train_keys = set(map(tuple, train[cols].pipe(lambda d: d.apply(_labels)).to_numpy()))
    synth_keys = map(tuple, synth[cols].pipe(lambda d: d.apply(_labels)).to_numpy())
    out: dict[str, Any] = {"exact_copies_share": float(np.mean([k in train_keys for k in synth_keys]))}
    nn = NearestNeighbors(n_neighbors=1).fit(_points(sub(train), types, train))
    dcr_s = nn.kneighbors(_points(sub(synth), types, train))[0][:, 0]
    out.update({"dcr_synthetic_median": float(np.median(dcr_s)), "dcr_synthetic_p5": float(np.quantile(dcr_s, 0.05))})
    if holdout is not None and len(holdout):
        dcr_h = nn.kneighbors(_points(sub(holdout), types, train))[0][:, 0]
        hold_keys = map(tuple, holdout[cols].pipe(lambda d: d.apply(_labels)).to_numpy())
        out.update({"dcr_holdout_median": float(np.median(dcr_h)), "dcr_holdout_p5": float(np.quantile(dcr_h, 0.05)),
                    "holdout_exact_copies_share": float(np.mean([k in train_keys for k in hold_keys])),
                    # > 1: synthetic rows sit further from the training rows than unseen real rows do
                    "dcr_ratio": float(np.median(dcr_s) / max(np.median(dcr_h), 1e-12))})
    return out


def evaluate(real: pd.DataFrame, synth: pd.DataFrame, types: dict[str, str], holdout: pd.DataFrame | None = None,
             targets: list[str] | tuple[str, ...] = (), seed: int = 0) -> dict[str, Any]:
    """Fidelity, utility (per target; needs a holdout) and privacy of ``synth`` against ``real``."""
    out: dict[str, Any] = {"rows": {"real": len(real), "synthetic": len(synth),
                                    "holdout": None if holdout is None else len(holdout)},
                           "fidelity": fidelity(real, synth, types)}
    if targets and holdout is None:
        raise UserError("machine-learning efficacy needs a real holdout table (--holdout)")
    if holdout is not None:
        check_columns(real, holdout, types, "holdout")
    out["utility"] = {t: ml_efficacy(real, synth, holdout, types, t, seed) for t in targets}
    out["privacy"] = privacy(real, synth, types, holdout, seed=seed)
    return out
