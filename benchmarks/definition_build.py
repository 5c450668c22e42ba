#!/usr/bin/env python3
"""Benchmark a cold `pipeline.py definition` against the cold import of the SDK's pipeline module.

Cold: a new process each time and no cache of built definitions (each run gets an empty cache
directory), so the run imports the SDK and builds every step. The two commands alternate, A B A B,
and the ratio is taken pair by pair, so a drift in the machine's speed cancels out.

    python benchmarks/definition_build.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SDK_IMPORT = [sys.executable, "-c", "import sagemaker.mlops.workflow.pipeline"]
DEFINITION = [sys.executable, str(PROJECT_DIR / "pipeline.py"), "definition"]


def timed(command: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-definition-") as cache:
        environment = {**os.environ, "XDG_CACHE_HOME": cache, "AWS_DEFAULT_REGION": "us-east-1"}
        started = time.perf_counter()
        done = subprocess.run(command, env=environment, capture_output=True)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr.decode()[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="pairs of runs after one warm-up pair (default 7)")
    args = parser.parse_args()
    timed(DEFINITION), timed(SDK_IMPORT)  # warm the file system cache
    builds, imports = [], []
    for _ in range(args.runs):
        builds.append(timed(DEFINITION))
        imports.append(timed(SDK_IMPORT))
    ratios = [build / sdk for build, sdk in zip(builds, imports)]
    print(f"cold `pipeline.py definition`: median {statistics.median(builds):.2f} s "
          f"(min {min(builds):.2f}, max {max(builds):.2f})")
    print(f"cold `import sagemaker.mlops.workflow.pipeline`: median {statistics.median(imports):.2f} s "
          f"(min {min(imports):.2f}, max {max(imports):.2f})")
    print(f"ratio, pair by pair: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
