"""Reversible encoding of a table into the vectors a tabular GAN learns (Xu et al., 2019, "CTGAN").

* Numbers (continuous, integer, datetime as seconds) get **mode-specific normalisation**: a Bayesian
  Gaussian mixture per column (scikit-learn) finds its modes; a value becomes a one-hot mode ``beta`` and
  a scalar ``alpha = (x - mu_k) / (4 sigma_k)`` in [-1, 1] within its mode.
* Categories and booleans become one-hot vectors; a missing category is one more category.
* A number column with missing values gets a two-way one-hot missing indicator, so gaps are generated
  at the real rate.

The inverse maps generated vectors back to a DataFrame in the original types, clipping numbers to the
range seen in training, rounding integers and keeping the number of decimals the data had. The whole
state is JSON (:meth:`TableTransformer.to_dict`), so a saved model needs no pickle.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gankit.data.tables import DISCRETE_KINDS
from gankit.errors import UserError

_MIN_WEIGHT = 0.005  # mixture components lighter than this are dropped (as in CTGAN)
_MAX_FIT_ROWS = 10_000  # rows used to fit a column's mixture; more rarely moves the modes


@dataclass(frozen=True)
class Span:
    """A slice of the encoded vector. ``act`` is ``tanh`` (alpha) or ``softmax`` (a one-hot group)."""

    start: int
    width: int
    act: str
    column: str
    role: str  # alpha | mode | missing | category


def _py(v: Any) -> Any:
    """A JSON-able Python scalar (None for missing)."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _decimals(x: np.ndarray) -> int | None:
    """How many decimals the values are written with (None if more than 6)."""
    for d in range(7):
        if np.allclose(x, np.round(x, d), rtol=0, atol=1e-9 * max(1.0, float(np.abs(x).max()))):
            return d
    return None


def _numeric_values(values: pd.Series, kind: str) -> np.ndarray:
    """Numbers as float64 (datetimes as seconds since 1970), NaN where missing."""
    if kind == "datetime":
        if values.dtype.kind == "M":
            parsed = values
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert(None)
        ns = parsed.astype("datetime64[ns]").astype("int64").to_numpy().astype(np.float64)
        return np.where(parsed.isna().to_numpy(), np.nan, ns / 1e9)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def _fit_modes(values: list[np.ndarray], max_modes: int, seed: int) -> list[tuple[list[float], list[float], list[float]]]:
    """Weights, means and standard deviations of each column's significant mixture components (all
    columns fitted together, :mod:`gankit.data.mixture`)."""
    from gankit.data.mixture import fit_mixtures

    rng = np.random.default_rng(seed)
    scaled, scales = [], []
    for x in values:
        centre, scale = float(np.mean(x)), float(np.std(x)) or 1.0
        z = (x - centre) / scale
        if len(z) > _MAX_FIT_ROWS:
            z = rng.choice(z, _MAX_FIT_ROWS, replace=False)
        scaled.append(z)
        scales.append((centre, scale))
    varied = [i for i, x in enumerate(values) if len(np.unique(x)) > 1]
    fits = dict(zip(varied, fit_mixtures([scaled[i] for i in varied], max_modes, seed)))
    out = []
    for i, x in enumerate(values):
        if i not in fits:
            out.append(([1.0], [float(x[0])], [1.0]))
            continue
        weights, means, variances = fits[i]
        centre, scale = scales[i]
        keep = weights > _MIN_WEIGHT
        if not keep.any():
            keep = weights == weights.max()
        w = weights[keep] / weights[keep].sum()
        mu = means[keep] * scale + centre
        sd = np.maximum(np.sqrt(variances[keep]) * scale, 1e-6 * scale)
        out.append((w.tolist(), mu.tolist(), sd.tolist()))
    return out


def _column_spec(name: str, kind: str, values: pd.Series, numeric: Any = None) -> dict[str, Any]:
    """A column's description; numeric columns need ``numeric``: (their values as from :func:`_numeric_values`,
    the (weights, means, stds) of their mixture)."""
    if kind in DISCRETE_KINDS:
        present = values.dropna()
        cats = sorted({_py(v) for v in pd.unique(present)}, key=lambda v: (str(type(v)), v))
        if present.dtype.kind == "f" and all(float(c).is_integer() for c in cats):
            cats = [int(c) for c in cats]
        if values.isna().any():
            cats.append(None)
        dtype = "bool" if present.dtype == bool else "number" if present.dtype.kind in "iuf" else "str"
        return {"name": name, "kind": kind, "categories": cats, "dtype": dtype}
    x, (w, mu, sd) = numeric
    ok = ~np.isnan(x)
    xs = x[ok]
    spec = {"name": name, "kind": kind, "weights": w, "means": mu, "stds": sd,
            "min": float(xs.min()), "max": float(xs.max()), "missing": bool((~ok).any()),
            "fill": float(np.median(xs))}
    if kind == "continuous":
        spec["decimals"] = _decimals(xs)
    if kind == "datetime":
        spec["date_only"] = bool(np.all(np.mod(xs, 86400) == 0))
    return spec


