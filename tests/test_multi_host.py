"""Multi-instance training: two simulated hosts, each with its ShardedByS3Key share of the splits, train one
XGBoost model through XGBoost's collective. Real script, real engine, real processes that talk over sockets."""

import io
import json
import sys
import time
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost

from pipelines.local import image_environments

from test_engine_support import BUCKET, Env, prepared_sample, training_step, xgboost_training_steps

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from features import FEATURE_SPEC_FILE, decode_target, target_values, transform_features  # noqa: E402
from metrics import rmse  # noqa: E402

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"
HYPERPARAMETERS = {"num_round": "400", "early_stopping_rounds": "50", "nthread": "1", "target_transform": "log1p"}
# A model trained across two hosts differs from a one-host model trained on the same rows: each host samples
# its own rows for `subsample`, and the quantile sketches are merged across hosts. Held-out errors agree
# within this fraction.
EQUIVALENCE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The Ames sample through Preprocess for two training instances: train and validation in two parts."""
    return prepared_sample(tmp_path_factory.mktemp("prepared"), "--shards", "2")


def sharded_training_steps(env: Env, prepared: Path, instance_count: int, **hyperparameters: str):
    """A trial and the refit of its choice, each on ``instance_count`` instances."""
    steps = xgboost_training_steps(env, prepared, {**HYPERPARAMETERS, **hyperparameters})
    for step in steps:
        step["Arguments"]["ResourceConfig"]["InstanceCount"] = instance_count
        for channel in step["Arguments"]["InputDataConfig"]:
            if channel["ChannelName"] in ("train", "validation"):
                channel["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "ShardedByS3Key"
    return steps


def trained_model(env: Env, result) -> tuple[xgboost.Booster, dict]:
    uri = result.steps["Train"].properties["ModelArtifacts"]["S3ModelArtifacts"]
    with tarfile.open(fileobj=io.BytesIO(env.s3.read_bytes(uri))) as archive:
        booster = xgboost.Booster(model_file=bytearray(archive.extractfile("xgboost-model.json").read()))
        spec = json.load(archive.extractfile(FEATURE_SPEC_FILE))
    return booster, spec


def test_two_hosts_train_through_the_xgboost_images_toolkit(tmp_path, prepared):
    """Faithful mode: each host's process is the image's own training toolkit, which waits until every host
    name resolves and then starts the script."""
    env = Env(tmp_path)
    steps = sharded_training_steps(env, prepared, 2, num_round="60", early_stopping_rounds="60")
    for step in steps:
        step["Arguments"]["AlgorithmSpecification"]["TrainingImage"] = XGBOOST_IMAGE
    result = env.run(steps, images=image_environments())
    assert result.status == "Succeeded", result.failure_reason
    for name, line in (("Select", "chosen: 72 rounds for a refit on 2,456 train + validation rows"),
                       ("Train", "refit on 2,456 train + validation rows on 2 hosts for 72 rounds")):
        log = result.steps[name].log_path
        for host_log in (log, log.with_name(f"{log.stem}.algo-2{log.suffix}")):
            text = host_log.read_text()
            assert "pip install" in text  # sagemaker-containers ran the script
            assert line in text


def test_two_hosts_train_a_model_equivalent_to_one_host(tmp_path, prepared):
    one_env, two_env = Env(tmp_path / "one"), Env(tmp_path / "two")
    one = one_env.run(sharded_training_steps(one_env, prepared, 1))
    two = two_env.run(sharded_training_steps(two_env, prepared, 2))
    assert one.status == two.status == "Succeeded", two.failure_reason

    leader_log = two.steps["Train"].log_path
    for log in (leader_log, leader_log.with_name(f"{leader_log.stem}.algo-2{leader_log.suffix}")):
        assert "refit on 2,456 train + validation rows on 2 hosts" in log.read_text()
    test = pd.read_parquet(prepared / "test" / "test.parquet")
    scores = {}
    for name, (env, result) in {"one": (one_env, one), "two": (two_env, two)}.items():
        booster, spec = trained_model(env, result)
        predicted = decode_target(booster.inplace_predict(transform_features(test, spec, np.float32)), spec)
        scores[name] = rmse(target_values(test, spec["target"]), predicted)
    assert scores["two"] == pytest.approx(scores["one"], rel=EQUIVALENCE_TOLERANCE)


HOST_REPORT = """
    import json, os, socket
    config = json.load(open(os.path.join(os.environ["SM_OPT_ML"], "input", "config", "resourceconfig.json")))
    report = {"host": os.environ["SM_CURRENT_HOST"], "hosts": json.loads(os.environ["SM_HOSTS"]),
              "config": [config["current_host"], config["hosts"]],
              "shards": sorted(os.listdir(os.environ["SM_CHANNEL_SHARDED"])),
              "replicated": sorted(os.listdir(os.environ["SM_CHANNEL_REPLICATED"])),
              "peer": socket.gethostbyname("algo-2"), "port": os.environ["LOCALENGINE_CLUSTER_PORT"]}
    json.dump(report, open(os.path.join(os.environ["SM_MODEL_DIR"], "host.json"), "w"))
    print("host report:", json.dumps(report, sort_keys=True))
