#!/usr/bin/env python3
"""Benchmark the container scripts on large tables: Preprocess, one XGBoost tuning trial and the refit of its choice.

A seeded generator resamples the Ames sample to the sizes asked for (rows drawn with replacement,
numbers jittered by up to 5 %, identifiers made unique), written as CSV in chunks. Each script runs
as its own process with the container contract's arguments, as a job would; the figures are its
wall-clock time and peak resident memory (the process and the children it waited for, from wait4).
The trial boosts --rounds rounds (no early stop); the refit boosts as many, scaled to train + validation rows.
Prints a table and writes it as JSON.

    python benchmarks/scale.py                         # 100k and 1M rows
    python benchmarks/scale.py --rows 10000000         # about 4 GB of CSV; needs about 12 GB of disk
    python benchmarks/scale.py --rows 10000000 --steps preprocess --work-dir DIR   # DIR keeps the table
    python benchmarks/scale.py --steps preprocess,baseline     # the Ridge job instead of the XGBoost one
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_DIR / "data" / "ames_housing.csv"
TARGET = "SalePrice"
IDENTIFIERS = ("Order", "PID")
CHUNK_ROWS = 250_000


def generate_table(rows: int, path: Path, seed: int = 0) -> None:
    """``rows`` rows resampled from the sample with jittered numbers, as one CSV file written chunk by chunk."""
    sample = pd.read_csv(SAMPLE)
    numeric = [c for c in sample.select_dtypes("number").columns if c not in IDENTIFIERS]
    integral = [c for c in numeric if (sample[c].dropna() % 1 == 0).all()]
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as file:
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            chunk = sample.iloc[rng.integers(0, len(sample), count)].reset_index(drop=True)
            jitter = rng.uniform(0.95, 1.05, size=(count, len(numeric)))
            chunk[numeric] = chunk[numeric].to_numpy(dtype=float) * jitter
            chunk[integral] = chunk[integral].round()
            chunk["Order"] = np.arange(start + 1, start + count + 1)
            chunk["PID"] = 100_000_000 + chunk["Order"]
            chunk.to_csv(file, index=False, header=start == 0, float_format="%.6g")


def measured(command: list[str], opt_ml: Path) -> dict:
    """Run a script as a job would; its wall-clock seconds and peak resident memory in GB."""
    env = {**os.environ, "SM_OPT_ML": str(opt_ml), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=opt_ml, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {process.returncode}):\n{output[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_gb": round(usage.ru_maxrss / 1024 ** 2, 2)}  # ru_maxrss is in KiB


def benchmark(rows: int, work: Path, rounds: int, threads: int, steps: list[str]) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    table = work / "input" / "table.csv"
    started = time.perf_counter()
    if not table.exists():  # seeded: a table kept in --work-dir is the one this would write
        partial = table.with_suffix(".partial")
        generate_table(rows, partial)
        partial.rename(table)
    generated = time.perf_counter() - started
    processed = work / "processing"
    preprocess = measured([sys.executable, str(PROJECT_DIR / "scripts" / "preprocess.py"),
                           "--target-column", TARGET, "--input-dir", str(table.parent),
                           "--output-dir", str(processed)], work)
    features = ["--features", str(processed / "features"), "--model-dir", str(work / "model")]
    # A trial and the refit read the rows Preprocess encoded; the baseline reads the raw ones.
    encoded = ["--train", str(processed / "encoded-train"), "--validation", str(processed / "encoded-validation")]
    raw = ["--train", str(processed / "train"), "--validation", str(processed / "validation")]
    training = refit = None
    if "training" in steps:
        training = measured([sys.executable, str(PROJECT_DIR / "scripts" / "train_xgboost.py"), *encoded, *features,
                             "--num_round", str(rounds), "--early_stopping_rounds", str(rounds),
                             "--nthread", str(threads)], work)
        selection = work / "selection"
        selection.mkdir(exist_ok=True)
        with tarfile.open(selection / "model.tar.gz", "w:gz") as archive:  # the trial's model, as SageMaker packs it
            archive.add(work / "model" / "selection.json", arcname="selection.json")
        refit = measured([sys.executable, str(PROJECT_DIR / "scripts" / "refit_xgboost.py"), *encoded, *features,
                          "--selection", str(selection), "--nthread", str(threads)], work)
    baseline = measured([sys.executable, str(PROJECT_DIR / "scripts" / "train_baseline.py"), *raw, *features], work) \
        if "baseline" in steps else None
    return {"rows": rows, "csv_gb": round(table.stat().st_size / 1e9, 2), "generated_seconds": round(generated, 1),
            "preprocess": preprocess, "training": training, "refit": refit, "baseline": baseline}


def figures(measured: dict | None) -> str:
    return f"{measured['seconds']:>12.1f} {measured['peak_gb']:>6.2f}" if measured else f"{'-':>12} {'-':>6}"


def write_results(path: Path, results: list[dict], **settings) -> None:
    """A benchmark's table as JSON, with its settings and the machine's core count."""
    path.write_text(json.dumps({**settings, "cpus": os.cpu_count(), "results": results}, indent=2) + "\n")
    print(f"written to {path}")


def row_counts(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part.strip()]


def step_list(text: str) -> list[str]:
    steps = [part.strip() for part in text.split(",")]
    if "preprocess" not in steps or not set(steps) <= {"preprocess", "training", "baseline"}:
        raise argparse.ArgumentTypeError(f"{text!r}: give preprocess, then any of training and baseline")
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=row_counts, default=[100_000, 1_000_000],
                        help="comma-separated table sizes (default 100000,1000000)")
    parser.add_argument("--rounds", type=int, default=300, help="boosting rounds of the trial (default 300)")
    parser.add_argument("--threads", type=int, default=2, help="XGBoost threads (default 2)")
    parser.add_argument("--steps", type=step_list, default=["preprocess", "training"],
                        help="preprocess, then any of training (an XGBoost trial and the refit of its choice) and "
                             "baseline (the Ridge job); "
                             "default preprocess,training")
    parser.add_argument("--json", type=Path, default=PROJECT_DIR / "benchmarks" / "scale.json",
                        help="where the table is written as JSON")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where tables go and stay, to be reused by the next run (default: a temporary dir)")
    args = parser.parse_args()

    work_root = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    results = []
    print(f"{'rows':>12} {'CSV GB':>7} | {'Preprocess s':>12} {'GB':>6} | {'trial s':>12} {'GB':>6} | "
          f"{'refit s':>12} {'GB':>6} | {'baseline s':>12} {'GB':>6}")
    try:
        for rows in args.rows:
            result = benchmark(rows, work_root / str(rows), args.rounds, args.threads, args.steps)
            for output in ("processing", "model", "selection"):
                shutil.rmtree(work_root / str(rows) / output, ignore_errors=True)
            results.append(result)
            print(f"{rows:>12,} {result['csv_gb']:>7.2f} | {figures(result['preprocess'])} | "
                  f"{figures(result['training'])} | {figures(result['refit'])} | {figures(result['baseline'])}",
                  flush=True)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_root, ignore_errors=True)
    write_results(args.json, results, rounds=args.rounds, threads=args.threads)


if __name__ == "__main__":
    main()
