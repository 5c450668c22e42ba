#!/usr/bin/env python3
"""Benchmark `pipeline.py run`: a full local run on the Ames sample, then an unchanged re-run.

Prints wall-clock figures for the whole command (build, staging, engine) and the engine's own
execution time. Each repeat starts from an empty local directory, so the first run builds the
definition and runs every job; the re-run is served from the definition and step caches.

    python benchmarks/local_run.py [--trials 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENGINE_TIME = re.compile(r"^Execution \S+ of \S+: (\w+) in (?:(\d+)m)?([0-9.]+)s", re.MULTILINE)


def timed_run(local_dir: Path, trials: int) -> tuple[float, float]:
    command = [sys.executable, str(PROJECT_DIR / "pipeline.py"), "run", "--local-dir", str(local_dir),
               "--tuning-max-jobs", str(trials)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    match = ENGINE_TIME.search(done.stdout)
    if done.returncode != 0 or not match or match.group(1) != "Succeeded":
        sys.exit(f"run failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return wall, 60 * int(match.group(2) or 0) + float(match.group(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="tuning trials per run (default 12)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh first run + re-run pairs (default 3)")
    args = parser.parse_args()

    firsts, reruns = [], []
    for repeat in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="bench-local-") as local_dir:
            first = timed_run(Path(local_dir), args.trials)
            rerun = timed_run(Path(local_dir), args.trials)
        firsts.append(first)
        reruns.append(rerun)
        print(f"repeat {repeat}: first run {first[0]:.1f}s (engine {first[1]:.1f}s), "
              f"re-run {rerun[0]:.2f}s (engine {rerun[1]:.2f}s)", flush=True)

    first_wall = statistics.median(wall for wall, _ in firsts)
    rerun_wall = statistics.median(wall for wall, _ in reruns)
    print(f"\nmedian over {args.repeats} repeats, {args.trials} tuning trials, Ames sample:")
    print(f"  full run       {first_wall:6.1f} s wall")
    print(f"  unchanged run  {rerun_wall:6.2f} s wall  ({rerun_wall / first_wall:.1%} of the full run)")


if __name__ == "__main__":
    main()
