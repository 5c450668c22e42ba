"""Faithful mode: jobs run in environments pinned like their framework images, and script-mode
training goes through the images' own training toolkits, so what fails in the cloud fails here, with
the message the cloud shows. The environments are built once per machine (~/.cache) and reused."""

from __future__ import annotations

import json

import pytest

from localengine.images import FRAMEWORK_IMAGES, framework_image
from pipelines.definition import build_definition
from pipelines.local import image_environments, local_registry, run_locally
from pipelines.settings import Settings
from test_engine_support import BUCKET, Env, processing_step, training_step

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"


@pytest.fixture(scope="module")
def images():
    return image_environments()


def sklearn_job(env, code: str):
    step = processing_step("Job", env.script("job.py", code))
    step["Arguments"]["AppSpecification"]["ImageUri"] = SKLEARN_IMAGE
    return step


def test_the_images_are_recognised_by_their_ecr_uris():
    assert framework_image(SKLEARN_IMAGE).requirements.name == "sagemaker-scikit-learn-1.9-0.txt"
    assert framework_image(XGBOOST_IMAGE).toolkit == "sagemaker_containers"
    assert all(image.requirements.is_file() for image in FRAMEWORK_IMAGES)


def test_a_scikit_learn_image_job_importing_xgboost_fails_as_in_the_cloud(tmp_path, images):
    env = Env(tmp_path)
    code = "import xgboost\nprint('xgboost', xgboost.__version__)\n"
    assert env.run([sklearn_job(env, code)]).succeeded  # fast mode: the caller's packages
    faithful = env.run([sklearn_job(env, code)], images=images)
    assert faithful.failed_step == "Job"
    assert "ModuleNotFoundError: No module named 'xgboost'" in faithful.failure_reason


def test_jobs_see_the_images_versions_and_no_caller_environment(tmp_path, images, monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "caller-secret")
    monkeypatch.setenv("SOME_CALLER_SETTING", "x")
    env = Env(tmp_path)
    code = """
        import json, os, socket, sys
        import numpy, pandas, sklearn
        out = os.path.join(os.environ["SM_OPT_ML"], "processing", "out")
        os.makedirs(out, exist_ok=True)
        json.dump({"python": "%d.%d" % sys.version_info[:2], "numpy": numpy.__version__, "pandas": pandas.__version__,
                   "sklearn": sklearn.__version__, "algo": socket.gethostbyname("algo-1"),
                   "env": sorted(os.environ)}, open(os.path.join(out, "facts.json"), "w"))
    """
    step = sklearn_job(env, code)
    step["Arguments"]["ProcessingOutputConfig"]["Outputs"] = [{"OutputName": "out", "S3Output": {
        "S3Uri": f"{BUCKET}/facts", "LocalPath": "/opt/ml/processing/out", "S3UploadMode": "EndOfJob"}}]
    result = env.run([step], images=images)
    assert result.succeeded, result.failure_reason
    facts = json.loads(env.s3.read_bytes(f"{BUCKET}/facts/facts.json"))
    assert (facts["numpy"], facts["pandas"], facts["sklearn"]) == ("2.5.1", "2.2.3", "1.9.0")
    assert facts["python"] == images.describe(framework_image(SKLEARN_IMAGE))["python"].rsplit(".", 1)[0]
    assert facts["algo"] == "127.0.0.1"  # the cluster's host names resolve to this machine
    assert "SOME_CALLER_SETTING" not in facts["env"] and "AWS_SESSION_TOKEN" not in facts["env"]


FAILING_TRAINING = {"train.py": """
    import sys
    from pathlib import Path
    import os
    Path(os.environ["SM_OPT_ML"], "output").mkdir(parents=True, exist_ok=True)
    Path(os.environ["SM_OPT_ML"], "output", "failure").write_text("TargetColumn 'price' is not a column")
    sys.exit("TargetColumn 'price' is not a column")
"""}


@pytest.mark.parametrize("image, reason", [
    # sagemaker-training keeps a failure file the script wrote...
    (SKLEARN_IMAGE, "TargetColumn 'price' is not a column"),
    # ...sagemaker-containers overwrites it with its own.
    (XGBOOST_IMAGE, "ExecuteUserScriptError"),
])
def test_a_training_failure_reads_as_the_images_toolkit_reports_it(tmp_path, images, image, reason):
    env = Env(tmp_path)
    step = training_step("Train", env.sourcedir(FAILING_TRAINING))
    step["Arguments"]["AlgorithmSpecification"]["TrainingImage"] = image
    fast = env.run([step])
    assert fast.failure_reason.startswith("TargetColumn 'price' is not a column")
    faithful = env.run([step], images=images)
    assert faithful.failed_step == "Train"
    assert faithful.failure_reason.startswith(reason), faithful.failure_reason


def test_the_sample_pipeline_passes_in_faithful_mode(tmp_path, images):
    built = build_definition(Settings(tuning_max_jobs=2, tuning_max_parallel_jobs=2))
    result = run_locally(built, tmp_path, images=images).result
    assert result.succeeded, result.failure_reason
    assert not any(step.cache_hit for step in result.steps.values())
    (package,) = local_registry(tmp_path).list_packages("HousePriceModels")
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    baseline_log = result.steps["TrainBaseline"].log_path.read_text()
    assert "sagemaker_training" in baseline_log or "Invoking user" in baseline_log  # the toolkit ran it
    trial_logs = list((tmp_path / "work" / "executions").glob("*/logs/TuneXGBoost/*.log"))
    assert trial_logs and all("pip install" in log.read_text() for log in trial_logs)  # sagemaker-containers
