#!/usr/bin/env python3
"""Benchmark the last mile: the local endpoint's latency and `predict`'s throughput.

Registers a version with a local run (unless --local-dir already holds one), starts
`pipeline.py serve` as its own process and measures from another over localhost:
single-row requests (CSV and JSON; p50 and p99 of --requests each, each request on a new connection
as the server closes them), one request of 10,000 rows
(median of 5), and `pipeline.py predict` on a table of --predict-rows rows (rows of the test split,
resampled with a seed) as a whole process, start-up included. Prints a table and writes it as JSON.

    python benchmarks/serving.py [--local-dir DIR] [--requests 1000] [--predict-rows 1000000]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from localengine import LocalS3  # noqa: E402
from pipelines.local import local_registry  # noqa: E402

LISTENING = re.compile(r" on (http://127\.0\.0\.1:\d+) ")


def pipeline(*arguments: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_DIR / "pipeline.py"), *arguments], text=True,
                          capture_output=True, check=True, **options)


def test_rows(local_dir: Path) -> pd.DataFrame:
    """The registered version's test split, as raw text (what a client would send)."""
    package = local_registry(local_dir).list_packages("HousePriceModels")[-1]
    s3 = LocalS3(local_dir / "s3")
    metrics = s3.path_for(package["ModelMetrics"]["ModelDataQuality"]["Statistics"]["S3Uri"])
    test_file = next((metrics.parent.parent / "test").glob("*.parquet"))
    # As a client sends them: text, a missing value empty.
    return pd.read_csv(io.StringIO(pd.read_parquet(test_file).to_csv(index=False)), dtype=str, keep_default_na=False)


def latencies(url: str, body: bytes, content_type: str, count: int) -> list[float]:
    """Seconds per request, each on a new connection, with the standard library's client (requests adds
    about 1.5 ms of its own per call here)."""
    address = urlsplit(url)
    headers = {"Content-Type": content_type, "Accept": "application/json"}

    def post() -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        connection.request("POST", address.path, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        connection.close()
        if answer.status != 200:
            raise SystemExit(f"{url} answered {answer.status}")

    for _ in range(20):  # warm-up
        post()
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        post()
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-dir", type=Path, help="a local run directory with a registered version "
                        "(default: a fresh run with 12 tuning trials in a temporary directory)")
    parser.add_argument("--requests", type=int, default=1000, help="single-row requests per format")
    parser.add_argument("--predict-rows", type=int, default=1_000_000, help="rows of the table `predict` scores")
    parser.add_argument("--output", type=Path, default=PROJECT_DIR / "benchmarks" / "serving.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        local_dir = args.local_dir or Path(scratch) / "local"
        if not local_registry(local_dir).list_packages("HousePriceModels"):
            print(f"registering a version with a local run in {local_dir} ...", flush=True)
            pipeline("run", "--local-dir", str(local_dir))
        rows = test_rows(local_dir).drop(columns=["SalePrice"])
        server = subprocess.Popen([sys.executable, str(PROJECT_DIR / "pipeline.py"), "serve", "--local-dir",
                                   str(local_dir), "--port", "0"], stdout=subprocess.PIPE, text=True)
        try:
            url = LISTENING.search(server.stdout.readline()).group(1)
            while requests.get(f"{url}/ping", timeout=2).status_code != 200:
                time.sleep(0.1)
            invocations = f"{url}/invocations"
            one_csv = rows.head(1).to_csv(index=False).encode()
            one_json = json.dumps(rows.head(1).to_dict(orient="records")).encode()
            csv_seconds = latencies(invocations, one_csv, "text/csv", args.requests)
            json_seconds = latencies(invocations, one_json, "application/json", args.requests)
            ten_thousand = rows.sample(10_000, replace=True, random_state=0).to_csv(index=False).encode()
            batch_seconds = latencies(invocations, ten_thousand, "text/csv", 5)
        finally:
            server.terminate()
            server.wait(timeout=60)

        table = Path(scratch) / "table.csv"
        sample = rows.sample(100_000, replace=True, random_state=0).to_csv(index=False, header=False)
        with open(table, "w") as handle:
            handle.write(",".join(rows.columns) + "\n")
            for _ in range(args.predict_rows // 100_000):
                handle.write(sample)
            handle.write("".join(sample.splitlines(keepends=True)[:args.predict_rows % 100_000]))
        started = time.perf_counter()
        pipeline("predict", "--local-dir", str(local_dir), "--data", str(table), "-o",
                 str(Path(scratch) / "scored.csv"))
        predict_seconds = time.perf_counter() - started

    figures = {
        "single_row_csv_ms": {"p50": 1000 * np.percentile(csv_seconds, 50), "p99": 1000 * np.percentile(csv_seconds, 99)},
        "single_row_json_ms": {"p50": 1000 * np.percentile(json_seconds, 50),
                               "p99": 1000 * np.percentile(json_seconds, 99)},
        "rows_10000_one_request_s": statistics.median(batch_seconds),
        "predict": {"rows": args.predict_rows, "seconds": predict_seconds,
                    "rows_per_second": args.predict_rows / predict_seconds},
    }
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"single row, CSV:   p50 {figures['single_row_csv_ms']['p50']:.2f} ms, "
          f"p99 {figures['single_row_csv_ms']['p99']:.2f} ms ({args.requests:,} requests)")
    print(f"single row, JSON:  p50 {figures['single_row_json_ms']['p50']:.2f} ms, "
          f"p99 {figures['single_row_json_ms']['p99']:.2f} ms")
    print(f"10,000 rows in one request: {figures['rows_10000_one_request_s']:.3f} s (median of 5)")
    print(f"predict, {args.predict_rows:,} rows: {predict_seconds:.1f} s, "
          f"{figures['predict']['rows_per_second']:,.0f} rows/s (whole process)")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
