"""The training container contract (script mode), with real subprocesses."""

import json
import tarfile
import time

import pytest

from localengine import UnsupportedConstruct
from test_engine_support import BUCKET, Env, get, model_step, parameter, training_step

CONTRACT_SCRIPT = """
    import argparse, json, os, sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_depth", type=int)
    parser.add_argument("--eta", type=float)
    parser.add_argument("--objective")
    parser.add_argument("-k")
    args = parser.parse_args()
    opt_ml = os.environ["SM_OPT_ML"]
    config = os.path.join(opt_ml, "input", "config")
    report = {
        "argv": sys.argv[1:], "cwd": os.getcwd(),
        "hyperparameters": json.load(open(os.path.join(config, "hyperparameters.json"))),
        "resourceconfig": json.load(open(os.path.join(config, "resourceconfig.json"))),
        "inputdataconfig": json.load(open(os.path.join(config, "inputdataconfig.json"))),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "TRAINING_JOB", "OMP_"))},
        "train_files": sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"])),
        "helper": __import__("helper").VALUE,
    }
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
        json.dump(report, f)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "extra.txt"), "w") as f:
        f.write("extra")
    for epoch in range(3):
        print(f"epoch={epoch} validation-rmse={10 - epoch}.5 train-rmse={epoch}")
"""


def read_model(env, uri):
    with tarfile.open(env.s3.path_for(uri)) as tar:
        return json.load(tar.extractfile("model.json"))


