"""Whole runs: concurrency, failure propagation, registration, unsupported constructs, reporting."""

import io
import json
import subprocess
import sys
import tarfile

import pytest

from localengine import EngineError, LocalModelRegistry, UnsupportedConstruct, format_summary, print_event
from test_engine_support import (BUCKET, Env, EventLog, condition_step, fail_step, get, join, json_get,
                                 model_step, parameter, processing_step, register_step, training_step)

WINDOW_SCRIPT = """
    import json, os, sys, time
    start = time.time()
    time.sleep(0.4)
    out = os.path.join(os.environ["SM_OPT_ML"], "{directory}")
    os.makedirs(out, exist_ok=True)
    json.dump({{"start": start, "end": time.time()}}, open(os.path.join(out, "window.json"), "w"))
"""


def model_window(env, result, step):
    """When a training step's script ran, as it recorded in its model.tar.gz."""
    with tarfile.open(env.s3.path_for(result.steps[step].properties["ModelArtifacts"]["S3ModelArtifacts"])) as tar:
        return json.load(tar.extractfile("window.json"))


def test_independent_steps_run_concurrently_after_their_common_dependency(tmp_path):
    env = Env(tmp_path)
    prepare = processing_step("Prepare", env.script("prepare.py", WINDOW_SCRIPT.format(directory="processing/data")),
                              outputs={"data": f"{BUCKET}/data"})
    data = get("Steps.Prepare.ProcessingOutputConfig.Outputs['data'].S3Output.S3Uri")
    source = env.sourcedir({"train.py": WINDOW_SCRIPT.format(directory="model")})
    result = env.run([prepare, training_step("TrainA", source, channels={"train": data}),
                      training_step("TrainB", source, channels={"train": data})], max_parallel_jobs=2)
    assert result.status == "Succeeded", result.failure_reason
    windows = {name: model_window(env, result, name) for name in ("TrainA", "TrainB")}
    prepared = json.loads(env.s3.read_bytes(f"{BUCKET}/data/window.json"))
    assert all(window["start"] >= prepared["end"] for window in windows.values())
    assert windows["TrainA"]["start"] < windows["TrainB"]["end"] and windows["TrainB"]["start"] < windows["TrainA"]["end"]


def test_max_parallel_jobs_one_serialises_jobs(tmp_path):
    env = Env(tmp_path)
    source = env.sourcedir({"train.py": WINDOW_SCRIPT.format(directory="model")})
    result = env.run([training_step("A", source), training_step("B", source)], max_parallel_jobs=1)
    first, second = sorted((model_window(env, result, name) for name in ("A", "B")), key=lambda w: w["start"])
    assert second["start"] >= first["end"]


def test_a_failure_stops_downstream_steps_but_lets_running_ones_finish(tmp_path):
    env = Env(tmp_path)
    slow = processing_step("Slow", env.script("slow.py", WINDOW_SCRIPT.format(directory="processing/out")),
                           outputs={"out": f"{BUCKET}/slow"})
    broken = processing_step("Broken", env.script("broken.py", "import sys; print('bad input'); sys.exit('no rows left')"))
    after_broken = model_step("AfterBroken", get("Steps.Broken.ProcessingJobName"))
    after_slow = model_step("AfterSlow", get("Steps.Slow.ProcessingJobName"))
    events = EventLog()
    result = env.run([slow, broken, after_broken, after_slow], max_parallel_jobs=2, on_event=events)
    assert result.status == "Failed" and result.failed_step == "Broken"
    assert result.steps["Slow"].status == "Succeeded" and env.s3.exists(f"{BUCKET}/slow/window.json")
    assert result.steps["AfterBroken"].status == "NotStarted" and result.steps["AfterSlow"].status == "NotStarted"
    assert "no rows left" in result.failure_reason and "bad input" in result.failure_reason
    assert ("finished", "Slow") in events and ("started", "AfterSlow") not in events


