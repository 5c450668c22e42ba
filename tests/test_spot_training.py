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

from test_engine_support import BUCKET, Env, prepared_sample, xgboost_training_steps

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

CHECKPOINTS = f"{BUCKET}/checkpoints/xgboost"
# Three boosting segments for the trial's early-stopped fit and for the refit (about 300 rounds, scaled to 2,456 rows
# from 2,052): each job's interruption comes mid-fit. Both jobs keep checkpoints under one prefix, as tuning trials do:
# the refit starts with the trial's restored, and is still interrupted only once it has saved its own.
HYPERPARAMETERS = {"num_round": "250", "early_stopping_rounds": "250", "nthread": "1", "max_depth": "3"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_sample(tmp_path_factory.mktemp("prepared"))


def spot_training_steps(env: Env, prepared: Path):
    """A trial and the refit of its choice, both on spot instances."""
    steps = xgboost_training_steps(env, prepared, HYPERPARAMETERS)
    for step in steps:
        step["Arguments"].update(EnableManagedSpotTraining=True,
                                 CheckpointConfig={"S3Uri": CHECKPOINTS, "LocalPath": "/opt/ml/checkpoints"})
        step["Arguments"]["StoppingCondition"]["MaxWaitTimeInSeconds"] = 1200
    return steps


def artefact_file(env: Env, result, step: str, name: str) -> bytes:
    uri = result.steps[step].properties["ModelArtifacts"]["S3ModelArtifacts"]
    with tarfile.open(fileobj=io.BytesIO(env.s3.read_bytes(uri))) as archive:
        return archive.extractfile(name).read()


def test_interrupted_spot_jobs_resume_from_their_checkpoints_to_the_same_choice_and_model(tmp_path, prepared):
    uninterrupted_env, interrupted_env = Env(tmp_path / "a"), Env(tmp_path / "b")
    uninterrupted = uninterrupted_env.run(spot_training_steps(uninterrupted_env, prepared))
    interrupted = interrupted_env.run(spot_training_steps(interrupted_env, prepared), interrupt_spot_jobs=True)
    assert uninterrupted.status == interrupted.status == "Succeeded", interrupted.failure_reason

    for step, fit in (("Select", "selection"), ("Train", "refit")):
        log = interrupted.steps[step].log_path.read_text()
        assert log.count("--- spot interruption (simulated)") == 1
        assert log.count("validation-rmse:") == 1  # the first start was stopped before it finished
        assert "spot interruption" not in uninterrupted.steps[step].log_path.read_text()
        # The restarted job found the first start's checkpoint: a partly boosted fit (a segment or two of 100
        # rounds, as the engine saw the first checkpoint in time), not a finished one.
        assert re.search(rf"{fit}: resuming after round [12]00 from the job's checkpoint", log), log
    job = interrupted.steps["Select"].properties["TrainingJobName"]
    saved = json.loads(interrupted_env.s3.read_bytes(f"{CHECKPOINTS}/{job}/selection.json"))
    assert len(saved["history"]) == 250
    # The same choice, to the last digit of its score, and the same trees.
    assert (artefact_file(interrupted_env, interrupted, "Select", "selection.json")
            == artefact_file(uninterrupted_env, uninterrupted, "Select", "selection.json"))
    assert (artefact_file(interrupted_env, interrupted, "Train", "xgboost-model.json")
            == artefact_file(uninterrupted_env, uninterrupted, "Train", "xgboost-model.json"))


def test_spot_training_without_a_long_enough_wait_is_refused_before_anything_runs(tmp_path, prepared):
    env = Env(tmp_path)
    steps = spot_training_steps(env, prepared)
    steps[1]["Arguments"]["StoppingCondition"]["MaxWaitTimeInSeconds"] = 60
    with pytest.raises(DefinitionError, match="Train.*MaxWaitTimeInSeconds, at least MaxRuntimeInSeconds"):
        env.run(steps)
    assert not env.work_dir.exists() or not list(env.work_dir.rglob("selection.json"))  # refused before any ran