def test_script_mode_contract(tmp_path):
    env = Env(tmp_path)
    env.s3.put_bytes(f"{BUCKET}/data/train/train.csv", b"1,2\n")
    source = env.sourcedir({"train.py": CONTRACT_SCRIPT, "helper.py": "VALUE = 'imported'"})
    train = training_step("Train", source, channels={"train": f"{BUCKET}/data/train"},
                          hyperparameters={"max_depth": get("Parameters.MaxDepth"), "eta": "0.2", "objective": '"reg:squarederror"',
                                           "k": "1", "sagemaker_region": '"us-east-1"'},
                          metric_definitions=[{"Name": "validation-rmse", "Regex": r"validation-rmse=([0-9.]+)"},
                                              {"Name": "never-logged", "Regex": r"nope=([0-9.]+)"}])
    probe = model_step("Probe", get("Steps.Train.ModelArtifacts.S3ModelArtifacts"))
    metric = model_step("Metric", {"Std:Join": {"On": "", "Values": [
        get("Steps.Train.FinalMetricDataList['validation-rmse'].Value")]}})
    result = env.run([train, probe, metric], [parameter("MaxDepth", "Integer", 5)], max_parallel_jobs=2)
    assert result.status == "Succeeded", result.failure_reason
    properties = result.steps["Train"].properties
    job = properties["TrainingJobName"]
    model_uri = f"{BUCKET}/models/{job}/output/model.tar.gz"
    assert properties["ModelArtifacts"]["S3ModelArtifacts"] == model_uri
    assert result.steps["Probe"].properties["PrimaryContainer"]["ModelDataUrl"] == model_uri
    assert env.s3.exists(f"{BUCKET}/models/{job}/output/output.tar.gz")
    report = read_model(env, model_uri)
    assert report["argv"] == ["--eta", "0.2", "-k", "1", "--max_depth", "5", "--objective", "reg:squarederror"]
    assert report["cwd"].endswith("/opt/ml/code") and report["helper"] == "imported"
    assert report["hyperparameters"]["sagemaker_program"] == '"train.py"'
    assert report["hyperparameters"]["max_depth"] == "5"  # the Integer parameter, as the API's text
    assert report["resourceconfig"]["current_host"] == "algo-1"
    assert report["inputdataconfig"] == {"train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                                                   "RecordWrapperType": "None"}}
    assert report["train_files"] == ["train.csv"]
    sm = report["env"]
    opt_ml = sm["SM_OPT_ML"]
    assert sm["SM_CHANNEL_TRAIN"] == f"{opt_ml}/input/data/train" and sm["SM_CHANNELS"] == '["train"]'
    assert sm["SM_MODEL_DIR"] == f"{opt_ml}/model" and sm["SM_OUTPUT_DATA_DIR"] == f"{opt_ml}/output/data"
    assert sm["SM_INPUT_DIR"] == f"{opt_ml}/input" and sm["SM_OUTPUT_DIR"] == f"{opt_ml}/output"
    assert json.loads(sm["SM_HPS"]) == {"eta": 0.2, "k": 1, "max_depth": 5, "objective": "reg:squarederror"}
    assert sm["SM_HP_MAX_DEPTH"] == "5" and sm["SM_HP_OBJECTIVE"] == "reg:squarederror"
    assert "SM_HP_SAGEMAKER_PROGRAM" not in sm
    assert json.loads(sm["SM_USER_ARGS"]) == report["argv"]
    assert sm["SM_CURRENT_HOST"] == "algo-1" and json.loads(sm["SM_HOSTS"]) == ["algo-1"]
    assert int(sm["SM_NUM_CPUS"]) >= 1 and sm["TRAINING_JOB_NAME"] == job
    assert properties["FinalMetricDataList"][0]["MetricName"] == "validation-rmse"
    assert [m["Value"] for m in properties["FinalMetricDataList"]] == [8.5]  # the last value; never-logged absent
    assert result.steps["Metric"].properties["PrimaryContainer"]["ModelDataUrl"] == "8.5"


def test_failure_reason_comes_from_output_failure_and_the_log(tmp_path):
    env = Env(tmp_path)
    source = env.sourcedir({"train.py": """
        import os, sys
        print("loading data")
        open(os.path.join(os.environ["SM_OPT_ML"], "output", "failure"), "w").write("target column is empty")
        sys.exit(2)
    """})
    result = env.run([training_step("Train", source)])
    reason = result.steps["Train"].failure_reason
    assert result.status == "Failed"
    assert reason.startswith("target column is empty (exited with code 2)") and "loading data" in reason


def test_max_runtime_kills_the_process_group(tmp_path):
    env = Env(tmp_path)
    marker = tmp_path / "child-survived"
    source = env.sourcedir({"train.py": f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5); open({str(marker)!r}, 'w')"])
        print("sleeping", flush=True)
        time.sleep(30)
    """})
    started = time.monotonic()
    result = env.run([training_step("Train", source, max_runtime=1)])
    assert time.monotonic() - started < 10
    reason = result.steps["Train"].failure_reason
    assert "exceeded MaxRuntimeInSeconds (1 s)" in reason and "sleeping" in reason
    time.sleep(max(0.0, started + 2.5 - time.monotonic()))
    assert not marker.exists()  # the grandchild was killed with its group


def test_training_without_script_mode_is_unsupported(tmp_path):
    step = training_step("BuiltIn", "s3://bkt/unused")
    del step["Arguments"]["HyperParameters"]["sagemaker_program"]
    with pytest.raises(UnsupportedConstruct, match="Training step BuiltIn uses neither script mode"):
        Env(tmp_path).run([step])


def test_a_container_entrypoint_job_gets_only_what_the_platform_sets(tmp_path):
    # No training toolkit runs in such a container, so no SM_* variable exists there either.
    env = Env(tmp_path)
    script = env.s3.put_bytes(f"{BUCKET}/code/entry.py", b"""
import json, os
names = sorted(k for k in os.environ if k.startswith(("SM_", "TRAINING_JOB")) and k != "SM_OPT_ML")
out = os.path.join(os.environ["SM_OPT_ML"], "model", "env.json")
json.dump(names, open(out, "w"))
""")
    step = training_step("Train", f"{BUCKET}/code/unused.tar.gz")
    algorithm = step["Arguments"]["AlgorithmSpecification"]
    algorithm["ContainerEntrypoint"] = ["python3", str(env.s3.path_for(script))]
    result = env.run([step])
    assert result.status == "Succeeded", result.failure_reason
    with tarfile.open(env.s3.path_for(result.steps["Train"].properties["ModelArtifacts"]["S3ModelArtifacts"])) as tar:
        assert json.load(tar.extractfile("env.json")) == ["TRAINING_JOB_ARN", "TRAINING_JOB_NAME"]