def test_register_model_versions_approval_and_metrics(tmp_path):
    env = Env(tmp_path)
    declared = [parameter("Approval", "String", "PendingManualApproval")]
    steps = [model_step("Model", "s3://bkt/model.tar.gz"),
             register_step("Register", "prices", get("Steps.Model.PrimaryContainer.ModelDataUrl"),
                           approval=get("Parameters.Approval")),
             model_step("UsesArn", get("Steps.Register.ModelPackageArn"))]
    first = env.run(steps, declared)
    second = env.run(steps, declared, parameters={"Approval": "Approved"})
    registry = LocalModelRegistry.for_work_dir(env.work_dir)
    assert registry.list_groups() == ["prices"]
    packages = registry.list_packages("prices")
    assert [p["ModelPackageVersion"] for p in packages] == [1, 2]
    assert [p["ModelApprovalStatus"] for p in packages] == ["PendingManualApproval", "Approved"]
    latest = registry.describe(second.steps["Register"].properties["ModelPackageArn"])
    assert latest == registry.describe("prices/2") == packages[1]
    assert latest["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == f"{BUCKET}/eval/evaluation.json"
    assert latest["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://bkt/model.tar.gz"
    assert latest["MetadataProperties"]["GeneratedBy"] == second.execution_arn
    assert second.steps["UsesArn"].properties["PrimaryContainer"]["ModelDataUrl"] == latest["ModelPackageArn"]
    assert first.registered_model_packages[0]["ModelPackageVersion"] == 1
    assert second.registered_model_packages == [latest]
    assert registry.format_package(latest).startswith(f"prices v2  Approved  {latest['CreationTime']}  "
                                                      "model s3://bkt/model.tar.gz  metrics s3://bkt/eval/")
    assert registry.list_packages("unknown") == []
    with pytest.raises(EngineError, match="no model package 'prices/3'"):
        registry.describe("prices/3")


def test_an_invalid_approval_status_fails_the_register_step(tmp_path):
    result = Env(tmp_path).run([register_step("Register", "prices", "s3://bkt/m", approval="Maybe")])
    assert result.status == "Failed" and "ModelApprovalStatus must be one of" in result.failure_reason


@pytest.mark.parametrize("step, construct", [
    ({"Name": "Batch", "Type": "Transform", "Arguments": {}}, "step type 'Transform' (step Batch)"),
    (model_step("M", {"Std:Format": {"Values": []}}), "function Std:Format in step M"),
    (condition_step("C", [{"Type": "Contains", "LeftValue": 1, "RightValue": 2}]), "condition type 'Contains' in step C"),
    (condition_step("C", [{"Type": "Not", "Condition": {"Type": "Between"}}]), "condition type 'Between'"),
    (model_step("M", get("Execution.TrainingJobName")), "execution variable Execution.TrainingJobName"),
    (processing_step("P", "s3://bkt/code/x.py", inputs={"raw": "s3://bkt/raw"}) | {"Name": "P"}, None),
])
def test_unsupported_constructs_are_named_before_anything_runs(tmp_path, step, construct):
    if construct is None:  # a processing step relying on its image's own entrypoint
        del step["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
        construct = "Processing step P without AppSpecification.ContainerEntrypoint"
    events = EventLog()
    with pytest.raises(UnsupportedConstruct) as error:
        Env(tmp_path).run([model_step("Before", "s3://bkt/m"), step], on_event=events)
    assert construct in str(error.value)
    assert events == []


def test_an_unexposed_property_path_is_named(tmp_path):
    with pytest.raises(UnsupportedConstruct, match=r"property path Steps\.M\.EndpointName in step N"):
        Env(tmp_path).run([model_step("M", "s3://bkt/m"), model_step("N", get("Steps.M.EndpointName"))])


def test_events_print_a_line_per_step_and_the_summary_tells_the_story(tmp_path):
    env = Env(tmp_path)
    evaluate = processing_step("Evaluate", env.script("eval.py", """
        import json, os
        out = os.path.join(os.environ["SM_OPT_ML"], "processing", "evaluation")
        json.dump({"regression_metrics": {"rmse": {"value": 41000.5}}}, open(os.path.join(out, "evaluation.json"), "w"))
    """), outputs={"evaluation": f"{BUCKET}/eval"},
        PropertyFiles=[{"PropertyFileName": "Report", "OutputName": "evaluation", "FilePath": "evaluation.json"}])
    rmse = json_get("Evaluate", "Report", "regression_metrics.rmse.value")
    check = condition_step("Check", [{"Type": "LessThanOrEqualTo", "LeftValue": rmse,
                                      "RightValue": get("Parameters.Threshold")}],
                           if_steps=[register_step("Register", "prices", "s3://bkt/m")],
                           else_steps=[fail_step("TooHigh", join(" ", "RMSE", rmse, "is above", get("Parameters.Threshold")))])
    output = io.StringIO()
    result = env.run([evaluate, check], [parameter("Threshold", "Float", 40000.0)],
                     on_event=lambda event: print_event(event, output))
    lines = output.getvalue().splitlines()
    assert lines[0] == "▶ Evaluate (Processing)"
    assert lines[1].startswith("✔ Evaluate succeeded in ") and lines[1].endswith("s")
    assert lines[2] == "▶ Check (Condition)" and lines[3].endswith("(41,000 <= 40,000 → False)")
    assert lines[4] == "↷ Register skipped (Check evaluated to False; this step is in its IfSteps)"
    assert lines[5] == "▶ TooHigh (Fail)"
    assert lines[6].startswith("✘ TooHigh failed after ") and lines[6].endswith(": RMSE 41000.5 is above 40000.0")
    summary = format_summary(result)
    assert summary.splitlines()[0].startswith(f"Execution {result.execution_id} of local-pipeline: Failed in ")
    assert "41,000 <= 40,000 → False" in summary and "Fail step TooHigh: RMSE 41000.5 is above 40000.0" in summary
    assert summary.count("RMSE 41000.5 is above") == 1  # the step's row leaves the reason to that line
    assert "Skipped" in summary and f"Logs: {result.logs_dir}" in summary


def test_summary_reports_metrics_and_registered_versions(tmp_path):
    env = Env(tmp_path)
    source = env.sourcedir({"train.py": "print('validation-rmse=12.5')"})
    result = env.run([training_step("Train", source, metric_definitions=[{"Name": "validation-rmse",
                                                                          "Regex": r"validation-rmse=([0-9.]+)"}]),
                      register_step("Register", "prices", get("Steps.Train.ModelArtifacts.S3ModelArtifacts"))])
    summary = format_summary(result)
    assert "metrics validation-rmse=12.5" in summary
    assert "Registered prices version 1 (PendingManualApproval): arn:aws:sagemaker:" in summary


def test_the_engine_imports_neither_the_sdk_nor_boto3():
    code = "import sys, localengine; print(sorted(m for m in sys.modules if m.split('.')[0] in ('sagemaker', 'boto3', 'botocore')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_relative_directories_work_although_jobs_run_elsewhere(tmp_path, monkeypatch):
    from localengine import LocalS3, run_pipeline
    from test_engine_support import BUCKET, definition, processing_step

    monkeypatch.chdir(tmp_path)
    s3 = LocalS3("s3")
    code = s3.put_bytes(f"{BUCKET}/code/write.py", b"""
import os
open(os.path.join(os.environ["SM_OPT_ML"], "processing", "out", "done.txt"), "w").write("done")
""")
    step = processing_step("Write", code, outputs={"out": f"{BUCKET}/out"})
    result = run_pipeline(definition([step]), s3=s3, work_dir="work")
    assert result.succeeded, result.failure_reason
    assert (tmp_path / "s3" / "bkt" / "out" / "done.txt").read_text() == "done"