class TableTransformer:
    """Encode a DataFrame to float vectors and back. Build with :meth:`fit` or :meth:`from_dict`."""

    def __init__(self, columns: list[dict[str, Any]]):
        self.columns = columns
        self.spans: list[Span] = []
        pos = 0
        for c in columns:
            if c["kind"] in DISCRETE_KINDS:
                parts = [("softmax", len(c["categories"]), "category")]
            else:
                parts = [("tanh", 1, "alpha"), ("softmax", len(c["means"]), "mode")]
                if c["missing"]:
                    parts.append(("softmax", 2, "missing"))
            for act, width, role in parts:
                self.spans.append(Span(pos, width, act, c["name"], role))
                pos += width
        self.output_dim = pos

    @classmethod
    def fit(cls, df: pd.DataFrame, types: dict[str, str], max_modes: int = 10, seed: int = 0) -> TableTransformer:
        values = {}
        for col in df.columns:
            kind = types[str(col)]
            if kind not in DISCRETE_KINDS:
                x = _numeric_values(df[col], kind)
                if np.isinf(x).any():
                    raise UserError(f"column '{col}' has infinite values; replace them (or leave the cells empty)")
                if np.isnan(x).all():
                    raise UserError(f"column '{col}' has no usable {kind} values")
                values[str(col)] = x
        modes = _fit_modes([x[~np.isnan(x)] for x in values.values()], max_modes, seed)
        numeric = {col: (x, m) for (col, x), m in zip(values.items(), modes)}
        return cls([_column_spec(str(col), types[str(col)], df[col], numeric.get(str(col))) for col in df.columns])

    # -- description -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    def column(self, name: str) -> dict[str, Any]:
        for c in self.columns:
            if c["name"] == name:
                return c
        raise UserError(f"no column '{name}' (columns: {', '.join(self.names)})")

    def discrete_spans(self) -> list[Span]:
        """The one-hot groups of categorical and boolean columns: what the conditional vector picks from."""
        return [s for s in self.spans if s.role == "category"]

    def category_index(self, name: str, value: Any) -> int:
        """Index of ``value`` among the categories of column ``name`` (strings match by their text)."""
        c = self.column(name)
        if c["kind"] not in DISCRETE_KINDS:
            raise UserError(f"column '{name}' is {c['kind']}; conditions apply to categorical and boolean "
                            "columns only")
        cats = c["categories"]
        for i, cat in enumerate(cats):
            if cat == value and type(cat) is type(value):
                return i
        text = "" if value is None else str(value).strip()
        for i, cat in enumerate(cats):
            if (cat is None and text.lower() in ("", "nan", "none")) or (cat is not None and str(cat) == text):
                return i
        if c["kind"] == "boolean" and text.lower() in ("true", "false", "1", "0"):
            for i, cat in enumerate(cats):
                if cat is not None and str(cat).lower() in (("true", "1", "1.0") if text.lower() in ("true", "1")
                                                            else ("false", "0", "0.0")):
                    return i
        shown = ", ".join(str(v) for v in cats[:20]) + (" ..." if len(cats) > 20 else "")
        raise UserError(f"column '{name}' has no value {value!r}; known values: {shown}")

    # -- encoding --------------------------------------------------------------------------------
    def transform(self, df: pd.DataFrame, seed: int = 0) -> np.ndarray:
        """The encoded table, (rows, output_dim) float32. Modes are drawn from each value's posterior."""
        rng = np.random.default_rng(seed)
        n = len(df)
        out = np.zeros((n, self.output_dim), dtype=np.float32)
        spans = iter(self.spans)
        for c in self.columns:
            if c["name"] not in df.columns:
                raise UserError(f"the table has no column '{c['name']}' that the model was trained on")
            values = df[c["name"]]
            if c["kind"] in DISCRETE_KINDS:
                s = next(spans)
                # each distinct value looked up once (in order of appearance, so an unseen value's error
                # names the first one), then spread to the rows
                codes, distinct = pd.factorize(values, use_na_sentinel=False)
                idx = np.array([self._code(c, v) for v in distinct], dtype=np.int64)[codes]
                out[np.arange(n), s.start + idx] = 1.0
                continue
            s_alpha, s_mode = next(spans), next(spans)
            x = _numeric_values(values, c["kind"])
            miss = np.isnan(x)
            x = np.where(miss, c["fill"], x)
            mu, sd, w = np.array(c["means"]), np.array(c["stds"]), np.array(c["weights"])
            logp = np.log(w)[None] - np.log(sd)[None] - 0.5 * ((x[:, None] - mu[None]) / sd[None]) ** 2
            p = np.exp(logp - logp.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            k = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(max=len(mu) - 1)
            out[:, s_alpha.start] = np.clip((x - mu[k]) / (4 * sd[k]), -0.99, 0.99)
            out[np.arange(n), s_mode.start + k] = 1.0
            if c["missing"]:
                s_miss = next(spans)
                out[np.arange(n), s_miss.start + miss.astype(np.int64)] = 1.0
        return out

    @staticmethod
    def _code(c: dict[str, Any], v: Any) -> int:
        v = _py(v)
        cats = c["categories"]
        if v is None:
            if None in cats:
                return cats.index(None)
            raise UserError(f"column '{c['name']}' has a missing value, which the model never saw")
        if isinstance(v, float) and v.is_integer() and int(v) in cats:
            v = int(v)
        try:
            return cats.index(v)
        except ValueError:
            raise UserError(f"column '{c['name']}': value {v!r} was not seen in training") from None

    # -- decoding --------------------------------------------------------------------------------
    def inverse_transform(self, data: np.ndarray) -> pd.DataFrame:
        """Back to a DataFrame with the training columns, types, ranges and missing rates."""
        data = np.asarray(data, dtype=np.float64)
        cols: dict[str, pd.Series] = {}
        spans = iter(self.spans)
        for c in self.columns:
            if c["kind"] in DISCRETE_KINDS:
                s = next(spans)
                idx = data[:, s.start : s.start + s.width].argmax(axis=1)
                cols[c["name"]] = _discrete_series(c, idx)
                continue
            s_alpha, s_mode = next(spans), next(spans)
            alpha = np.clip(data[:, s_alpha.start], -1, 1)
            k = data[:, s_mode.start : s_mode.start + s_mode.width].argmax(axis=1)
            x = alpha * 4 * np.array(c["stds"])[k] + np.array(c["means"])[k]
            x = np.clip(x, c["min"], c["max"])
            miss = np.zeros(len(x), dtype=bool)
            if c["missing"]:
                s_miss = next(spans)
                miss = data[:, s_miss.start + 1] > data[:, s_miss.start]
            cols[c["name"]] = _numeric_series(c, x, miss)
        return pd.DataFrame(cols)

    # -- saving ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableTransformer:
        return cls(d["columns"])


def _discrete_series(c: dict[str, Any], idx: np.ndarray) -> pd.Series:
    cats = c["categories"]
    # None (missing) is always the last category; indexing arrays keeps this per column, not per value
    has_missing = cats[-1] is None and bool((idx == len(cats) - 1).any())
    if c["dtype"] == "bool" and not has_missing:
        return pd.Series(np.array(cats, dtype=bool)[idx])
    if c["dtype"] == "number" and not has_missing:
        present = cats[:-1] if cats[-1] is None else cats
        values = np.array(present)
        if values.dtype.kind not in "iuf" or (values.dtype.kind == "f" and any(
                isinstance(v, int) and abs(v) > 2**53 for v in present)):
            return pd.Series([present[i] for i in idx])  # integers a float64 would round: kept exact, as pandas does
        return pd.Series(values[idx])
    table = np.empty(len(cats), dtype=object)
    table[:] = [np.nan if v is None else v for v in cats]
    return pd.Series(table[idx], dtype=object)


def _numeric_series(c: dict[str, Any], x: np.ndarray, miss: np.ndarray) -> pd.Series:
    kind = c["kind"]
    if kind == "integer":
        s = pd.Series(np.round(x).astype(np.int64))
        return s.astype("Int64").mask(miss) if miss.any() else s
    if kind == "datetime":
        seconds = np.round(x / 86400) * 86400 if c.get("date_only") else np.round(x)
        s = pd.Series(pd.to_datetime(seconds.astype(np.int64), unit="s"))
        return s.mask(miss)
    if c.get("decimals") is not None:
        x = np.round(x, c["decimals"])
    return pd.Series(np.where(miss, np.nan, x))
