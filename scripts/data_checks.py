"""What Preprocess decides about a user's table: the target's rows, which columns are features, what looks wrong.

Three kinds of finding (documented in scripts/README.md):
- fatal: a ValueError with one sentence naming the input and the fix (no target column, a text or
  constant target, too few rows, ...);
- repaired, with a counted warning: rows without a usable target dropped, infinite feature values
  treated as missing, numbers formatted as text read as numbers, far-off target values dropped;
- reported: columns left out and why, suspected outliers, suspected leakage.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import (
    by_category, distinct_values_mapped, is_missing, is_number_column, is_numeric_text, numeric_values,
    plain_number_text,
)

DATA_REPORT_FILE = "data-report.json"  # what Preprocess writes and Evaluate carries along
ID_WORDS = {"id", "pid", "uid", "uuid", "guid", "key", "index", "idx"}
MIN_ROWS_FOR_ID_GUESS = 20
MAX_DISTINCT_TEXT_SHARE = 0.5  # a text column with more distinct values than this share of rows is free text
MIN_DISTINCT_FOR_FREE_TEXT = 20
OUTLIER_REPORT_Z = 6.0  # robust z-scores on the scale the models fit (log for non-negative targets)
OUTLIER_DROP_Z = 15.0
MAX_DROPPED_OUTLIER_SHARE = 0.01  # more far-off values than this is a heavy tail, not a few typos
LEAKAGE_R2 = 0.95
LEAKAGE_PAIR_R2 = 0.99
LEAKAGE_PAIR_CANDIDATES = 40
# A column that reproduces the target does so in any few hundred thousand rows: larger splits are
# scanned on this many of their rows, evenly spaced (every k-th, so sorted input is covered end to end).
LEAKAGE_SCAN_ROWS = 200_000


def _close_matches(name: str, columns) -> str:
    by_lower = {str(column).lower(): column for column in columns}
    matches = [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]
    return f" (closest: {', '.join(map(repr, matches))})" if matches else ""


def resolve_column(name: str, columns, parameter: str, where: str) -> str:
    """The header's name for what the user typed: exact, else after trimming, else ignoring case."""
    wanted = name.strip()
    if wanted in columns:
        return wanted
    folded = [column for column in columns if column.lower() == wanted.lower()]
    if len(folded) == 1:
        return folded[0]
    raise ValueError(
        f"{parameter} {name!r} is not a column of {where}{_close_matches(wanted, columns)}; "
        f"set {parameter} to a name from the header"
    )


def resolve_columns(names: list[str], columns, parameter: str, where: str) -> list[str]:
    return [resolve_column(name, columns, parameter, where) for name in names]


def _missing(column: pd.Series) -> np.ndarray:
    if is_number_column(column):
        return column.isna().to_numpy()
    return distinct_values_mapped(column.to_numpy(dtype=object),
                                  lambda value: is_missing(value.strip() if isinstance(value, str) else value), bool)


def _fitting_scale(values: np.ndarray) -> np.ndarray:
    """The scale the models fit the target in (features.fit_feature_spec): log1p when nothing is negative."""
    return np.log1p(values) if np.all(values >= 0) else values


def robust_centre_spread(values: np.ndarray) -> tuple[float, float]:
    """Median and a spread that ignores the tails: the scaled MAD, else the scaled IQR, else the standard deviation."""
    centre = float(np.median(values))
    spread = 1.4826 * np.median(np.abs(values - centre))
    if spread == 0:
        q75, q25 = np.percentile(values, [75, 25])
        spread = (q75 - q25) / 1.349
    if spread == 0:
        spread = np.std(values)
    return centre, float(spread)


