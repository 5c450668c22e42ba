#!/usr/bin/env python3
"""Benchmark `pipeline.py run`: a full local run on the Ames sample, then an unchanged re-run.

Prints wall-clock figures for the whole command (build, staging, engine), the engine's own
execution time and the peak resident memory of the largest process (wait4). Each repeat starts from
an empty local directory, so the first run builds the definition and runs every job; the re-run is
served from the definition and step caches. With --rows, the run reads a table of that many rows
from scale.py's generator instead of the sample, and each step's time is shown.

    python benchmarks/local_run.py [--trials 12] [--repeats 3]
    python benchmarks/local_run.py --rows 1000000 --trials 4 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR / "benchmarks"))

from scale import generate_table  # noqa: E402

ENGINE_TIME = re.compile(r"^Execution \S+ of \S+: (\w+) in (?:(\d+)m)?([0-9.]+)s", re.MULTILINE)
STEP_TIME = re.compile(r"^✔ (\S+) succeeded in (.+?)(?: \(|$)", re.MULTILINE)


def timed_run(local_dir: Path, trials: int, data: Path | None = None) -> tuple[float, float, float, str]:
    """(wall seconds, engine seconds, peak GB of the largest process, the run's output)."""
    command = [sys.executable, str(PROJECT_DIR / "pipeline.py"), "run", "--local-dir", str(local_dir),
               "--tuning-max-jobs", str(trials), *(["--data", str(data)] if data else [])]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    match = ENGINE_TIME.search(output)
    if os.waitstatus_to_exitcode(status) != 0 or not match or match.group(1) != "Succeeded":
        sys.exit(f"run failed:\n{output[-6000:]}")
    return wall, 60 * int(match.group(2) or 0) + float(match.group(3)), usage.ru_maxrss / 1024 ** 2, output


def repeated_run(trials: int, data: Path | None) -> tuple[tuple, tuple]:
    """A full run from an empty local directory, then the same run again on it."""
    with tempfile.TemporaryDirectory(prefix="bench-local-") as local_dir:
        return timed_run(Path(local_dir) / "local", trials, data), timed_run(Path(local_dir) / "local", trials, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="tuning trials per run (default 12)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh first run + re-run pairs (default 3)")
    parser.add_argument("--rows", type=int, default=None, help="a generated table of this many rows, not the sample")
    args = parser.parse_args()

    firsts, reruns = [], []
    with tempfile.TemporaryDirectory(prefix="bench-table-") as table_dir:
        data = Path(table_dir) / "table.csv" if args.rows else None
        if data is not None:  # seeded: one table serves every repeat
            generate_table(args.rows, data)
        for repeat in range(1, args.repeats + 1):
            first, rerun = repeated_run(args.trials, data)
            firsts.append(first)
            reruns.append(rerun)
            print(f"repeat {repeat}: first run {first[0]:.1f}s (engine {first[1]:.1f}s, largest process "
                  f"{first[2]:.2f} GB), re-run {rerun[0]:.2f}s (engine {rerun[1]:.2f}s)", flush=True)
            if args.rows:
                print("  " + ", ".join(f"{step} {seconds}" for step, seconds in STEP_TIME.findall(first[3])),
                      flush=True)


    first_wall = statistics.median(run[0] for run in firsts)
    rerun_wall = statistics.median(run[0] for run in reruns)
    table = f"{args.rows:,} generated rows" if args.rows else "Ames sample"
    print(f"\nmedian over {args.repeats} repeats, {args.trials} tuning trials, {table}:")
    print(f"  full run       {first_wall:6.1f} s wall")
    print(f"  unchanged run  {rerun_wall:6.2f} s wall  ({rerun_wall / first_wall:.1%} of the full run)")


if __name__ == "__main__":
    main()
