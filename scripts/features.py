"""Feature spec shared by preprocessing, both trainings, evaluation and serving.

The spec is fitted on the training split only and stored as JSON, so every image
(scikit-learn, XGBoost, serving) turns raw columns into the same float matrix without
unpickling anything. This module must stay importable with only numpy and pandas:
it is copied into the XGBoost model artefact for serving.
"""

import json
import re

import numpy as np
import pandas as pd

SPEC_VERSION = 1
FEATURE_SPEC_FILE = "features.json"
MISSING_LEVEL = "__missing__"
OTHER_LEVEL = "__other__"
# One-hot columns per categorical feature at most; rarer levels share OTHER_LEVEL.
MAX_LEVELS = 100
# Below this many rows a Python pass over the values is cheaper than one more pandas call.
SMALL_FRAME_ROWS = 64
# Kinds of values that pandas' hashing keeps apart as Python does (not True and 1, which it merges).
_FACTORIZABLE_KINDS = ("string", "floating", "integer", "mixed-integer-float", "empty")

# One definition of "missing" for CSV files and JSON requests alike, so a request
# cannot be encoded differently from the training rows it resembles.
MISSING_VALUE_MARKERS = ("", "#N/A", "N/A", "n/a", "NA", "NaN", "nan", "NULL", "null", "None")
# The texts pandas reads as booleans.
TRUE_TEXTS, FALSE_TEXTS = ("True", "TRUE", "true"), ("False", "FALSE", "false")
_BOOLEAN_LABELS = {**dict.fromkeys(TRUE_TEXTS, "True"), **dict.fromkeys(FALSE_TEXTS, "False")}

# How a level a row does not have is encoded: 0, or missing. Trees are given missing: XGBoost's histograms visit
# present cells only, so a row costs its own levels rather than every level (a third of the time per round on
# the scale benchmark's 319 columns), and a split on present-or-missing is the split on 1-or-0: the same trees.
# A spec without the key (Preprocess's, the linear baseline's, models saved before it) encodes 0.
ABSENT_LEVELS = ("zero", "missing")

_REQUIRED_SPEC_KEYS = (
    "version", "target", "target_transform", "numeric", "categorical",
    "medians", "means", "stds", "categories",
)


def read_raw_csv(source) -> pd.DataFrame:
    """Read a CSV with a header row, treating only MISSING_VALUE_MARKERS as missing."""
    return pd.read_csv(source, keep_default_na=False, na_values=list(MISSING_VALUE_MARKERS))


def is_missing(value) -> bool:
    if isinstance(value, str):
        return value in MISSING_VALUE_MARKERS
    return bool(pd.isna(value))


_NUMBER_DECORATION = re.compile(r"^[$€£¥]|[$€£¥%]$")
_GROUPED_DIGITS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d*)?$")


def plain_number_text(value) -> str:
    """'$1,234.50' -> '1234.50', ' 12 % ' -> '12': how spreadsheets format numbers as text."""
    text = _NUMBER_DECORATION.sub("", str(value).strip()).strip()
    negative = text.startswith("-")
    text = text.lstrip("-+").strip()
    text = _NUMBER_DECORATION.sub("", text).strip()
    if _GROUPED_DIGITS.match(text):
        text = text.replace(",", "")
    return f"-{text}" if negative else text


