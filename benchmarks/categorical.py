#!/usr/bin/env python3
"""Measure XGBoost on one-hot columns (what the pipeline trains on) against its native categorical columns.

Both fit the same rows with the same settings (300 rounds, no early stopping, the training script's default
hyperparameters): one-hot is the feature spec's encoding as the training script gives it (a column per level,
about 330 on the Ames sample, 1 for the row's level and missing for the others); native gives each categorical feature one column of level codes that XGBoost splits by partitioning the
levels (`enable_categorical`, `max_cat_to_onehot` 1). Figures: the time to build the training matrix and to
train, and the test RMSE, on the sample (several split seeds) and on a larger table from scale.py's generator.

    python benchmarks/categorical.py            # the sample over 5 seeds, and 200k generated rows
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_DIR / "scripts"), str(PROJECT_DIR / "benchmarks")]

import preprocess  # noqa: E402
from features import (  # noqa: E402
    category_label, decode_target, encode_target, numeric_values, target_values, transform_features,
    with_absent_levels,
)
from metrics import rmse  # noqa: E402
from scale import SAMPLE, TARGET, generate_table, write_results  # noqa: E402
from tabular_input import read_tables  # noqa: E402
from train_xgboost import booster_parameters, parse_arguments  # noqa: E402


def native_matrix(frame: pd.DataFrame, spec: dict) -> tuple[np.ndarray, list[str]]:
    """Scaled numbers as the spec gives them, then one column of level codes per categorical feature (an unseen
    level: missing)."""
    numeric = [(numeric_values(frame[name], "") - spec["means"][name]) / spec["stds"][name] for name in spec["numeric"]]
    numeric = [np.where(np.isnan(column), (spec["medians"][name] - spec["means"][name]) / spec["stds"][name], column)
               for column, name in zip(numeric, spec["numeric"])]
    codes = []
    for name in spec["categorical"]:
        levels = {level: code for code, level in enumerate(spec["categories"][name])}
        distinct, inverse = np.unique(frame[name].astype(object).where(frame[name].notna(), None).map(
            lambda value: "" if value is None else category_label(value)).to_numpy(dtype=str), return_inverse=True)
        mapped = np.array([levels.get(label, np.nan) if label else np.nan for label in distinct], dtype=float)
        codes.append(mapped[inverse])
    matrix = np.column_stack([*numeric, *codes]).astype(np.float32)
    return matrix, ["q"] * len(spec["numeric"]) + ["c"] * len(spec["categorical"])


def fit_and_score(splits: dict, spec: dict, encoding: str, rounds: int, threads: int, seed: int) -> dict:
    arguments = parse_arguments(["--nthread", str(threads), "--seed", str(seed)])
    parameters = {**booster_parameters(arguments), "max_cat_to_onehot": 1}
    train, test = splits["train"], splits["test"]
    labels = encode_target(target_values(train, spec["target"]), spec)
    if encoding == "one-hot":  # as train_xgboost.py encodes: a level a row does not have is missing
        spec = with_absent_levels(spec, "missing")
    started = time.perf_counter()
    if encoding == "one-hot":
        matrix = xgboost.QuantileDMatrix(transform_features(train, spec, np.float32), label=labels)
    else:
        values, types = native_matrix(train, spec)
        matrix = xgboost.QuantileDMatrix(values, label=labels, feature_types=types, enable_categorical=True)
    built = time.perf_counter()
    booster = xgboost.train(parameters, matrix, rounds)
    trained = time.perf_counter()
    if encoding == "one-hot":
        predicted = booster.inplace_predict(transform_features(test, spec, np.float32))
    else:
        values, types = native_matrix(test, spec)
        predicted = booster.predict(xgboost.DMatrix(values, feature_types=types, enable_categorical=True))
    score = rmse(target_values(test, spec["target"]), decode_target(predicted, spec))
    return {"columns": matrix.num_col(), "matrix_seconds": built - started, "train_seconds": trained - built,
            "test_rmse": score}


def prepared(table_dir: Path, seed: int) -> tuple[dict, dict]:
    prepared = preprocess.prepare(read_tables(table_dir, ""), target_column=TARGET, id_columns=None,
                                  exclude_columns=[], validation_fraction=0.15, test_fraction=0.15, seed=seed)
    return prepared.splits, prepared.spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="split seeds on the sample (default 5)")
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the generated table (default 200000)")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=PROJECT_DIR / "benchmarks" / "categorical.json")
    args = parser.parse_args()

    results = []
    print(f"{'table':>24} {'encoding':>8} | {'columns':>7} | {'matrix s':>8} | {'train s':>7} | {'test RMSE':>10}")
    with tempfile.TemporaryDirectory(prefix="bench-categorical-") as work:
        sample_dir, generated_dir = Path(work) / "sample", Path(work) / "generated"
        sample_dir.mkdir()
        (sample_dir / SAMPLE.name).write_bytes(SAMPLE.read_bytes())
        generate_table(args.rows, generated_dir / "table.csv")
        cases = [(f"sample, seed {seed}", sample_dir, seed) for seed in range(args.seeds)]
        cases.append((f"{args.rows:,} generated rows", generated_dir, 0))
        for table, directory, seed in cases:
            splits, spec = prepared(directory, seed)
            for encoding in ("one-hot", "native"):
                result = fit_and_score(splits, spec, encoding, args.rounds, args.threads, seed)
                results.append({"table": table, "encoding": encoding, **{
                    key: round(value, 2) if isinstance(value, float) else value for key, value in result.items()}})
                print(f"{table:>24} {encoding:>8} | {result['columns']:>7} | {result['matrix_seconds']:>8.2f} | "
                      f"{result['train_seconds']:>7.2f} | {result['test_rmse']:>10,.0f}", flush=True)
    write_results(args.json, results, rounds=args.rounds, threads=args.threads)


if __name__ == "__main__":
    main()
