#!/usr/bin/env python3
"""Benchmark the model the pipeline registers against what a user would pick instead, on real tables.

For each table, `pipeline.py run --data <table> --param TargetColumn=<target>` runs the whole pipeline
locally (the user's path: every other parameter at its default). Then, on exactly the splits that run
wrote, two peers with default settings are trained on train + validation rows and scored on the same
test rows: scikit-learn's HistGradientBoostingRegressor and XGBoost's XGBRegressor, both with their
native categorical support. Every model sees the same feature columns (those the pipeline's feature
spec uses). Prints test RMSE per table and the ratio of the registered (chosen) model's RMSE to the
best peer's: below 1 means the pipeline's model is better.

Tables: the bundled Ames sample, scikit-learn's diabetes data, and five tables from the data sets of
"An Introduction to Statistical Learning" that ship inside the `islp` wheel on PyPI (fetched with
`pip download islp==0.6.0 --no-deps` into the cache directory; only its CSV files are read).

    python benchmarks/model_quality.py [--trials 12] [--tables ames,wage,...] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR / "scripts"))
from data_checks import format_number  # noqa: E402  (how the pipeline itself prints numbers)

ISLP_WHEEL = "islp==0.6.0"


@dataclass(frozen=True)
class Table:
    name: str
    target: str
    source: str  # "ames", "diabetes" or an ISLP CSV name
    drop: tuple[str, ...] = field(default=())  # columns that are the target in other units: not data a user has


TABLES = {
    "ames": Table("ames", "SalePrice", "ames"),
    "diabetes": Table("diabetes", "progression", "diabetes"),
    "wage": Table("wage", "wage", "Wage.csv", drop=("logwage",)),
    "bikeshare": Table("bikeshare", "bikers", "Bikeshare.csv", drop=("casual", "registered")),
    "boston": Table("boston", "medv", "Boston.csv"),
    "college": Table("college", "Apps", "College.csv"),
    "carseats": Table("carseats", "Sales", "Carseats.csv"),
}


def islp_csv(name: str, cache_dir: Path) -> pd.DataFrame:
    wheels = sorted(cache_dir.glob("islp-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache_dir),
                        ISLP_WHEEL], check=True)
        wheels = sorted(cache_dir.glob("islp-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(f"ISLP/data/{name}") as stream:
        frame = pd.read_csv(stream)
    return frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed")])


def load(table: Table, cache_dir: Path) -> pd.DataFrame:
    if table.source == "ames":
        frame = pd.read_csv(PROJECT_DIR / "data" / "ames_housing.csv")
    elif table.source == "diabetes":
        from sklearn.datasets import load_diabetes

        raw = load_diabetes(scaled=False, as_frame=True)
        frame = raw.frame.rename(columns={"target": "progression"})
    else:
        frame = islp_csv(table.source, cache_dir)
    return frame.drop(columns=list(table.drop))


def run_pipeline(csv: Path, target: str, local_dir: Path, trials: int) -> str:
    command = [sys.executable, str(PROJECT_DIR / "pipeline.py"), "run", "--local-dir", str(local_dir),
               "--data", str(csv), "--param", f"TargetColumn={target}", "--tuning-max-jobs", str(trials)]
    done = subprocess.run(command, capture_output=True, text=True)
    if "Evaluate succeeded" not in done.stdout:
        sys.exit(f"pipeline run on {csv.name} did not evaluate:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return done.stdout


def step_outputs(local_dir: Path) -> tuple[dict[str, Path], dict]:
    """The split files and the evaluation report of the newest execution, from local S3."""
    s3 = local_dir / "s3"
    newest = max((p for p in s3.rglob("evaluation.json")), key=lambda p: p.stat().st_mtime)
    evaluation = json.loads(newest.read_text())
    splits = {}
    for name in ("train", "validation", "test", "features"):
        file = "features.json" if name == "features" else f"{name}.parquet"
        splits[name] = max(s3.rglob(f"preprocess/**/{name}/{file}"), key=lambda p: p.stat().st_mtime)
    return splits, evaluation


def peer_scores(splits: dict[str, Path]) -> dict[str, float]:
    """Test RMSE of the default peers, trained on train + validation with the spec's feature columns."""
    import xgboost
    from sklearn.ensemble import HistGradientBoostingRegressor

    spec = json.loads(splits["features"].read_text())
    columns = [*spec["numeric"], *spec["categorical"]]
    frames = {name: pd.read_parquet(splits[name]) for name in ("train", "validation", "test")}
    fit_rows = pd.concat([frames["train"], frames["validation"]], ignore_index=True)

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        chosen = frame[columns].copy()
        for name in spec["categorical"]:
            chosen[name] = pd.Categorical(chosen[name].astype(str), categories=sorted(
                fit_rows[name].astype(str).unique()))
        return chosen

    y_fit, y_test = fit_rows[spec["target"]].to_numpy(float), frames["test"][spec["target"]].to_numpy(float)
    peers = {
        "HistGradientBoosting": HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0),
        "XGBoost defaults": xgboost.XGBRegressor(enable_categorical=True, tree_method="hist", random_state=0),
    }
    scores = {}
    for name, model in peers.items():
        model.fit(features(fit_rows), y_fit)
        scores[name] = float(np.sqrt(np.mean((model.predict(features(frames["test"])) - y_test) ** 2)))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="tuning trials per run (default 12, as the pipeline)")
    parser.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated, from {', '.join(TABLES)}")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "model-quality-data")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    for name in args.tables.split(","):
        table = TABLES[name]
        frame = load(table, args.cache_dir)
        with tempfile.TemporaryDirectory(prefix=f"quality-{name}-") as scratch:
            csv = Path(scratch) / f"{name}.csv"
            frame.to_csv(csv, index=False)
            run_pipeline(csv, table.target, Path(scratch) / "local", args.trials)
            splits, evaluation = step_outputs(Path(scratch) / "local")
            peers = peer_scores(splits)
        chosen = evaluation["chosen"]["candidate"]
        registered = evaluation["regression_metrics"]["rmse"]["value"]
        best_peer = min(peers.values())
        rows.append((name, len(frame), chosen, registered, evaluation["regression_metrics"]["r2"]["value"],
                     peers, registered / best_peer))
        print(f"{name}: {len(frame):,} rows, registered {chosen} RMSE {format_number(registered)} "
              f"(R² {rows[-1][4]:.3f}); " + ", ".join(f"{p} {format_number(s)}" for p, s in peers.items())
              + f"; ratio to best peer {rows[-1][6]:.3f}", flush=True)

    print("\n| table | rows | registered | test RMSE | R² | HistGradientBoosting | XGBoost defaults | vs best peer |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, count, chosen, registered, r2, peers, ratio in rows:
        print(f"| {name} | {count:,} | {chosen} | {format_number(registered)} | {r2:.3f} | "
              f"{format_number(peers['HistGradientBoosting'])} | {format_number(peers['XGBoost defaults'])} | "
              f"{ratio - 1:+.1%} |")
    ratios = [row[-1] for row in rows]
    print(f"\nmedian RMSE vs best default peer: {statistics.median(ratios) - 1:+.1%}; "
          f"at least as good on {sum(r <= 1 for r in ratios)} of {len(ratios)} tables")


if __name__ == "__main__":
    main()