def is_number_column(column) -> bool:
    """Whether a column (or a dtype) holds numbers (booleans are numeric to pandas, but levels here)."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def numeric_values(column: pd.Series, remedy: str) -> np.ndarray:
    """Floats of a column (missing and infinite as NaN); a ValueError naming the column if a value is no number.

    Numbers formatted as text ('$1,234', '12%') count as numbers, in training and in requests alike.
    """
    # Columns parsed from CSV are numeric already; only JSON requests and mixed columns need the scan.
    if is_number_column(column):
        values = column.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = _distinct_text_numbers(column, remedy)
    values[np.isinf(values)] = np.nan
    return values


def _distinct_text_numbers(column: pd.Series, remedy: str) -> np.ndarray:
    """_text_numbers of each distinct value once: text columns repeat their values, and the repairs run per
    value in Python (a million-row column of a dozen values costs a dozen)."""
    if _factorizable(column):
        codes, distinct = pd.factorize(column, use_na_sentinel=False)
        return _text_numbers(pd.Series(np.asarray(distinct, dtype=object), name=column.name), remedy)[codes]
    return _text_numbers(column, remedy)


def _factorizable(values) -> bool:
    """Whether computing per distinct value pays and keeps values apart as Python does."""
    return len(values) > SMALL_FRAME_ROWS and pd.api.types.infer_dtype(values, skipna=True) in _FACTORIZABLE_KINDS


def _text_numbers(column: pd.Series, remedy: str) -> np.ndarray:
    present = column[~column.map(is_missing)]
    converted = pd.to_numeric(present, errors="coerce")
    failed = converted.isna()
    if failed.any():
        converted[failed] = pd.to_numeric(present[failed].map(plain_number_text), errors="coerce")
    not_numbers = present[converted.isna()]
    if len(not_numbers):
        raise ValueError(f"column {column.name!r} must be numeric but holds {not_numbers.iloc[0]!r}; {remedy}")
    return converted.reindex(column.index).to_numpy(dtype=float)


def is_numeric_text(column: pd.Series) -> bool:
    """True for a text column whose every present value is a number, perhaps formatted ('$1,234')."""
    try:
        numeric_values(column, "")
    except (ValueError, TypeError):
        return False
    distinct = column.drop_duplicates() if _factorizable(column) else column
    return not distinct.map(is_missing).all()


def category_label(value) -> str:
    """The level a value counts as. Text counts without its surrounding spaces, and a boolean whatever its case
    ('TRUE', ' true' and True are one level): a CSV reader may or may not strip and type them, and a request
    must land in the level its training rows did."""
    if isinstance(value, str):
        value = value.strip()
        value = _BOOLEAN_LABELS.get(value, value)
    if is_missing(value):
        return MISSING_LEVEL
    # A code column read as floats because of gaps ("20.0") must match the same code sent as 20.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def by_category(column: pd.Series, per_category, missing) -> np.ndarray:
    """Each row of a categorical column as its category's entry in ``per_category`` (computed once per category,
    not once per row), or ``missing`` where the value is missing."""
    per_category = np.asarray(per_category)
    table = np.concatenate([per_category, np.asarray([missing], dtype=per_category.dtype)])
    return table[column.cat.codes.to_numpy()]  # code -1, a missing value, takes the last entry


def _label_counts(column: pd.Series) -> pd.Series:
    """How many rows hold each category label."""
    if isinstance(column.dtype, pd.CategoricalDtype):  # counted on the codes
        labels = [category_label(value) for value in column.cat.categories] + [MISSING_LEVEL]
        positions = by_category(column, np.arange(len(labels) - 1), len(labels) - 1)
        counts = pd.Series(np.bincount(positions, minlength=len(labels)), index=labels)
        return counts[counts > 0].groupby(level=0).sum()  # two categories may share a label
    return pd.Series(distinct_values_mapped(column.to_numpy(dtype=object), category_label, dtype=object)).value_counts()


def infer_feature_types(frame: pd.DataFrame, target: str, drop) -> tuple[list[str], list[str]]:
    """Split the columns other than the target and `drop` into numeric and categorical, in frame order."""
    excluded = {target, *drop}
    numeric, categorical = [], []
    for name in frame.columns:
        if name in excluded:
            continue
        column = frame[name]
        if is_number_column(column):
            numeric.append(name)
        else:
            categorical.append(name)
    return numeric, categorical


def require_columns(frame, columns, remedy: str) -> None:
    """Raise naming the ``columns`` that ``frame`` (a frame, or its column names) lacks."""
    present = frame.columns if isinstance(frame, pd.DataFrame) else frame
    missing = [name for name in columns if name not in present]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise ValueError(f"missing required column(s) {listed}; {remedy}")


def fit_feature_spec(train: pd.DataFrame, target: str, numeric: list[str], categorical: list[str]) -> dict:
    """Fit imputation, standardisation, one-hot levels and the target transform on training rows."""
    features = [*numeric, *categorical]
    if not features:
        raise ValueError("no feature columns left to learn from; keep at least one column besides the target")
    if target in features:
        raise ValueError(f"target column {target!r} cannot also be a feature; remove it from the feature lists")
    overlap = sorted(set(numeric) & set(categorical))
    if overlap:
        raise ValueError(f"column(s) {overlap} listed as both numeric and categorical; list each column once")
    require_columns(train, [target, *features], "the training rows must contain every listed column")
    if train.empty:
        raise ValueError("no training rows to fit the feature spec on")

    medians, means, stds = {}, {}, {}
    for name in numeric:
        values = numeric_values(train[name], "fix the value or leave the cell empty")
        observed = values[~np.isnan(values)]
        # An all-missing column carries no information; 0 keeps the spec finite (JSON has no NaN).
        median = float(np.median(observed)) if observed.size else 0.0
        imputed = np.where(np.isnan(values), median, values)
        std = float(np.std(imputed))
        medians[name], means[name], stds[name] = median, float(np.mean(imputed)), std if std > 0 else 1.0

    categories = {name: _levels(_label_counts(train[name])) for name in categorical}

    targets = target_values(train, target)
    return {
        "version": SPEC_VERSION,
        "target": target,
        "target_transform": "log1p" if np.all(targets >= 0) else "identity",
        "numeric": list(numeric),
        "categorical": list(categorical),
        "medians": medians,
        "means": means,
        "stds": stds,
        "categories": categories,
    }


def _levels(counts: pd.Series) -> list[str]:
    """Sorted levels (from each label's row count); beyond MAX_LEVELS only the most frequent keep a column and the
    rest share OTHER_LEVEL."""
    if len(counts) <= MAX_LEVELS:
        return sorted(counts.index)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return sorted([level for level, _ in ranked[:MAX_LEVELS - 1]] + [OTHER_LEVEL])


def spec_from_json(text: str) -> dict:
    """Parse a stored feature spec, refusing one this code cannot apply."""
    spec = json.loads(text)
    missing = [key for key in _REQUIRED_SPEC_KEYS if key not in spec]
    if missing:
        raise ValueError(f"feature spec lacks {missing}; regenerate it with preprocess.py")
    if spec["version"] != SPEC_VERSION:
        raise ValueError(
            f"feature spec version {spec['version']} is not the supported version {SPEC_VERSION}; "
            "regenerate it with this preprocess.py"
        )
    if spec.get("absent_levels", "zero") not in ABSENT_LEVELS:
        raise ValueError(f"feature spec absent_levels {spec['absent_levels']!r} is not one of "
                         f"{', '.join(ABSENT_LEVELS)}; retrain the model with this code")
    return spec


def feature_names(spec: dict) -> list[str]:
    """Names of the transformed columns, in matrix order."""
    one_hot = [f"{name}={level}" for name in spec["categorical"] for level in spec["categories"][name]]
    return [*spec["numeric"], *one_hot]


def transform_features(frame: pd.DataFrame, spec: dict, dtype=np.float64) -> np.ndarray:
    """Raw columns to the float matrix the models use; extra columns (the target too) are ignored.
    XGBoost computes in float32 whatever it is given, so its training matrices are float32 (half the memory)."""
    return FeatureEncoder(spec)(frame, dtype)


class FeatureEncoder:
    """A fitted spec prepared once (a model keeps one), turning raw columns into the model's matrix.

    Whole blocks at a time rather than column by column: a request of one row pays pandas' fixed cost
    per call, so the calls per request are few (benchmarks/serving.py measures it)."""

    def __init__(self, spec: dict):
        self.numeric, self.categorical = list(spec["numeric"]), list(spec["categorical"])
        self.columns = [*self.numeric, *self.categorical]
        self.medians, self.means, self.stds = (np.array([spec[key][name] for name in self.numeric], dtype=float)
                                               for key in ("medians", "means", "stds"))
        self.positions, self.unseen, offset = [], [], 0
        for name in self.categorical:
            levels = spec["categories"][name]
            # Keyed as category_label gives them now: a spec saved before levels lost their spaces and booleans
            # their case ('WD ', 'TRUE': an approved champion's) still finds its rows.
            position = {level if level in (MISSING_LEVEL, OTHER_LEVEL) else category_label(level): offset + i
                        for i, level in enumerate(levels)}
            self.positions.append(position)
            self.unseen.append(position.get(OTHER_LEVEL, -1))
            offset += len(levels)
        self.width = offset
        self.absent = np.nan if spec.get("absent_levels") == "missing" else 0.0

    def __call__(self, frame: pd.DataFrame, dtype=np.float64) -> np.ndarray:
        return self.assembled(*self.parts(frame), dtype)

    def parts(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """What a row's encoding is made of: its numbers imputed and scaled (rows x numeric features), and the
        one-hot column of its level of each categorical feature (rows x categorical features, -1 for none)."""
        require_columns(frame, self.columns, "supply every raw feature column the model was trained on")
        # A request is a frame of objects only: one matrix of it, no pandas column selection.
        cells = frame.to_numpy(dtype=object)[:, frame.columns.get_indexer(self.columns)] \
            if all(dtype == object for dtype in frame.dtypes) else None
        values = self._numeric(frame, None if cells is None else cells[:, :len(self.numeric)])
        scaled = (np.where(np.isnan(values), self.medians, values) - self.means) / self.stds
        return scaled, self._level_columns(frame, None if cells is None else cells[:, len(self.numeric):])

    def assembled(self, scaled: np.ndarray, levels: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The model's matrix from ``parts``: the scaled numbers, then the one-hot columns."""
        encoded = np.empty((len(levels), len(self.numeric) + self.width), dtype=dtype)
        encoded[:, :len(self.numeric)] = scaled
        self._one_hot(levels, encoded[:, len(self.numeric):], self.absent)
        return encoded

    def _numeric(self, frame: pd.DataFrame, cells: np.ndarray | None) -> np.ndarray:
        """numeric_values of each numeric column, as a rows x columns matrix."""
        if cells is None and all(is_number_column(dtype)
                                 for dtype in frame.dtypes.iloc[frame.columns.get_indexer(self.numeric)]):
            values = frame[self.numeric].to_numpy(dtype=float, na_value=np.nan)
        else:
            values = _plain_floats(frame[self.numeric].to_numpy(dtype=object) if cells is None else cells)
            if values is None:  # a cell needs numeric_values' repairs ('$1,234') or its message
                remedy = "send a number or leave the value empty"
                values = np.column_stack([numeric_values(frame[name], remedy) for name in self.numeric]) \
                    if self.numeric else np.empty((len(frame), 0))
        values[np.isinf(values)] = np.nan
        return values

    def _level_columns(self, frame: pd.DataFrame, cells: np.ndarray | None) -> np.ndarray:
        """For each row and categorical feature, the one-hot column of its level: an unseen level counts as
        OTHER_LEVEL when the feature has one, else as none (-1)."""
        columns = np.empty((len(frame), len(self.categorical)), dtype=np.int64)
        for index, (name, position, unseen) in enumerate(zip(self.categorical, self.positions, self.unseen)):
            def level(value, position=position, unseen=unseen):
                return position.get(category_label(value), unseen)

            if cells is None and isinstance(frame[name].dtype, pd.CategoricalDtype):  # a batch read for encoding
                columns[:, index] = by_category(
                    frame[name], np.array([level(value) for value in frame[name].cat.categories], dtype=np.int64),
                    level(None))
            else:
                columns[:, index] = distinct_values_mapped(
                    frame[name].to_numpy(dtype=object) if cells is None else cells[:, index], level)
        return columns

    def present_cells(self, scaled: np.ndarray, levels: np.ndarray):
        """The model's matrix from ``parts`` as its present cells only (a float32 SciPy CSR matrix): the scaled
        numbers and a 1 in each row's level column, which is all a spec with absent levels missing holds. XGBoost
        takes a row's 79 cells of the sample this way instead of its 319 columns, three times faster to quantise."""
        import scipy.sparse  # here, not at the top: serving never needs it

        rows, numbers = scaled.shape
        values = np.ones((rows, numbers + levels.shape[1]), dtype=np.float32)
        values[:, :numbers] = scaled
        columns = np.empty(values.shape, dtype=np.int32)
        columns[:, :numbers] = np.arange(numbers)
        columns[:, numbers:] = levels + numbers
        present = np.ones(values.shape, dtype=bool)
        present[:, numbers:] = levels >= 0
        ends = np.cumsum(present.sum(axis=1))
        return scipy.sparse.csr_matrix((values[present], columns[present], np.concatenate([[0], ends])),
                                       shape=(rows, numbers + self.width))

    @staticmethod
    def _one_hot(columns: np.ndarray, out: np.ndarray, absent: float) -> None:
        """Fill ``out`` with one column per level of each categorical feature, 1 in each row's level column and
        ``absent`` in the others."""
        out[:] = absent
        rows, which = np.nonzero(columns >= 0)
        out[rows, columns[rows, which]] = 1


def _plain_floats(cells: np.ndarray) -> np.ndarray | None:
    """The cells as floats when each is missing or a plain number (as numbers or as text), else None.

    numpy's parser reads what pandas' does, except underscores ('1_000') and non-ASCII digits, which
    pandas refuses: those go the slow way, so both ways agree."""
    flat = cells.ravel()
    try:  # one C-level join when every cell is text or missing (the CSV case)
        text = "".join(np.where(pd.isna(flat), "", flat))
    except TypeError:  # numbers among them (JSON)
        text = "".join(cell for cell in flat if isinstance(cell, str))
    if "_" in text or not text.isascii():
        return None
    try:
        return cells.astype(float)
    except (ValueError, TypeError):
        return None


def distinct_values_mapped(values: np.ndarray, mapping, dtype=np.int64) -> np.ndarray:
    """mapping(value) for each value, computed once per distinct value (keyed by type too: True == 1)."""
    if _factorizable(values):
        codes, distinct = pd.factorize(values, use_na_sentinel=False)
        return np.array([mapping(value) for value in distinct], dtype=dtype)[codes] if len(distinct) else \
            np.empty(0, dtype=dtype)
    known: dict = {}

    def mapped(value):
        try:
            key = (type(value), value)
            if key not in known:
                known[key] = mapping(value)
            return known[key]
        except TypeError:  # unhashable (a list in a JSON record): mapped as it is
            return mapping(value)

    return np.array([mapped(value) for value in values], dtype=dtype)


def target_values(frame: pd.DataFrame, target: str) -> np.ndarray:
    """The target column as floats; a ValueError if it is absent, non-numeric or has gaps."""
    require_columns(frame, [target], "the rows must include the target column")
    values = numeric_values(frame[target], "the target must be a number in every row")
    if np.isnan(values).any():
        raise ValueError(f"target column {target!r} has missing values; drop those rows (preprocess.py does)")
    return values


TARGET_TRANSFORMS = ("log1p", "identity")


def usable_target_transforms(targets) -> list[str]:
    """The transforms a model may fit these targets in: the logarithm only when none is negative."""
    return list(TARGET_TRANSFORMS) if np.all(np.asarray(targets, dtype=float) >= 0) else ["identity"]


def with_target_transform(spec: dict, transform: str) -> dict:
    """The spec a model saves beside itself: which transform it was fitted in, so serving decodes the same."""
    if transform not in TARGET_TRANSFORMS:
        raise ValueError(f"target transform {transform!r} is not one of {', '.join(TARGET_TRANSFORMS)}")
    return {**spec, "target_transform": transform}


def with_absent_levels(spec: dict, absent: str) -> dict:
    """The spec of a model that is given its absent levels as ``absent`` (one of ABSENT_LEVELS)."""
    if absent not in ABSENT_LEVELS:
        raise ValueError(f"absent levels {absent!r} is not one of {', '.join(ABSENT_LEVELS)}")
    return {**spec, "absent_levels": absent}


def encode_target(y, spec: dict) -> np.ndarray:
    """Target in the units the models are fitted in."""
    values = np.asarray(y, dtype=float)
    if spec["target_transform"] == "identity":
        return values
    if np.any(values <= -1):
        raise ValueError(
            f"target column {spec['target']!r} has values <= -1, which log1p cannot encode; "
            "refit the feature spec on rows that include such values"
        )
    return np.log1p(values)


def decode_target(values, spec: dict) -> np.ndarray:
    """Model outputs back in the target's own units."""
    values = np.asarray(values, dtype=float)
    return values if spec["target_transform"] == "identity" else np.expm1(values)
