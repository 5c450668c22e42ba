#!/usr/bin/env python3
"""Benchmark XGBoost training (a tuning trial and the refit of its choice) on one host against two simulated hosts.

A seeded table (scale.py's generator) goes through Preprocess with `--shards 2`; then the same two training jobs
run through the local engine with InstanceCount 1 and with InstanceCount 2 (train and validation
ShardedByS3Key: each host reads one part, and XGBoost trains across both through its collective). The
machine's cores are shared out between the hosts, as the engine does. Each host count runs in a process of its
own; the figures are its wall clock (both jobs), the peak resident memory of its largest process (wait4), and the
test RMSE of the model trained. Prints a table and writes it as JSON.

    python benchmarks/hosts.py                 # 200k rows, 300 rounds
"""

from __future__ import annotations

import argparse
import io
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
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "scripts"), str(PROJECT_DIR / "benchmarks")]

from scale import TARGET, generate_table, write_results  # noqa: E402

BUCKET = "s3://benchmark"


def training_steps(s3, prepared: Path, hosts: int, rounds: int) -> list[dict]:
    """A tuning trial ("Select": ``rounds`` rounds, no early stop) and the refit of its choice ("Train"), each on
    ``hosts`` instances."""
    from steps.code_bundle import CodeBundle

    channels = []
    for name, output in (("train", "encoded-train"), ("validation", "encoded-validation"), ("features", "features")):
        s3.publish([(prepared / output, f"{BUCKET}/prepared/{output}")])
        channels.append({"ChannelName": name, "InputMode": "File", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"{BUCKET}/prepared/{output}",
            "S3DataDistributionType": "FullyReplicated" if name == "features" else "ShardedByS3Key"}}})
    selection = {"ChannelName": "selection", "InputMode": "File", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": {"Get": "Steps.Select.ModelArtifacts.S3ModelArtifacts"},
        "S3DataDistributionType": "FullyReplicated"}}}
    steps = []
    for name, script, inputs, hyperparameters in (
            ("Select", "train_xgboost.py", channels, {"num_round": str(rounds), "early_stopping_rounds": str(rounds)}),
            ("Train", "refit_xgboost.py", [*channels, selection], {})):
        source = s3.put_bytes(f"{BUCKET}/code/{name}/sourcedir.tar.gz",
                              CodeBundle.for_script(script).sourcedir_tarball)
        steps.append({"Name": name, "Type": "Training", "Arguments": {
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "local/xgboost:1"},
            "HyperParameters": {**hyperparameters, "sagemaker_program": json.dumps(script),
                                "sagemaker_submit_directory": json.dumps(source)},
            "InputDataConfig": inputs,
            "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/models/{name}"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": hosts, "VolumeSizeInGB": 30},
            "RoleArn": "arn:aws:iam::123456789012:role/benchmark",
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400}}})
    return steps


def run_job(prepared: Path, work: Path, hosts: int, rounds: int) -> None:
    """In a process of its own: the jobs through the engine; prints the test RMSE of the refit's model."""
    import xgboost

    from features import FEATURE_SPEC_FILE, decode_target, target_values, transform_features
    from localengine import LocalS3, run_pipeline
    from metrics import rmse

    s3 = LocalS3(work / "s3")
    definition = {"Version": "2020-12-01", "Parameters": [], "Steps": training_steps(s3, prepared, hosts, rounds)}
    result = run_pipeline(definition, s3=s3, work_dir=work / "engine")
    if result.status != "Succeeded":
        sys.exit(result.failure_reason)
    uri = result.steps["Train"].properties["ModelArtifacts"]["S3ModelArtifacts"]
    with tarfile.open(fileobj=io.BytesIO(s3.read_bytes(uri))) as archive:
        booster = xgboost.Booster(model_file=bytearray(archive.extractfile("xgboost-model.json").read()))
        spec = json.load(archive.extractfile(FEATURE_SPEC_FILE))
    test = pd.read_parquet(prepared / "test" / "test.parquet")
    predicted = decode_target(booster.inplace_predict(transform_features(test, spec, np.float32)), spec)
    print(json.dumps({"test_rmse": rmse(target_values(test, spec["target"]), predicted)}))


def measured(command: list[str]) -> tuple[float, float, str]:
    """Wall-clock seconds, peak resident GB of the largest process (wait4), and the output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024 ** 2, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=300,
                        help="the trial's boosting rounds (no early stop; default 300)")
    parser.add_argument("--json", type=Path, default=PROJECT_DIR / "benchmarks" / "hosts.json")
    parser.add_argument("--run-job", type=int, help=argparse.SUPPRESS)  # hosts, in the job's own process
    parser.add_argument("--prepared", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_job:
        run_job(args.prepared, args.work, args.run_job, args.rounds)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    try:
        generate_table(args.rows, work / "input" / "table.csv")
        subprocess.run([sys.executable, str(PROJECT_DIR / "scripts" / "preprocess.py"), "--target-column", TARGET,
                        "--input-dir", str(work / "input"), "--output-dir", str(work / "prepared"), "--shards", "2"],
                       check=True, stdout=subprocess.DEVNULL, env={**os.environ, "SM_OPT_ML": str(work)})
        results = []
        print(f"{'hosts':>5} | {'seconds':>8} | {'largest process GB':>18} | {'test RMSE':>10}")
        for hosts in (1, 2):
            seconds, peak_gb, output = measured([
                sys.executable, __file__, "--run-job", str(hosts), "--rounds", str(args.rounds),
                "--prepared", str(work / "prepared"), "--work", str(work / f"job-{hosts}")])
            test_rmse = json.loads(output.strip().splitlines()[-1])["test_rmse"]
            results.append({"hosts": hosts, "seconds": round(seconds, 1), "peak_gb": round(peak_gb, 2),
                            "test_rmse": round(test_rmse, 1)})
            print(f"{hosts:>5} | {seconds:>8.1f} | {peak_gb:>18.2f} | {test_rmse:>10,.0f}", flush=True)
            shutil.rmtree(work / f"job-{hosts}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(args.json, results, rows=args.rows, rounds=args.rounds)


if __name__ == "__main__":
    main()