"""


def test_each_host_gets_its_name_its_shard_and_the_replicated_inputs(tmp_path):
    env = Env(tmp_path)
    for part in range(1, 6):
        env.s3.put_bytes(f"{BUCKET}/data/sharded/part-{part}.csv", b"x\n1\n")
    env.s3.put_bytes(f"{BUCKET}/data/replicated/spec.json", b"{}")
    step = training_step("Train", env.sourcedir({"train.py": HOST_REPORT}), channels={
        "sharded": f"{BUCKET}/data/sharded", "replicated": f"{BUCKET}/data/replicated"})
    step["Arguments"]["ResourceConfig"]["InstanceCount"] = 2
    step["Arguments"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "ShardedByS3Key"
    result = env.run([step])
    assert result.status == "Succeeded", result.failure_reason

    log = result.steps["Train"].log_path
    reports = [json.loads(path.read_text().split("host report: ")[1]) for path in
               (log, log.with_name(f"{log.stem}.algo-2{log.suffix}"))]
    assert [report["host"] for report in reports] == ["algo-1", "algo-2"]
    assert all(report["hosts"] == ["algo-1", "algo-2"] for report in reports)
    assert [report["config"] for report in reports] == [["algo-1", ["algo-1", "algo-2"]],
                                                        ["algo-2", ["algo-1", "algo-2"]]]
    # Every object exactly once over the hosts; the replicated channel whole on each.
    assert [report["shards"] for report in reports] == [["part-1.csv", "part-3.csv", "part-5.csv"],
                                                        ["part-2.csv", "part-4.csv"]]
    assert all(report["replicated"] == ["spec.json"] for report in reports)
    assert all(report["peer"] == "127.0.0.1" for report in reports)
    assert reports[0]["port"] == reports[1]["port"]
    # The job's model is the leader's.
    uri = result.steps["Train"].properties["ModelArtifacts"]["S3ModelArtifacts"]
    with tarfile.open(fileobj=io.BytesIO(env.s3.read_bytes(uri))) as archive:
        assert json.load(archive.extractfile("host.json"))["host"] == "algo-1"


def test_a_failing_host_fails_the_job_and_stops_the_others(tmp_path):
    env = Env(tmp_path)
    source = env.sourcedir({"train.py": """
        import os, sys, time
        if os.environ["SM_CURRENT_HOST"] == "algo-2":
            open(os.path.join(os.environ["SM_OPT_ML"], "output", "failure"), "w").write("shard is empty")
            sys.exit(3)
        print("waiting for the other host", flush=True)
        time.sleep(60)
    """})
    step = training_step("Train", source)
    step["Arguments"]["ResourceConfig"]["InstanceCount"] = 2
    started = time.monotonic()
    result = env.run([step])
    assert time.monotonic() - started < 30
    assert result.status == "Failed"
    assert result.steps["Train"].failure_reason.startswith("shard is empty (exited with code 3)")
