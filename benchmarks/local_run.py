#!/usr/bin/env python3
"""Benchmark `pipeline.py run`: a full local run on the Ames sample, then an unchanged re-run.

Prints wall-clock figures for the whole command (build, staging, engine), the engine's own
execution time, the peak resident memory of the largest process (wait4) and the peak of all the run's
processes together (their resident memory summed, sampled every half second: an upper bound, as pages
the processes share are counted once for each). Each repeat starts from an empty local directory, so
the first run builds the definition and runs every job; the re-run is served from the definition and
step caches. With --rows, the run reads a table of that many rows from scale.py's generator instead of
the sample (or --data, a CSV already made), and each step's time is shown. Each run builds the definition from
this checkout's files: a change committed or edited while a long run goes on makes the re-run run again what it
touches (run long benchmarks from a worktree of their own).

    python benchmarks/local_run.py [--trials 12] [--repeats 3]
    python benchmarks/local_run.py --rows 1000000 --trials 4 --repeats 1
    python benchmarks/local_run.py --data DIR/table.csv --trials 1 --parallel-trials 1 --repeats 1 --json F
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR / "benchmarks"))

from scale import generate_table, write_results  # noqa: E402

ENGINE_TIME = re.compile(r"^Execution \S+ of \S+: (\w+) in (?:(\d+)m)?([0-9.]+)s", re.MULTILINE)
STEP_TIME = re.compile(r"^✔ (\S+) succeeded in (.+?)(?: \(|$)", re.MULTILINE)


class TreeMemory(threading.Thread):
    """The largest sum, over the samples taken, of the resident memory of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.interval, self.peak_bytes = psutil.Process(pid), interval, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            total = 0
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:  # a job that ended between the listing and the reading
                    pass
            self.peak_bytes = max(self.peak_bytes, total)


def timed_run(local_dir: Path, trials: int, data: Path | None = None,
              parallel_trials: int | None = None) -> tuple[float, float, float, float, str]:
    """(wall seconds, engine seconds, peak GB of the largest process, peak GB of all at once, the run's output)."""
    command = [sys.executable, str(PROJECT_DIR / "pipeline.py"), "run", "--local-dir", str(local_dir),
               "--tuning-max-jobs", str(trials), *(["--data", str(data)] if data else []),
               *(["--tuning-max-parallel-jobs", str(parallel_trials)] if parallel_trials else [])]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = TreeMemory(process.pid)
    memory.start()
    output = process.stdout.read()
    memory.stopped.set()
    memory.join()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    match = ENGINE_TIME.search(output)
    if os.waitstatus_to_exitcode(status) != 0 or not match or match.group(1) != "Succeeded":
        sys.exit(f"run failed:\n{output[-6000:]}")
    return (wall, 60 * int(match.group(2) or 0) + float(match.group(3)), usage.ru_maxrss / 1024 ** 2,
            memory.peak_bytes / 1024 ** 3, output)


def repeated_run(trials: int, data: Path | None, parallel_trials: int | None) -> tuple[tuple, tuple]:
    """A full run from an empty local directory, then the same run again on it."""
    with tempfile.TemporaryDirectory(prefix="bench-local-") as local_dir:
        return tuple(timed_run(Path(local_dir) / "local", trials, data, parallel_trials) for _ in range(2))


def figures(first: tuple, rerun: tuple) -> dict:
    wall, engine, largest_gb, all_gb, output = first
    return {"first_run": {"seconds": round(wall, 1), "engine_seconds": round(engine, 1),
                          "largest_process_gb": round(largest_gb, 2), "all_processes_gb": round(all_gb, 2),
                          "steps": dict(STEP_TIME.findall(output))},
            "rerun": {"seconds": round(rerun[0], 2), "engine_seconds": round(rerun[1], 2)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="tuning trials per run (default 12)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh first run + re-run pairs (default 3)")
    table = parser.add_mutually_exclusive_group()
    table.add_argument("--rows", type=int, default=None, help="a generated table of this many rows, not the sample")
    table.add_argument("--data", type=Path, default=None, help="this CSV file instead of the sample")
    parser.add_argument("--parallel-trials", type=int, default=None,
                        help="tuning trials at once (default: the tuning-max-parallel-jobs setting)")
    parser.add_argument("--json", type=Path, default=None, help="also write each repeat's figures to this file")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_file():
        parser.error(f"--data {args.data}: no such file; give a CSV file")

    firsts, reruns = [], []
    with tempfile.TemporaryDirectory(prefix="bench-table-") as table_dir:
        data = Path(table_dir) / "table.csv" if args.rows else args.data
        if args.rows:  # seeded: one table serves every repeat
            generate_table(args.rows, data)
        for repeat in range(1, args.repeats + 1):
            first, rerun = repeated_run(args.trials, data, args.parallel_trials)
            firsts.append(first)
            reruns.append(rerun)
            print(f"repeat {repeat}: first run {first[0]:.1f}s (engine {first[1]:.1f}s, largest process "
                  f"{first[2]:.2f} GB, all processes at once {first[3]:.2f} GB), re-run {rerun[0]:.2f}s "
                  f"(engine {rerun[1]:.2f}s)", flush=True)
            if data is not None:
                print("  " + ", ".join(f"{step} {seconds}" for step, seconds in STEP_TIME.findall(first[4])),
                      flush=True)
    if args.json:
        write_results(args.json, [figures(first, rerun) for first, rerun in zip(firsts, reruns)],
                      table=str(args.data or args.rows or "sample"), trials=args.trials,
                      parallel_trials=args.parallel_trials)

    first_wall = statistics.median(run[0] for run in firsts)
    rerun_wall = statistics.median(run[0] for run in reruns)
    table = f"{args.rows:,} generated rows" if args.rows else args.data or "Ames sample"
    print(f"\nmedian over {args.repeats} repeats, {args.trials} tuning trials, {table}:")
    print(f"  full run       {first_wall:6.1f} s wall")
    print(f"  unchanged run  {rerun_wall:6.2f} s wall  ({rerun_wall / first_wall:.1%} of the full run)")


if __name__ == "__main__":
    main()
