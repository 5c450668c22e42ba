#!/usr/bin/env python3
"""Benchmark Preprocess on one processing instance against the same job on two simulated instances.

A seeded table (scale.py's generator) is written as several CSV files; then the real Preprocess script runs through
the local engine as a processing job with InstanceCount 1 and with InstanceCount 2 (the data input ShardedByS3Key:
each host reads its share of the files, the leader decides for both). Each job runs in a process of its own; the
figures are its wall clock and the peak resident memory of its largest process (wait4). Prints a table and writes
it as JSON.

    python benchmarks/processing_hosts.py                  # 2M rows in 8 files, 1 and 2 instances
    python benchmarks/processing_hosts.py --rows 10000000 --hosts 2,4 --json benchmarks/processing-hosts-10m.json \
        --table <scale.py's 10M table.csv>
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "scripts"), str(PROJECT_DIR / "benchmarks")]

from hosts import BUCKET, measured  # noqa: E402
from scale import TARGET, generate_table, write_results  # noqa: E402

CODE_DIR = "/opt/ml/processing/input/code"


def processing_step(s3, hosts: int) -> dict:
    from steps.code_bundle import CodeBundle

    bundle = CodeBundle.for_script("preprocess.py")
    for name, content in bundle.files:
        s3.put_bytes(f"{BUCKET}/code/{name}", content)
    inputs = [{"InputName": name, "S3Input": {
        "S3Uri": uri, "LocalPath": path, "S3DataType": "S3Prefix", "S3InputMode": "File",
        "S3DataDistributionType": distribution, "S3CompressionType": "None"}}
        for name, uri, path, distribution in (
            ("code", f"{BUCKET}/code/", CODE_DIR, "FullyReplicated"),
            ("data", f"{BUCKET}/input/", "/opt/ml/processing/input/data", "ShardedByS3Key"))]
    outputs = [{"OutputName": name, "S3Output": {"S3Uri": f"{BUCKET}/prepared/{hosts}/{name}",
                                                 "LocalPath": f"/opt/ml/processing/{name}", "S3UploadMode": "EndOfJob"}}
               for name in ("train", "validation", "test", "features", "report")]
    return {"Name": "Preprocess", "Type": "Processing", "Arguments": {
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": hosts,
                                                  "VolumeSizeInGB": 30}},
        "AppSpecification": {"ImageUri": "local/sklearn:1",
                             "ContainerEntrypoint": ["python3", f"{CODE_DIR}/preprocess.py"],
                             "ContainerArguments": ["--target-column", TARGET, "--input-uri", f"{BUCKET}/input/"]},
        "RoleArn": "arn:aws:iam::123456789012:role/benchmark", "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": outputs}, "StoppingCondition": {"MaxRuntimeInSeconds": 86400}}}


def run_job(work: Path, hosts: int) -> None:
    """In a process of its own: the job through the engine; prints the rows per split it wrote."""
    from localengine import LocalS3, run_pipeline

    s3 = LocalS3(work / "s3")
    definition = {"Version": "2020-12-01", "Parameters": [], "Steps": [processing_step(s3, hosts)]}
    result = run_pipeline(definition, s3=s3, work_dir=work / f"engine-{hosts}")
    if result.status != "Succeeded":
        sys.exit(result.failure_reason)
    report = json.loads(s3.read_bytes(f"{BUCKET}/prepared/{hosts}/report/data-report.json"))
    print(json.dumps(report["splits"]))


def split_into_files(table: Path, rows: int, files: int, directory: Path) -> None:
    """The CSV's ``rows`` rows (one line each) in ``files`` consecutive files of near-equal size, each with the
    header."""
    size = -(-rows // files)
    with table.open(encoding="utf-8", newline="") as source:
        header = source.readline()
        for number in range(files):
            with (directory / f"part-{number:03d}.csv").open("w", encoding="utf-8", newline="") as part:
                part.write(header)
                part.writelines(itertools.islice(source, size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--hosts", type=lambda text: [int(part) for part in text.split(",")], default=[1, 2],
                        help="instance counts to run, comma-separated (default 1,2)")
    parser.add_argument("--json", type=Path, default=PROJECT_DIR / "benchmarks" / "processing-hosts.json")
    parser.add_argument("--table", type=Path, help="a table scale.py generated with --rows rows, instead of a new one")
    parser.add_argument("--run-job", type=int, help=argparse.SUPPRESS)  # hosts, in the job's own process
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_job:
        run_job(args.work, args.run_job)
        return

    from localengine import LocalS3

    work = Path(tempfile.mkdtemp(prefix="bench-processing-hosts-"))
    try:
        table = args.table or work / "table.csv"
        if not args.table:
            generate_table(args.rows, table)
        staged = LocalS3(work / "s3").path_for(f"{BUCKET}/input/")
        staged.mkdir(parents=True)
        split_into_files(table, args.rows, args.files, staged)
        if not args.table:
            table.unlink()
        results = []
        print(f"{'hosts':>5} | {'seconds':>8} | {'largest process GB':>18} | splits")
        for hosts in args.hosts:
            seconds, peak_gb, output = measured([sys.executable, __file__, "--run-job", str(hosts),
                                                 "--work", str(work)])
            splits = json.loads(output.strip().splitlines()[-1])
            results.append({"hosts": hosts, "seconds": round(seconds, 1), "peak_gb": round(peak_gb, 2),
                            "splits": splits})
            print(f"{hosts:>5} | {seconds:>8.1f} | {peak_gb:>18.2f} | {splits}", flush=True)
            shutil.rmtree(work / f"engine-{hosts}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(args.json, results, rows=args.rows, files=args.files)


if __name__ == "__main__":
    main()