@dataclass(frozen=True)
class TargetScale:
    """Where a target's usual values lie, on the scale the models fit (log1p when nothing is negative). Values
    farther than OUTLIER_DROP_Z robust z-scores are dropped when they are few (``drop_far_off``). Decided once on
    a table, then applied to each of its shards."""

    log: bool
    centre: float
    spread: float
    drop_far_off: bool

    @classmethod
    def of(cls, values: np.ndarray) -> "TargetScale":
        log = bool(np.all(values >= 0))
        undecided = cls(log, *robust_centre_spread(np.log1p(values) if log else values), drop_far_off=True)
        far_off = int((undecided.z(values) > OUTLIER_DROP_Z).sum())
        return dataclasses.replace(undecided, drop_far_off=far_off <= MAX_DROPPED_OUTLIER_SHARE * values.size)

    def z(self, values: np.ndarray) -> np.ndarray:
        fitted = np.log1p(values) if self.log else values
        return np.zeros_like(values) if self.spread == 0 else np.abs(fitted - self.centre) / self.spread


def format_number(value: float) -> str:
    """A number a person reads: thousands separators, at most four significant digits below 1,000."""
    if not np.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


class TargetRows:
    """The rows with a usable target, and what was dropped on the way, with reasons.

    Given the ``scale`` decided on the whole table, the rows are a shard's: the checks that only the whole
    table can answer (an empty or constant target) are left to whoever decided the scale."""

    def __init__(self, frame: pd.DataFrame, target: str, where: str, scale: TargetScale | None = None):
        deciding = scale is None
        column = frame[target]
        if isinstance(column.dtype, pd.CategoricalDtype):  # text: read as the numbers it may be formatted as
            column = column.astype(object)
        missing = _missing(column)
        if deciding and missing.all():
            raise ValueError(f"TargetColumn {target!r} is empty in every row of {where}; choose a column "
                             "that holds the values to predict")
        text_values = column[~missing]
        try:
            values = numeric_values(column, "")
        except ValueError:
            # The values numeric_values refused: neither numbers nor numbers formatted as text.
            not_numbers = text_values[pd.to_numeric(text_values.map(plain_number_text), errors="coerce").isna()]
            raise ValueError(
                f"TargetColumn {target!r} must hold numbers, but {len(not_numbers):,} of {len(text_values):,} "
                f"values in {where} are text (e.g. {not_numbers.iloc[0]!r}); choose a numeric column as "
                "TargetColumn or fix those values"
            ) from None
        infinite = ~missing & np.isnan(values)
        self.dropped = {"target missing": int(missing.sum()), "target infinite": int(infinite.sum())}
        usable = ~np.isnan(values)
        self.warnings: list[str] = []  # what a reviewer must look at
        self.notes: list[str] = []
        self.suspected_outliers: list[float] = []
        if deciding and usable.sum() and np.unique(values[usable]).size == 1:
            raise ValueError(
                f"TargetColumn {target!r} has the same value ({format_number(values[usable][0])}) in every row "
                f"of {where}; there is nothing to learn: choose a column that varies"
            )
        far_off = np.zeros_like(usable)
        self.scale = TargetScale.of(values[usable]) if deciding and usable.any() else scale
        if usable.any():
            z = np.zeros_like(values)
            z[usable] = self.scale.z(values[usable])
            far_off = usable & (z > OUTLIER_DROP_Z) if self.scale.drop_far_off else far_off
            unusual = usable & ~far_off & (z > OUTLIER_REPORT_Z)
            self.suspected_outliers = sorted(float(v) for v in values[unusual])
            if far_off.any() and (usable & ~far_off).any():
                self.warnings.append(
                    f"dropped {int(far_off.sum()):,} row(s) whose {target} is far outside the rest "
                    f"({', '.join(format_number(v) for v in sorted(values[far_off])[:5])}; typical range "
                    f"{format_number(np.percentile(values[usable & ~far_off], 1))} to "
                    f"{format_number(np.percentile(values[usable & ~far_off], 99))}): check them at the source"
                )
            if self.suspected_outliers:
                self.notes.append(
                    f"{len(self.suspected_outliers):,} row(s) have an unusual {target} (kept): "
                    + _values_with_counts(self.suspected_outliers))
        self.dropped["target far outside the rest"] = int(far_off.sum())
        kept = usable & ~far_off
        for reason in ("target missing", "target infinite"):
            if self.dropped[reason]:
                self.notes.append(f"dropped {self.dropped[reason]:,} row(s): {reason}")
        # Copying a large table costs seconds and its size again: only when rows go.
        self.frame = frame if kept.all() else frame.loc[kept].reset_index(drop=True)
        kept_values = values[kept]
        # Whole numbers stay whole in the split files ("215000", not "215000.0").
        whole = np.all(np.mod(kept_values, 1) == 0) and np.all(np.abs(kept_values) < 2 ** 53)
        self.frame[target] = kept_values.astype(np.int64) if whole else kept_values
        if deciding and self.frame[target].nunique() < 2:
            raise ValueError(f"TargetColumn {target!r} varies in no more than one row of {where}; supply rows "
                             "with different target values")


