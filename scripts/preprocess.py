"""Processing job (scikit-learn image): clean raw CSVs, split them, fit the feature spec on train.

Reads every *.csv under the input directory, drops rows without a target and the
requested columns, splits the rows with a seeded permutation and writes the raw cleaned
rows of each split plus the feature spec fitted on the training split only.
"""

import argparse
import difflib
from pathlib import Path

import numpy as np
import pandas as pd

from container import (
    ContractArgumentParser, failure_reporting, opt_ml_root, read_csv_directory,
    write_csv_atomic, write_json_atomic,
)
from features import FEATURE_SPEC_FILE, fit_feature_spec, infer_feature_types, numeric_values

SPLITS = ("train", "validation", "test")
MINIMUM_ROWS_PER_SPLIT = 5


def _closest_columns(names, columns) -> str:
    by_lower_case = {str(column).lower(): column for column in columns}
    suggestions = [by_lower_case[match] for name in names
                   for match in difflib.get_close_matches(name.lower(), list(by_lower_case), n=1)]
    return f" (closest in the header: {', '.join(map(repr, suggestions))})" if suggestions else ""


def clean(raw: pd.DataFrame, target: str, drop: list[str]) -> pd.DataFrame:
    """Rows with a numeric target, without the dropped columns."""
    if target not in raw.columns:
        raise ValueError(
            f"target column {target!r} not found in the input{_closest_columns([target], raw.columns)}; "
            "pass a column of the CSV header with --target-column"
        )
    unknown = [name for name in drop if name not in raw.columns]
    if unknown:
        raise ValueError(
            f"--drop-columns names unknown column(s) {unknown}{_closest_columns(unknown, raw.columns)}; "
            "use names from the CSV header"
        )
    if target in drop:
        raise ValueError(f"--drop-columns includes the target {target!r}; remove it from the list")
    has_target = ~np.isnan(numeric_values(raw[target], "choose a numeric column with --target-column"))
    cleaned = raw.loc[has_target].drop(columns=drop).reset_index(drop=True)
    cleaned[target] = pd.to_numeric(cleaned[target])
    return cleaned


def split_sizes(row_count: int, validation_fraction: float, test_fraction: float) -> dict[str, int]:
    validation = round(row_count * validation_fraction)
    test = round(row_count * test_fraction)
    sizes = {"train": row_count - validation - test, "validation": validation, "test": test}
    if min(sizes.values()) < MINIMUM_ROWS_PER_SPLIT:
        raise ValueError(
            f"too few rows: {row_count} rows with a target give split sizes {sizes}, and every split needs "
            f"at least {MINIMUM_ROWS_PER_SPLIT}; supply more rows or adjust the fractions"
        )
    return sizes


def split_rows(frame: pd.DataFrame, sizes: dict[str, int], seed: int) -> dict[str, pd.DataFrame]:
    """Disjoint splits from one seeded permutation; each keeps the input's row order for readable diffs."""
    permutation = np.random.default_rng(seed).permutation(len(frame))
    test_rows = permutation[: sizes["test"]]
    validation_rows = permutation[sizes["test"]: sizes["test"] + sizes["validation"]]
    train_rows = permutation[sizes["test"] + sizes["validation"]:]
    chosen = {"train": train_rows, "validation": validation_rows, "test": test_rows}
    return {name: frame.iloc[np.sort(rows)].reset_index(drop=True) for name, rows in chosen.items()}


def prepare(raw: pd.DataFrame, target: str, drop: list[str], validation_fraction: float,
            test_fraction: float, seed: int) -> tuple[dict[str, pd.DataFrame], dict]:
    cleaned = clean(raw, target, drop)
    splits = split_rows(cleaned, split_sizes(len(cleaned), validation_fraction, test_fraction), seed)
    numeric, categorical = infer_feature_types(cleaned, target, drop=())
    return splits, fit_feature_spec(splits["train"], target, numeric, categorical)


def write_outputs(output_dir: Path, splits: dict[str, pd.DataFrame], spec: dict) -> None:
    for name, frame in splits.items():
        write_csv_atomic(output_dir / name / f"{name}.csv", frame)
    write_json_atomic(output_dir / "features" / FEATURE_SPEC_FILE, spec)


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def column_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("processing", description=__doc__.splitlines()[0])
    parser.add_argument("--target-column", default="SalePrice")
    parser.add_argument("--drop-columns", type=column_list, default=[],
                        help="comma-separated columns to leave out, e.g. row ids")
    parser.add_argument("--validation-fraction", type=fraction, default=0.15)
    parser.add_argument("--test-fraction", type=fraction, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--input-dir", type=Path, default=opt_ml_root() / "processing" / "input" / "data")
    parser.add_argument("--output-dir", type=Path, default=opt_ml_root() / "processing",
                        help="parent of the train/, validation/, test/ and features/ outputs")
    arguments = parser.parse_args(argv)
    if arguments.validation_fraction + arguments.test_fraction >= 1:
        parser.error("--validation-fraction plus --test-fraction must leave rows for training (sum below 1)")
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("processing"):
        raw = read_csv_directory(arguments.input_dir, "input data")
        splits, spec = prepare(raw, arguments.target_column, arguments.drop_columns,
                               arguments.validation_fraction, arguments.test_fraction, arguments.seed)
        write_outputs(arguments.output_dir, splits, spec)
        sizes = ", ".join(f"{name}: {len(frame)} rows" for name, frame in splits.items())
        print(f"wrote {sizes} and a feature spec of {len(spec['numeric'])} numeric, "
              f"{len(spec['categorical'])} categorical columns")


if __name__ == "__main__":
    main()
