"""`pipeline.py run`: the real definition, executed by the local engine on the bundled Ames data."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from localengine import LocalS3
from pipeline import main
from pipelines.definition import BuiltDefinition, build_definition
from pipelines.local import local_registry, run_locally
from pipelines.plan import local_plan
from pipelines.settings import Settings
from steps.code_bundle import SCRIPTS_DIR

REPO = Path(__file__).resolve().parent.parent
JOB_STEPS = ["Preprocess", "TrainBaseline", "TuneXGBoost", "RefitXGBoost", "Evaluate"]
# A small tuning budget keeps the suite quick; the benchmark runs the default budget.
SMALL_BUDGET = Settings(tuning_max_jobs=3, tuning_max_parallel_jobs=2)
SMALL_BUDGET_FLAGS = ["--tuning-max-jobs", "3", "--tuning-max-parallel-jobs", "2"]
# For tests about what is read or how a result is judged, not about tuning: one trial.
ONE_TRIAL_FLAGS = ["--tuning-max-jobs", "1"]


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("local")


@pytest.fixture(scope="module")
def first_run(local_dir):
    return run_locally(build_definition(SMALL_BUDGET), local_dir).result


def test_first_run_trains_evaluates_and_registers_a_model(first_run, local_dir):
    assert first_run.succeeded, first_run.failure_reason
    statuses = {name: step.status for name, step in first_run.steps.items()}
    assert statuses == {**{name: "Succeeded" for name in JOB_STEPS}, "FindChampion": "Succeeded", "LocateInput": "Succeeded",
                        "QualityGate": "Succeeded", "RegisterModel": "Succeeded", "QualityGateFailed": "Skipped"}
    assert not any(first_run.steps[name].cache_hit for name in JOB_STEPS)
    (package,) = local_registry(local_dir).list_packages("HousePriceModels")
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    s3 = LocalS3(local_dir / "s3")
    report = json.loads(s3.path_for(metrics_uri).read_text())
    assert report["chosen"]["candidate"] == "xgboost"
    assert report["champion"] == {"found": "no", "compared": "no", "name": "none", "worse_by": 0.0,
                                  "verdict": "no approved champion"}
    assert report["regression_metrics"] == report["candidates"]["xgboost"]["regression_metrics"]
    metadata = package["CustomerMetadataProperties"]
    assert {key: metadata[key] for key in ("Candidate", "DataWarnings", "SuspectedLeakage")} == {
        "Candidate": "xgboost", "DataWarnings": "0", "SuspectedLeakage": "none"}
    # The reviewer's page is linked from the version and lies beside evaluation.json.
    assert metadata["EvaluationReport"] == metrics_uri.replace("evaluation.json", report["report"])
    assert "<img" in s3.path_for(metadata["EvaluationReport"]).read_text()
    data_report_uri = package["ModelMetrics"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    assert json.loads(s3.path_for(data_report_uri).read_text())["rows"]["used"] == 2930
    # The registered model is the refit of the best trial's choice, as Evaluate chose and copied it.
    model_uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    refit_uri = first_run.steps["RefitXGBoost"].properties["ModelArtifacts"]["S3ModelArtifacts"]
    assert s3.path_for(model_uri).read_bytes() == s3.path_for(refit_uri).read_bytes()
    best_job = first_run.steps["TuneXGBoost"].properties["BestTrainingJob"]["TrainingJobName"]
    refit_log = first_run.steps["RefitXGBoost"].log_path.read_text()
    selection = next(channel for channel in first_run.steps["RefitXGBoost"].properties["InputDataConfig"]
                     if channel["ChannelName"] == "selection")
    assert selection["DataSource"]["S3DataSource"]["S3Uri"].endswith(f"/{best_job}/output/model.tar.gz")
    best_score = first_run.steps["TuneXGBoost"].properties["BestTrainingJob"][
        "FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    assert first_run.steps["RefitXGBoost"].properties["FinalMetricDataList"][0]["Value"] == best_score
    assert "refit on 2,456 train + validation rows" in refit_log
    trials = first_run.steps["TuneXGBoost"].properties["TrainingJobSummaries"]
    assert len(trials) == 3


def predicted_hits(built, local_dir, parameters=None) -> dict[str, bool]:
    """What `plan` says the next run takes from the cache, for each job step."""
    return {plan.name: plan.verdict == "cached" for plan in local_plan(built, local_dir, parameters or {})
            if plan.name in JOB_STEPS}


def actual_hits(result) -> dict[str, bool]:
    return {name: result.steps[name].cache_hit for name in JOB_STEPS}


def test_a_second_run_on_the_same_directory_waits_for_the_first(first_run, local_dir):
    """A real second process: it says why it waits, touches nothing meanwhile, and runs when the first ends."""
    from filelock import FileLock

    from pipelines.local import RUN_LOCK

    executions = local_dir / "work" / "executions"
    before = sorted(executions.iterdir())
    first = FileLock(local_dir / RUN_LOCK)
    first.acquire()
    second = subprocess.Popen([sys.executable, str(REPO / "pipeline.py"), "run", "--local-dir", str(local_dir),
                               *SMALL_BUDGET_FLAGS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    threading.Thread(target=lambda: said.extend(line.strip() for line in second.stderr), daemon=True).start()
    waiting = f"… another run is using {local_dir}; this one starts when it ends (Ctrl-C to give up)"
    try:
        deadline = time.monotonic() + 120  # after the definition is built, whatever that logged
        while waiting not in said and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting in said, said
        time.sleep(2)
        assert second.poll() is None and sorted(executions.iterdir()) == before
    finally:
        first.release()
    out = second.stdout.read()
    assert second.wait(timeout=600) == 0, said
    assert len(sorted(executions.iterdir())) == len(before) + 1 and "Succeeded" in out


def job_processes(local_dir: Path) -> list[int]:
    """Processes working in one of the local directory's job sandboxes (every job runs in its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                working_directory = os.readlink(entry / "cwd")
            except OSError:
                continue
            if working_directory.startswith(f"{local_dir.resolve()}/work/executions/"):
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds job processes through /proc")
def test_sigterm_mid_tuning_stops_every_job_and_leaves_only_finished_steps(tmp_path):
    local_dir = tmp_path / "stopped"
    budget = ["--tuning-max-jobs", "6", "--tuning-max-parallel-jobs", "2"]
    run = subprocess.Popen([sys.executable, str(REPO / "pipeline.py"), "run", "--local-dir", str(local_dir), *budget],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in run.stdout:
        if line.startswith("▶ TuneXGBoost"):
            break
    deadline = time.monotonic() + 60
    while len(job_processes(local_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    in_flight = job_processes(local_dir)
    assert in_flight, "no trial was running"
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and err.strip().endswith("interrupted")
    assert job_processes(local_dir) == []  # every job's process group ended with the run
    (execution,) = (local_dir / "work" / "executions").iterdir()
    record = json.loads((execution / "execution.json").read_text())
    assert record["PipelineExecutionStatus"] == "Stopped"
    assert record["Steps"]["Preprocess"] == "Succeeded" and record["Steps"]["TuneXGBoost"] != "Succeeded"
    assert record["Steps"]["RegisterModel"] == "NotStarted"
    assert local_registry(local_dir).list_packages("HousePriceModels") == []
    # The next run takes exactly the finished job steps from the cache, and runs the rest.
    plans = {plan.name: plan.verdict for plan in local_plan(
        build_definition(Settings(tuning_max_jobs=6, tuning_max_parallel_jobs=2)), local_dir, {})}
    finished = {name for name, status in record["Steps"].items() if status == "Succeeded"}
    assert {name for name, verdict in plans.items() if verdict == "cached"} == finished - {"FindChampion"}
    assert plans["TuneXGBoost"] == "runs"


def test_unchanged_rerun_is_served_from_cache_for_every_job_step(first_run, local_dir):
    versions = [p["ModelPackageVersion"] for p in local_registry(local_dir).list_packages("HousePriceModels")]
    predicted = predicted_hits(build_definition(SMALL_BUDGET), local_dir)
    again = run_locally(build_definition(SMALL_BUDGET), local_dir).result
    assert predicted == actual_hits(again) == dict.fromkeys(JOB_STEPS, True)
    assert again.succeeded
    assert all(again.steps[name].cache_hit for name in JOB_STEPS)
    for name in JOB_STEPS:
        assert again.steps[name].properties == first_run.steps[name].properties
    # Every gate that passes registers a version, cached or not (as in the cloud): one more, numbered next.
    assert [p["ModelPackageVersion"] for p in local_registry(local_dir).list_packages("HousePriceModels")] == [
        *versions, versions[-1] + 1]


def test_changing_one_script_reruns_only_that_step_and_what_depends_on_it(first_run, local_dir, tmp_path):
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    with (scripts / "train_baseline.py").open("a") as handle:
        handle.write("\n# a change that moves the code bundle\n")
    built = build_definition(SMALL_BUDGET, scripts)
    plans = {plan.name: plan for plan in local_plan(built, local_dir, {})}
    predicted = predicted_hits(built, local_dir)
    changed = run_locally(built, local_dir).result
    assert changed.succeeded
    expected = {"Preprocess": True, "TuneXGBoost": True, "RefitXGBoost": True, "TrainBaseline": False,
                "Evaluate": False}
    assert predicted == actual_hits(changed) == expected
    (reason,) = plans["TrainBaseline"].reasons
    assert reason.startswith("code changed: HyperParameters.sagemaker_submit_directory: ")
    assert plans["Evaluate"].reasons[0].startswith("takes Steps.TrainBaseline.")


def test_a_changed_parameter_default_is_predicted_as_the_service_keys_steps(first_run, local_dir):
    # Instance types are not cache key attributes; ExcludeColumns reaches Preprocess's arguments.
    built = build_definition(SMALL_BUDGET)
    document = built.document
    for parameter in document["Parameters"]:
        if parameter["Name"] == "TrainingInstanceType":
            parameter["DefaultValue"] = "ml.m5.2xlarge"
    moved = BuiltDefinition(built.settings, json.dumps(document), built.bundles)
    predicted = predicted_hits(moved, local_dir)
    assert predicted == actual_hits(run_locally(moved, local_dir).result) == dict.fromkeys(JOB_STEPS, True)
    # A default that reaches Preprocess's arguments: Preprocess runs, and everything after it.
    for parameter in document["Parameters"]:
        if parameter["Name"] == "ExcludeColumns":
            parameter["DefaultValue"] = "Lot Frontage"
    plans = {plan.name: plan for plan in local_plan(BuiltDefinition(built.settings, json.dumps(document),
                                                                    built.bundles), local_dir, {})}
    assert "argument changed: AppSpecification.ContainerArguments" in plans["Preprocess"].reasons[0]
    assert {name: plans[name].verdict for name in JOB_STEPS} == dict.fromkeys(JOB_STEPS, "runs")


def test_a_gate_that_cannot_pass_ends_in_the_fail_step_with_readable_figures(first_run, local_dir, capsys):
    versions_before = len(local_registry(local_dir).list_packages("HousePriceModels"))
    code = main(["run", "--local-dir", str(local_dir), *SMALL_BUDGET_FLAGS, "--param", "MaxRmse=1000"])
    assert code == 1
    captured = capsys.readouterr()
    last = captured.err.splitlines()[-1]
    assert re.fullmatch(r"error: QualityGateFailed: Quality gate failed: the chosen candidate \(xgboost\) scored "
                        r"test R² 0\.9\d\d \(MinR2 0\.5\) and test RMSE \d\d,\d\d\d \(MaxRmse 1000\.0, 0 = off\); "
                        r"no approved champion \(ChampionTolerance 0\.0\); baseline RMSE \d\d,\d\d\d\. Nothing was "
                        r"registered: give the table rows or columns that predict the target better, or, if these "
                        r"figures are good enough, relax MaxRmse\.", last), last
    assert len(local_registry(local_dir).list_packages("HousePriceModels")) == versions_before
    # The verdict shows as the gate fails and as the last line, not a third time in the summary between them.
    assert (captured.out + captured.err).count("Quality gate failed") == 2
    # The report Evaluate wrote for this run states the same verdict, on the MaxRmse line.
    page = re.search(r"^Evaluation report: (file://\S+)$", captured.out, re.MULTILINE).group(1)
    page_path = Path(url2pathname(urlparse(page).path))
    evaluation = json.loads((page_path.parent.parent / "evaluation.json").read_text())
    assert [check["passed"] for check in evaluation["gate"]["checks"]] == [True, False, True]
    # The run names the candidate it chose, and why, as Evaluate decided.
    chosen = evaluation["chosen"]
    assert f"Model: {chosen['candidate']} chosen ({chosen['reason']}); on the test rows RMSE " \
           f"{evaluation['readable']['rmse']}, R² {evaluation['readable']['r2']}" in captured.out


def test_the_r2_gate_holds_back_a_model_on_any_scale(first_run, local_dir, capsys):
    assert main(["run", "--local-dir", str(local_dir), *SMALL_BUDGET_FLAGS, "--param", "MinR2=0.99"]) == 1
    assert "(MinR2 0.99)" in capsys.readouterr().err.splitlines()[-1]


def test_a_failing_script_fails_the_run_with_its_reason_and_is_never_cached(local_dir):
    built = build_definition(SMALL_BUDGET)
    for _ in range(2):  # the second attempt must run again, not reuse a cached failure
        failed = run_locally(built, local_dir, {"TargetColumn": "Price"}).result
        assert not failed.succeeded
        assert failed.failed_step == "Preprocess"
        assert not failed.steps["Preprocess"].cache_hit
        assert "TargetColumn 'Price' is not a column of s3://" in failed.steps["Preprocess"].failure_reason
        assert all(failed.steps[name].status == "NotStarted" for name in JOB_STEPS[1:])


def test_run_on_another_csv_with_only_its_target_named(local_dir, tmp_path, capsys):
    import pandas as pd

    other = pd.read_csv(Path(__file__).resolve().parent.parent / "data" / "ames_housing.csv")
    other = other.rename(columns={"SalePrice": "price", "PID": "parcel id"})
    csv = tmp_path / "houses.csv"
    other.to_csv(csv, index=False, sep=";")
    code = main(["run", "--local-dir", str(local_dir), *ONE_TRIAL_FLAGS, "--data", str(csv),
                 "--param", "TargetColumn=price"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Preprocess succeeded" in out and "Registered HousePriceModels" in out
    assert f"Data: read 2,930 rows from {csv} (utf-8, semicolon-separated); used 2,930" in out
    assert "left out: Order (id-like), parcel id (id-like)" in out


def test_run_on_a_directory_of_csv_files(local_dir, tmp_path, capsys):
    import pandas as pd

    houses = pd.read_csv(Path(__file__).resolve().parent.parent / "data" / "ames_housing.csv")
    folder = tmp_path / "exports"
    (folder / "2026").mkdir(parents=True)
    houses.iloc[:1500].to_csv(folder / "part-1.csv", index=False)
    houses.iloc[1500:].to_csv(folder / "2026" / "part-2.CSV", index=False)
    code = main(["run", "--local-dir", str(local_dir), *ONE_TRIAL_FLAGS, "--data", str(folder)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Data: read 2,930 rows from {folder}/ (2 files)" in out


def test_bad_data_ends_the_run_with_one_line_naming_the_users_file(local_dir, tmp_path, capsys):
    import pandas as pd

    csv = tmp_path / "flat.csv"
    pd.DataFrame({"area": range(100), "price": 5}).to_csv(csv, index=False)
    versions_before = len(local_registry(local_dir).list_packages("HousePriceModels"))
    assert main(["run", "--local-dir", str(local_dir), *SMALL_BUDGET_FLAGS, "--data", str(csv),
                 "--param", "TargetColumn=price"]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (f"error: Preprocess failed: TargetColumn 'price' has the same value (5) in every row of {csv}; "
                    "there is nothing to learn: choose a column that varies (exited with code 1)")
    assert len(local_registry(local_dir).list_packages("HousePriceModels")) == versions_before


def test_models_lists_the_registered_versions(first_run, local_dir, capsys):
    assert main(["models", "--local-dir", str(local_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    versions = local_registry(local_dir).list_packages("HousePriceModels")
    assert len(lines) == len(versions) >= 1
    assert lines[0].startswith("HousePriceModels v1") and "PendingManualApproval" in lines[0]
    assert main(["models", "--local-dir", str(local_dir), "--group", "Nobody"]) == 0
    assert "no model versions registered in group Nobody" in capsys.readouterr().out


# The strongest Ames columns: without them the challenger is clearly worse than the champion.
WITHOUT_STRONG_FEATURES = ("ExcludeColumns=Overall Qual,Gr Liv Area,Neighborhood,Total Bsmt SF,Garage Cars,"
                           "Garage Area,1st Flr SF,Exter Qual,Kitchen Qual,Bsmt Qual,Year Built,Year Remod/Add,"
                           "Full Bath,Fireplaces,Mas Vnr Area,TotRms AbvGrd,Foundation")


def _evaluation(local_dir: Path, result) -> dict:
    outputs = result.steps["Evaluate"].properties["ProcessingOutputConfig"]["Outputs"]
    uri = next(o["S3Output"]["S3Uri"] for o in outputs if o["OutputName"] == "evaluation")
    return json.loads(LocalS3(local_dir / "s3").read_bytes(f"{uri}/evaluation.json"))


def test_an_approved_version_becomes_the_champion_scored_on_the_same_rows(first_run, local_dir, capsys):
    assert main(["approve", "1", "--local-dir", str(local_dir)]) == 0
    assert "HousePriceModels v1  Approved" in capsys.readouterr().out
    again = run_locally(build_definition(SMALL_BUDGET), local_dir).result
    assert again.succeeded, again.failure_reason
    champion = _evaluation(local_dir, again)["champion"]
    assert (champion["found"], champion["compared"], champion["name"]) == ("yes", "yes", "v1")
    # Same data, same cached candidates: the challenger is the champion's own model, exactly as good.
    assert champion["worse_by"] == 0.0
    assert champion["verdict"].startswith("champion v1 test RMSE ")


def test_a_worse_challenger_is_held_back_unless_the_tolerance_allows_it(first_run, local_dir, capsys):
    versions_before = len(local_registry(local_dir).list_packages("HousePriceModels"))
    assert main(["run", "--local-dir", str(local_dir), *ONE_TRIAL_FLAGS, "--param", WITHOUT_STRONG_FEATURES]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert re.search(r"; champion v1 test RMSE \d\d,\d\d\d, the new model \d+\.\d% worse "
                     r"\(ChampionTolerance 0\.0\);", last), last
    assert len(local_registry(local_dir).list_packages("HousePriceModels")) == versions_before
    assert main(["run", "--local-dir", str(local_dir), *ONE_TRIAL_FLAGS, "--param", WITHOUT_STRONG_FEATURES,
                 "--param", "ChampionTolerance=0.5"]) == 0
    assert len(local_registry(local_dir).list_packages("HousePriceModels")) == versions_before + 1


@pytest.mark.parametrize("param, message", [
    ("MaxRMSE=1", "unknown parameter(s) MaxRMSE"),
    ("MinR2=5", "must be at most 1"),
    ("MaxRmse=-5", "must be 0 (off) or a positive RMSE"),
    ("TrainingInstanceCount=0", "must be from 1 to 20 instances per tuning trial"),
    ("ProcessingInstanceCount=21", "must be from 1 to 20 instances of the Preprocess job"),
    ("ExcludeColumns=" + ",".join(f"column {n}" for n in range(40)), "must list at most 230 bytes of column names"),
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


def test_an_s3_event_runs_on_exactly_the_object_it_names_even_with_a_space_in_its_key(tmp_path, capsys):
    local_dir = tmp_path / "local"  # no champion from other tests: this is about which object is read
    import pandas as pd

    event_file = Path(__file__).resolve().parent.parent / "examples" / "s3-object-created-event.json"
    event = json.loads(event_file.read_text())
    assert event["detail"]["object"]["key"] == "incoming/new+sales+2026.csv"  # URL-encoded, as S3 sends it
    landed = tmp_path / "new sales 2026.csv"
    pd.read_csv(Path(__file__).resolve().parent.parent / "data" / "ames_housing.csv").iloc[:600].to_csv(
        landed, index=False)
    code = main(["run", "--local-dir", str(local_dir), "--tuning-max-jobs", "1", "--event", str(event_file),
                 "--data", str(landed)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Data: read 600 rows from {landed} (utf-8, comma-separated); used 600" in out
    s3 = LocalS3(local_dir / "s3")
    (location,) = [p for p in s3.path_for("s3://house-price-pipeline-artifacts/HousePricePipeline/input").rglob(
        "location.json") if "incoming" in p.as_posix()]
    assert json.loads(location.read_text())["uri"] == "s3://house-price-pipeline-artifacts/incoming/new sales 2026.csv"


def test_run_event_needs_the_file_that_stands_for_the_object(tmp_path, capsys):
    event_file = Path(__file__).resolve().parent.parent / "examples" / "s3-object-created-event.json"
    assert main(["run", "--local-dir", str(tmp_path), "--event", str(event_file)]) == 1
    assert "--event needs --data FILE" in capsys.readouterr().err