def _name_words(name: str) -> list[str]:
    return [word.lower() for word in re.split(r"[_\s.\-]+|(?<=[a-z])(?=[A-Z])", name) if word]


def plain_value(value):
    """A numpy scalar as the Python value it holds (JSON takes it, and a person reads 1.0, not np.float64(1.0))."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class ColumnFacts:
    """A column over every row of a table whose decisions are made on a sample of them: the rows, how many hold
    a value, the one value they all hold (None when they hold several) and the range of its numbers. A sample
    cannot tell these: a rare value may miss it, and a sample of 1, 2, ..., n is not contiguous."""

    rows: int
    present: int
    only_value: str | float | bool | None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, column: pd.Series) -> "ColumnFacts":
        present = int(column.count())
        low = high = None
        if is_number_column(column):
            smallest, largest = (column.min(), column.max()) if present else (None, None)
            only = [] if smallest is None else [smallest] if smallest == largest else [smallest, largest]
            low, high = (float(smallest), float(largest)) if present else (None, None)
        elif isinstance(column.dtype, pd.CategoricalDtype):
            only = column.cat.categories[np.flatnonzero(_category_counts(column))[:2]]
        else:
            only = pd.unique(column.dropna().to_numpy(dtype=object))[:2]
        return cls(len(column), present, plain_value(only[0]) if len(only) == 1 else None, low, high)

    @classmethod
    def merged(cls, shards: list["ColumnFacts"]) -> "ColumnFacts":
        holding = [facts for facts in shards if facts.present]
        only = {facts.only_value for facts in holding}
        lows = [facts.low for facts in holding if facts.low is not None]
        highs = [facts.high for facts in holding if facts.high is not None]
        return cls(sum(facts.rows for facts in shards), sum(facts.present for facts in holding),
                   only.pop() if len(only) == 1 else None, min(lows, default=None), max(highs, default=None))


def _is_id_like(name: str, column: pd.Series, numeric: bool, facts: ColumnFacts) -> bool:
    """A different value in every row, and for numbers whole ones that count up (1, 2, ..., n), run in order, or
    sit under an id's name. Gaps and range are the column's ``facts``: on a sample, the whole column's."""
    if len(column) < MIN_ROWS_FOR_ID_GUESS or facts.present != facts.rows:
        return False
    if not numeric:
        return distinct_count(column) == len(column)
    values = column.to_numpy(dtype=float)
    # Cheap tests first: most numeric columns hold fractions, or whole numbers over too short a range to differ
    # in every row; counting distinct values costs a hash of each.
    if not np.all(np.mod(values, 1) == 0) or np.ptp(values) < len(values) - 1 or \
            distinct_count(column) != len(column):
        return False
    steps = np.diff(values)
    contiguous = facts.high - facts.low == facts.rows - 1
    monotonic = bool(np.all(steps > 0) or np.all(steps < 0))
    words = _name_words(name)
    return contiguous or monotonic or bool(words and words[-1] in ID_WORDS)


def _category_counts(column: pd.Series) -> np.ndarray:
    """Rows per category of a categorical column (missing values not counted)."""
    codes = column.cat.codes.to_numpy()
    return np.bincount(codes[codes >= 0], minlength=len(column.cat.categories))


def distinct_count(column: pd.Series) -> int:
    """How many distinct values a column holds (missing not counted); a categorical's counted on its codes."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return int(np.count_nonzero(_category_counts(column)))
    return column.nunique()


def _numbers_in_text(column: pd.Series) -> np.ndarray | None:
    """The column's values as numbers when it is text that holds only numbers ('$1,234', '12%'), else None."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = pd.Series(column.cat.categories.to_numpy(dtype=object), name=column.name)
        if not is_numeric_text(categories):
            return None
        return by_category(column, numeric_values(categories, ""), np.nan)
    if column.dtype == object and is_numeric_text(column):
        return numeric_values(column, "")
    return None


