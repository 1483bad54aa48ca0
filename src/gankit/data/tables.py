"""Tables: reading CSV files into pandas and deciding each column's type.

Column types are ``continuous`` (real numbers), ``integer`` (whole numbers over a range), ``categorical``
(a fixed set of values), ``boolean`` (two values such as true/false or yes/no) and ``datetime``. Missing
values are allowed in every type. Problems a user can fix (an empty file, one row, a constant or
all-missing column, a file that is not CSV) are :class:`~gankit.errors.UserError`\\ s naming the file and
column.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from gankit.errors import UserError

KINDS = ("continuous", "integer", "categorical", "boolean", "datetime")
NUMERIC_KINDS = ("continuous", "integer", "datetime")  # modelled by mode-specific normalisation
DISCRETE_KINDS = ("categorical", "boolean")  # one-hot, and eligible for the conditional vector

# Numbers with at most this many distinct values are taken as categories (codes such as 1..5 ratings).
MAX_CODE_VALUES = 10
# An inferred categorical column with more distinct values than this and than half its rows is refused.
MAX_CATEGORIES = 50
_BOOLEAN_WORDS = ({"true", "false"}, {"yes", "no"}, {"t", "f"}, {"y", "n"})
_ENCODINGS = ("utf-8-sig", "utf-16", "cp1252", "latin-1")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV (or TSV) file, trying UTF-8 (with or without a byte-order mark), UTF-16 and Latin-1."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        raise UserError(f"{path}: a folder, expected a CSV file")
    raw = path.read_bytes()
    if not raw.strip():
        raise UserError(f"{path}: the file is empty")
    if raw[:4] in (b"PK\x03\x04", b"\x89PNG", b"%PDF") or raw[:2] == b"\x1f\x8b" or raw[:6] == b"\x93NUMPY":
        raise UserError(f"{path}: not a CSV file (it looks like a binary file: zip/xlsx, image, PDF, gzip or npy)")
    text = None
    for enc in _ENCODINGS:
        if enc == "utf-16" and not raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            continue
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    if text is None or "\x00" in text:
        raise UserError(f"{path}: not a CSV file (binary content)")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else _sniff_separator(text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = pd.read_csv(io.StringIO(text), sep=sep, engine="c", index_col=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable CSV file ({first})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.shape[1] == 0 or len(df) == 0:
        raise UserError(f"{path}: no data rows (only a header or nothing)")
    df.attrs["source"] = str(path)  # names the file in later errors
    return df


def _sniff_separator(text: str) -> str:
    """The field separator of the first lines: comma unless semicolons, tabs or bars fit better."""
    import csv

    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _boolean_like(values: pd.Series) -> bool:
    if values.dtype == bool:
        return True
    uniq = values.unique()
    if len(uniq) != 2:
        return False
    if values.dtype.kind in "iuf":
        return {float(u) for u in uniq} == {0.0, 1.0}
    words = {str(u).strip().lower() for u in uniq}
    return any(words == w for w in _BOOLEAN_WORDS)


def _parse_datetimes(values: pd.Series) -> pd.Series | None:
    """The values as datetimes if (nearly) all of them parse as dates, else None."""
    if values.dtype.kind == "M":
        return values
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return None
    sample = values.astype(str).head(200)
    if sample.str.fullmatch(r"[+-]?\d+(\.\d*)?").any():  # plain numbers are not dates
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        except (ValueError, TypeError):
            return None
    return parsed if parsed.notna().mean() >= 0.95 else None


def infer_kind(values: pd.Series) -> str:
    """The type of one column from its non-missing values (see the module docstring)."""
    values = values.dropna()
    if _boolean_like(values):
        return "boolean"
    if values.dtype.kind == "M" or _parse_datetimes(values) is not None:
        return "datetime"
    if values.dtype.kind in "iuf":
        x = values.to_numpy(dtype=np.float64)
        integral = bool(np.all(np.isfinite(x)) and np.all(x == np.round(x)))
        if integral and values.nunique() <= MAX_CODE_VALUES:
            return "categorical"
        return "integer" if integral else "continuous"
    return "categorical"


def infer_types(df: pd.DataFrame, discrete_columns: list[str] | None = None,
                column_types: dict[str, str] | None = None, name: str = "table") -> dict[str, str]:
    """Each column's kind. ``discrete_columns`` (the ctgan argument) forces categorical; ``column_types``
    forces any kind. Also checks the table is usable (see :func:`validate`)."""
    name = df.attrs.get("source", name) if isinstance(df, pd.DataFrame) else name
    validate(df, name)
    forced = dict(column_types or {})
    for col in discrete_columns or []:
        forced.setdefault(col, "categorical")
    for col, kind in forced.items():
        if col not in df.columns:
            raise UserError(f"{name}: no column '{col}' (columns: {', '.join(map(str, df.columns))})")
        if kind not in KINDS:
            raise UserError(f"{name}: column '{col}': unknown type '{kind}'; choose from {', '.join(KINDS)}")
    types = {}
    for col in df.columns:
        kind = forced.get(col) or infer_kind(df[col])
        distinct, present = df[col].nunique(), int(df[col].notna().sum())
        if col not in forced and kind == "categorical" and distinct > max(MAX_CATEGORIES, present // 2):
            raise UserError(f"{name}: column '{col}' has {distinct} distinct values in {present} rows (an "
                            "identifier or free text?); drop it, or force it with discrete_columns/--discrete")
        if kind in ("continuous", "integer") and df[col].dropna().dtype.kind not in "iufb":
            numeric = pd.to_numeric(df[col].dropna(), errors="coerce")
            if numeric.isna().any():
                raise UserError(f"{name}: column '{col}' is declared {kind} but holds non-numeric values "
                                f"such as {df[col].dropna()[numeric.isna()].iloc[0]!r}")
        if kind == "datetime" and _parse_datetimes(df[col].dropna()) is None:
            raise UserError(f"{name}: column '{col}' is declared datetime but its values do not parse as dates")
        types[str(col)] = kind
    return types


def validate(df: pd.DataFrame, name: str = "table") -> None:
    """Refuse tables a GAN cannot learn from, naming the problem: too few rows, constant or empty columns."""
    if not isinstance(df, pd.DataFrame):
        raise UserError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    if df.shape[1] == 0:
        raise UserError(f"{name}: the table has no columns")
    if len(df) < 2:
        raise UserError(f"{name}: the table has {len(df)} row(s); at least 2 are needed to learn anything")
    if df.columns.duplicated().any():
        raise UserError(f"{name}: duplicate column name '{df.columns[df.columns.duplicated()][0]}'")
    for col in df.columns:
        values = df[col]
        if values.isna().all():
            raise UserError(f"{name}: column '{col}' is entirely missing; drop it")
        if values.nunique(dropna=False) == 1:
            raise UserError(f"{name}: column '{col}' is constant ({values.iloc[0]!r}); drop it, there is "
                            "nothing to learn")


def load_table(path: str | Path, discrete_columns: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a CSV file and infer its column types."""
    df = read_csv(path)
    return df, infer_types(df, discrete_columns, name=str(path))
