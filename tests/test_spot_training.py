"""Managed spot training: the XGBoost job checkpoints, and a job whose instance is reclaimed resumes to the
model an uninterrupted job trains. Real script, real engine, a real kill of the job's process."""

import io
import json
import re
import sys
import tarfile
from pathlib import Path

import pytest

from localengine import DefinitionError

from test_engine_support import BUCKET, Env, prepared_sample, xgboost_training_step

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

CHECKPOINTS = f"{BUCKET}/checkpoints/xgboost"
# Three boosting segments for the early-stopped fit and for the refit: the interruption comes mid-fit.
HYPERPARAMETERS = {"num_round": "250", "early_stopping_rounds": "250", "nthread": "1", "max_depth": "3"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_sample(tmp_path_factory.mktemp("prepared"))


def spot_training_step(env: Env, prepared: Path, **overrides):
    step = xgboost_training_step(env, prepared, HYPERPARAMETERS)
    step["Arguments"].update(EnableManagedSpotTraining=True,
                             CheckpointConfig={"S3Uri": CHECKPOINTS, "LocalPath": "/opt/ml/checkpoints"})
    step["Arguments"]["StoppingCondition"]["MaxWaitTimeInSeconds"] = 1200
    step["Arguments"].update(overrides)
    return step


def trained_booster(env: Env, result) -> bytes:
    uri = result.steps["Train"].properties["ModelArtifacts"]["S3ModelArtifacts"]
    with tarfile.open(fileobj=io.BytesIO(env.s3.read_bytes(uri))) as archive:
        return archive.extractfile("xgboost-model.json").read()


def test_an_interrupted_spot_job_resumes_from_its_checkpoints_to_the_same_model(tmp_path, prepared):
    uninterrupted_env, interrupted_env = Env(tmp_path / "a"), Env(tmp_path / "b")
    uninterrupted = uninterrupted_env.run([spot_training_step(uninterrupted_env, prepared)])
    interrupted = interrupted_env.run([spot_training_step(interrupted_env, prepared)], interrupt_spot_jobs=True)
    assert uninterrupted.status == interrupted.status == "Succeeded", interrupted.failure_reason

    log = interrupted.steps["Train"].log_path.read_text()
    assert log.count("--- spot interruption (simulated)") == 1
    assert log.count("validation-rmse:") == 1  # the first start was stopped before it finished
    assert "spot interruption" not in uninterrupted.steps["Train"].log_path.read_text()
    # The restarted job found the first start's checkpoint: a partly boosted fit (a segment or two of 100 rounds,
    # as the engine saw the first checkpoint in time), not a finished one.
    assert re.search(r"selection: resuming after round [12]00 from the job's checkpoint", log), log
    job = interrupted.steps["Train"].properties["TrainingJobName"]
    saved = json.loads(interrupted_env.s3.read_bytes(f"{CHECKPOINTS}/{job}/selection.json"))
    assert len(saved["history"]) == 250
    assert trained_booster(interrupted_env, interrupted) == trained_booster(uninterrupted_env, uninterrupted)


def test_spot_training_without_a_long_enough_wait_is_refused_before_anything_runs(tmp_path, prepared):
    env = Env(tmp_path)
    step = spot_training_step(env, prepared)
    step["Arguments"]["StoppingCondition"]["MaxWaitTimeInSeconds"] = 60
    with pytest.raises(DefinitionError, match="MaxWaitTimeInSeconds, at least MaxRuntimeInSeconds"):
        env.run([step])