def repair_numbers(frame: pd.DataFrame, target: str) -> list[str]:
    """Numbers formatted as text become numbers; infinite values become missing. In place; one finding per column."""
    findings = []
    for name in frame.columns:
        if name == target:
            continue
        column = frame[name]
        if (numbers := _numbers_in_text(column)) is not None:
            frame[name] = numbers
            findings.append(f"read column {name!r} as numbers (it holds numbers formatted as text, e.g. "
                            f"{column.dropna().iloc[0]!r})")
        elif pd.api.types.is_float_dtype(column):
            infinite = np.isinf(column.to_numpy())
            if infinite.any():
                frame.loc[infinite, name] = np.nan
                findings.append(f"treated {int(infinite.sum()):,} infinite value(s) in {name!r} as missing")
    return findings


def _values_with_counts(values: list[float], shown: int = 5) -> str:
    """Sorted values as a person reads them: each distinct value once, with its rows when it repeats."""
    distinct, counts = np.unique(values, return_counts=True)
    text = ", ".join(format_number(value) + (f" ({count:,} rows)" if count > 1 else "")
                     for value, count in zip(distinct[:shown], counts[:shown]))
    return text + (f" ... up to {format_number(distinct[-1])}" if len(distinct) > shown else "")


def leave_out_reasons(frame: pd.DataFrame, target: str, id_columns: list[str] | None,
                      exclude_columns: list[str], whole: dict[str, ColumnFacts] | None = None) -> dict[str, str]:
    """Columns that are not features, each with the reason; id-like ones are guessed unless IdColumns names them.
    When ``frame`` is a sample of a table, ``whole`` holds each column's facts over all of it."""
    reasons = {}
    for name in frame.columns:
        if name == target:
            continue
        column = frame[name]
        facts = whole[name] if whole else ColumnFacts.of(column)
        numeric = is_number_column(column)
        if name in exclude_columns:
            reasons[name] = "named in ExcludeColumns"
        elif id_columns is not None and name in id_columns:
            reasons[name] = "named in IdColumns"
        elif facts.present == 0:
            reasons[name] = "empty in every row"
        elif facts.only_value is not None and facts.present == facts.rows:
            reasons[name] = f"the same value in every row ({facts.only_value!r})"
        elif id_columns is None and _is_id_like(name, column, numeric, facts):
            reasons[name] = ("id-like: a different value in every row (IdColumns=none keeps it as a feature; "
                             "or name the columns that identify rows)")
        elif not numeric and (distinct := distinct_count(column)) > max(MIN_DISTINCT_FOR_FREE_TEXT,
                                                                        MAX_DISTINCT_TEXT_SHARE * column.count()):
            reasons[name] = f"too many distinct text values ({distinct:,} in {column.count():,} rows) to learn from"
    return reasons


