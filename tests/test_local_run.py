"""`pipeline.py run`: the real definition, executed by the local engine on the bundled Ames data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from localengine import LocalS3
from pipeline import main
from pipelines.definition import build_definition
from pipelines.local import local_registry, run_locally
from pipelines.settings import Settings
from steps.code_bundle import SCRIPTS_DIR

JOB_STEPS = ["Preprocess", "TrainBaseline", "TuneXGBoost", "Evaluate"]
# A small tuning budget keeps the suite quick; the benchmark runs the default budget.
SMALL_BUDGET = Settings(tuning_max_jobs=3, tuning_max_parallel_jobs=2)
SMALL_BUDGET_FLAGS = ["--tuning-max-jobs", "3", "--tuning-max-parallel-jobs", "2"]


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("local")


@pytest.fixture(scope="module")
def first_run(local_dir):
    return run_locally(build_definition(SMALL_BUDGET), local_dir)


def test_first_run_trains_evaluates_and_registers_a_model(first_run, local_dir):
    assert first_run.succeeded, first_run.failure_reason
    statuses = {name: step.status for name, step in first_run.steps.items()}
    assert statuses == {**{name: "Succeeded" for name in JOB_STEPS}, "QualityGate": "Succeeded",
                        "RegisterModel": "Succeeded", "QualityGateFailed": "Skipped"}
    assert not any(first_run.steps[name].cache_hit for name in JOB_STEPS)
    (package,) = local_registry(local_dir).list_packages("HousePriceModels")
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    report = json.loads(LocalS3(local_dir / "s3").path_for(metrics_uri).read_text())
    assert report["regression_metrics"]["rmse"]["value"] < report["baseline"]["regression_metrics"]["rmse"]["value"]
    model_uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    best_job = first_run.steps["TuneXGBoost"].properties["BestTrainingJob"]["TrainingJobName"]
    assert model_uri.endswith(f"/{best_job}/output/model.tar.gz")
    assert LocalS3(local_dir / "s3").path_for(model_uri).is_file()
    trials = first_run.steps["TuneXGBoost"].properties["TrainingJobSummaries"]
    assert len(trials) == 3


def test_unchanged_rerun_is_served_from_cache_for_every_job_step(first_run, local_dir):
    again = run_locally(build_definition(SMALL_BUDGET), local_dir)
    assert again.succeeded
    assert all(again.steps[name].cache_hit for name in JOB_STEPS)
    for name in JOB_STEPS:
        assert again.steps[name].properties == first_run.steps[name].properties
    assert [p["ModelPackageVersion"] for p in local_registry(local_dir).list_packages("HousePriceModels")] == [1, 2]


def test_changing_one_script_reruns_only_that_step_and_what_depends_on_it(first_run, local_dir, tmp_path):
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    with (scripts / "train_baseline.py").open("a") as handle:
        handle.write("\n# a change that moves the code bundle\n")
    changed = run_locally(build_definition(SMALL_BUDGET, scripts), local_dir)
    assert changed.succeeded
    hits = {name: changed.steps[name].cache_hit for name in JOB_STEPS}
    assert hits == {"Preprocess": True, "TuneXGBoost": True, "TrainBaseline": False, "Evaluate": False}


def test_a_gate_that_cannot_pass_ends_in_the_fail_step_with_both_rmses(first_run, local_dir, capsys):
    versions_before = len(local_registry(local_dir).list_packages("HousePriceModels"))
    code = main(["run", "--local-dir", str(local_dir), *SMALL_BUDGET_FLAGS, "--param", "MaxRmse=1000"])
    assert code == 1
    out = capsys.readouterr().out
    assert "QualityGateFailed" in out and "Quality gate failed: tuned RMSE" in out and "baseline RMSE" in out
    assert len(local_registry(local_dir).list_packages("HousePriceModels")) == versions_before


def test_a_failing_script_fails_the_run_with_its_reason_and_is_never_cached(local_dir):
    built = build_definition(SMALL_BUDGET)
    for _ in range(2):  # the second attempt must run again, not reuse a cached failure
        failed = run_locally(built, local_dir, {"TargetColumn": "Price"})
        assert not failed.succeeded
        assert failed.failed_step == "Preprocess"
        assert not failed.steps["Preprocess"].cache_hit
        assert "target column 'Price'" in failed.steps["Preprocess"].failure_reason
        assert all(failed.steps[name].status == "NotStarted" for name in JOB_STEPS[1:])


def test_run_on_another_csv_with_its_own_target(local_dir, tmp_path, capsys):
    import pandas as pd

    other = pd.read_csv(Path(__file__).resolve().parent.parent / "data" / "ames_housing.csv")
    other = other.drop(columns=["Order", "PID"]).rename(columns={"SalePrice": "price"})
    csv = tmp_path / "houses.csv"
    other.to_csv(csv, index=False)
    code = main(["run", "--local-dir", str(local_dir), *SMALL_BUDGET_FLAGS, "--data", str(csv),
                 "--param", "TargetColumn=price", "--param", "IdColumns=", "--param", "MinImprovementOverBaseline=0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Preprocess succeeded" in out and "Registered HousePriceModels" in out


def test_models_lists_the_registered_versions(first_run, local_dir, capsys):
    assert main(["models", "--local-dir", str(local_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    versions = local_registry(local_dir).list_packages("HousePriceModels")
    assert len(lines) == len(versions) >= 1
    assert lines[0].startswith("HousePriceModels v1") and "PendingManualApproval" in lines[0]
    assert main(["models", "--local-dir", str(local_dir), "--group", "Nobody"]) == 0
    assert "no model versions registered in group Nobody" in capsys.readouterr().out


@pytest.mark.parametrize("param, message", [
    ("MaxRMSE=1", "unknown parameter(s) MaxRMSE"),
    ("MinImprovementOverBaseline=5", "must be a fraction between -1 and 1"),
])
def test_run_rejects_a_bad_parameter_in_one_line_before_running_anything(local_dir, capsys, param, message):
    executions = local_dir / "work" / "executions"
    before = set(executions.iterdir()) if executions.is_dir() else set()
    assert main(["run", "--local-dir", str(local_dir), "--param", param]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert (set(executions.iterdir()) if executions.is_dir() else set()) == before


def test_run_rejects_a_missing_data_file_in_one_line(tmp_path, capsys):
    assert main(["run", "--local-dir", str(tmp_path), "--data", str(tmp_path / "absent.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.csv: no such file" in err
    assert not (tmp_path / "work").exists()