def _binned_codes(train: pd.Series, other: pd.Series, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Group codes for a single-column predictor: quantile bins of a number, or the text itself."""
    if numeric:
        observed = train.dropna().to_numpy(dtype=float)
        edges = np.unique(np.quantile(observed, np.linspace(0, 1, 51))) if observed.size else np.array([])

        def codes(series):
            values = series.to_numpy(dtype=float)
            return np.where(np.isnan(values), -1, np.searchsorted(edges, values, side="right"))
        return codes(train), codes(other)
    if isinstance(train.dtype, pd.CategoricalDtype) and train.dtype == other.dtype:
        return train.cat.codes.to_numpy(), other.cat.codes.to_numpy()
    return train.astype(str).to_numpy(), other.astype(str).to_numpy()


def _held_out_r2(train_codes, train_target, other_codes, other_target) -> float:
    means = pd.Series(train_target).groupby(train_codes).mean()
    predicted = pd.Series(other_codes).map(means).fillna(float(np.mean(train_target))).to_numpy()
    total = float(np.sum((other_target - other_target.mean()) ** 2))
    return 0.0 if total == 0 else 1 - float(np.sum((other_target - predicted) ** 2)) / total


def _log_positive(column: pd.Series) -> np.ndarray | None:
    values = column.to_numpy(dtype=float)
    present = values[~np.isnan(values)]
    if present.size == 0 or np.any(present <= 0):
        return None
    return np.log(values)


def _pair_r2(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """R² of least squares of y on a, b and an intercept, over the rows where both are present.

    Solved on the centred 2x2 normal equations: a few dot products instead of a factorisation of the
    rows, which a thousand pairs of a million rows make worth it."""
    rows = ~(np.isnan(a) | np.isnan(b))
    if rows.sum() < 10:
        return 0.0
    if not rows.all():
        y, a, b = y[rows], a[rows], b[rows]
    y, a, b = y - y.mean(), a - a.mean(), b - b.mean()
    total = float(y @ y)
    if total == 0:
        return 0.0
    cross = np.array([a @ y, b @ y])
    coefficients = np.linalg.lstsq(np.array([[a @ a, a @ b], [a @ b, b @ b]]), cross, rcond=None)[0]
    return float(coefficients @ cross) / total


def evenly_spaced(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """``rows`` rows of ``frame``, every k-th, so sorted input is covered end to end (all of it when it is shorter)."""
    if len(frame) <= rows:
        return frame
    return frame.iloc[np.linspace(0, len(frame) - 1, rows).round().astype(int)].reset_index(drop=True)


def suspected_leaks(train: pd.DataFrame, held_out: pd.DataFrame, target: str,
                    numeric: list[str], categorical: list[str]) -> list[dict]:
    """Columns that alone (or two numbers as a product or ratio) reproduce the target almost perfectly."""
    train, held_out = evenly_spaced(train, LEAKAGE_SCAN_ROWS), evenly_spaced(held_out, LEAKAGE_SCAN_ROWS)
    y_train = _fitting_scale(train[target].to_numpy(dtype=float))
    scale_all = _fitting_scale(np.concatenate([train[target].to_numpy(float), held_out[target].to_numpy(float)]))
    y_held_out = scale_all[len(train):]
    leaks = []
    for name in [*numeric, *categorical]:
        codes_train, codes_held_out = _binned_codes(train[name], held_out[name], name in numeric)
        score = _held_out_r2(codes_train, y_train, codes_held_out, y_held_out)
        if score >= LEAKAGE_R2:
            leaks.append({"columns": [name], "r2": round(score, 4),
                          "message": f"column {name!r} alone predicts {target} with R² {score:.3f} on held-out "
                                     "rows: it is probably derived from the target or known only after it; if so, "
                                     "name it in ExcludeColumns"})
    if np.all(train[target].to_numpy(float) > 0):
        y_log = np.log(train[target].to_numpy(float))
        flagged = {c for leak in leaks for c in leak["columns"]}
        logs = {name: values for name in numeric if name not in flagged
                and (values := _log_positive(train[name])) is not None}
        ranked = sorted(logs, key=lambda n: -abs(np.nan_to_num(
            np.corrcoef(np.nan_to_num(logs[n], nan=np.nanmedian(logs[n])), y_log)[0, 1])))
        candidates = ranked[:LEAKAGE_PAIR_CANDIDATES]
        for i, first in enumerate(candidates):
            for second in candidates[i + 1:]:
                score = _pair_r2(y_log, logs[first], logs[second])
                if score >= LEAKAGE_PAIR_R2:
                    leaks.append({"columns": [first, second], "r2": round(score, 4),
                                  "message": f"columns {first!r} and {second!r} together reproduce {target} "
                                             f"(R² {score:.3f} as a product or ratio): one of them is probably "
                                             "derived from the target; name that one in ExcludeColumns"})
    return leaks


def target_summary(values: np.ndarray) -> dict:
    quantiles = np.percentile(values, [0, 1, 25, 50, 75, 99, 100])
    return {
        "rows": int(values.size),
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        **{name: float(q) for name, q in zip(("min", "p1", "p25", "median", "p75", "p99", "max"), quantiles)},
    }
