"""`status` for a succeeded, a failed and a running execution. moto has no ListPipelineExecutionSteps,
so the SageMaker client is stubbed with botocore's Stubber, which checks every request and response
against the service's own shapes."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from pipeline import main
from pipelines import api
from pipelines.deploy import AwsClients
from pipelines.settings import Settings
from pipelines.status import STARTED_BY_API

PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/housepricepipeline"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
EXECUTIONS = {  # id -> (status, started by, seconds, failure)
    "aaaa1111bbbb": ("Executing", {"IamIdentity": {"Arn": "arn:aws:sts::123456789012:assumed-role/"
                                                   "HousePricePipeline-s3-trigger/events"}}, 300, None),
    "cccc2222dddd": ("Failed", {"UserProfileName": "maria", "DomainId": "d-abc123",
                                "IamIdentity": {"Arn": "arn:aws:sts::123456789012:assumed-role/StudioRole/maria"}},
                     754, "Step failure: One or multiple steps failed."),
    "eeee3333ffff": ("Succeeded", {"IamIdentity": {"Arn": "arn:aws:sts::123456789012:assumed-role/Deployer/ci"}},
                     3725, None),
}


def arn(execution_id: str) -> str:
    return f"{PIPELINE_ARN}/execution/{execution_id}"


def described(execution_id: str) -> dict:
    status, created_by, seconds, failure = EXECUTIONS[execution_id]
    response = {"PipelineArn": PIPELINE_ARN, "PipelineExecutionArn": arn(execution_id),
                "PipelineExecutionStatus": status, "CreationTime": T0,
                "LastModifiedTime": T0 + timedelta(seconds=seconds), "CreatedBy": created_by}
    if execution_id == "eeee3333ffff":
        response["PipelineExecutionDescription"] = STARTED_BY_API
    if failure:
        response["FailureReason"] = failure
    return response


@pytest.fixture
def stubbed():
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_listing(stubber) -> None:
    stubber.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [
        {"PipelineExecutionArn": arn(i), "StartTime": T0, "PipelineExecutionStatus": EXECUTIONS[i][0]}
        for i in EXECUTIONS]}, {"PipelineName": "HousePricePipeline", "SortBy": "CreationTime",
                                "SortOrder": "Descending", "MaxResults": 10})
    for execution_id in EXECUTIONS:
        stubber.add_response("describe_pipeline_execution", described(execution_id),
                             {"PipelineExecutionArn": arn(execution_id)})


def test_recent_executions_say_status_start_duration_and_who_started_them(stubbed, monkeypatch, capsys):
    client, stubber = stubbed
    expect_listing(stubber)
    monkeypatch.setattr(api, "clients", lambda settings: AwsClients(client, None))
    assert main(["status", "--region", "us-east-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["aaaa1111bbbb", "Executing", "2026-11-20", "09:00:00", "running", "S3", "trigger"]
    assert lines[2].split()[:5] == ["cccc2222dddd", "Failed", "2026-11-20", "09:00:00", "12m34s"]
    assert lines[2].endswith("Studio user maria")
    assert lines[3] == " " * 14 + " ✘ Step failure: One or multiple steps failed."
    assert lines[4].split()[4] == "1h02m"
    assert lines[4].endswith("pipeline.py start/API as arn:aws:sts::123456789012:assumed-role/Deployer/ci")


def test_json_for_scripts(stubbed):
    client, stubber = stubbed
    expect_listing(stubber)
    rows = api.status(Settings(), aws=AwsClients(client, None))
    assert [(r["execution"], r["status"], r["duration_seconds"]) for r in rows] == [
        ("aaaa1111bbbb", "Executing", None), ("cccc2222dddd", "Failed", 754.0), ("eeee3333ffff", "Succeeded", 3725.0)]
    json.dumps(rows)  # what --json prints must be JSON


def test_one_execution_step_by_step_with_cache_hits_and_the_failure_and_its_log_tail(stubbed, monkeypatch, capsys):
    client, stubber = stubbed
    job = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/pipelines-cccc2222dddd-preprocess-x1"
    failed_job = "arn:aws:sagemaker:us-east-1:123456789012:training-job/pipelines-cccc2222dddd-trainbaseline-x2"
    stubber.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        {"StepName": "Preprocess", "StartTime": T0, "EndTime": T0 + timedelta(seconds=2), "StepStatus": "Succeeded",
         "CacheHitResult": {"SourcePipelineExecutionArn": arn("eeee3333ffff")},
         "Metadata": {"ProcessingJob": {"Arn": job}}, "AttemptCount": 1},
        {"StepName": "TrainBaseline", "StartTime": T0, "EndTime": T0 + timedelta(seconds=190), "StepStatus": "Failed",
         "FailureReason": "ClientError: TargetColumn 'price' is not a column", "AttemptCount": 1,
         "Metadata": {"TrainingJob": {"Arn": failed_job}}},
        {"StepName": "TuneXGBoost", "StartTime": T0, "StepStatus": "Executing", "AttemptCount": 1},
    ]}, {"PipelineExecutionArn": arn("cccc2222dddd"), "SortOrder": "Ascending"})
    with mock_aws():  # CloudWatch Logs, where SageMaker writes each job's output
        logs = boto3.client("logs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        group, stream = "/aws/sagemaker/TrainingJobs", "pipelines-cccc2222dddd-trainbaseline-x2/algo-1-1764000000"
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": now + i, "message": f"log line {i}"} for i in range(25)])
        monkeypatch.setattr(api, "clients", lambda settings: AwsClients(client, None, logs))
        assert main(["status", arn("cccc2222dddd"), "--region", "us-east-1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Preprocess         Succeeded      0m02s (cache hit)",
        "TrainBaseline      Failed         3m10s",
        "                   ✘ ClientError: TargetColumn 'price' is not a column",
        *(f"                   │ log line {i}" for i in range(15, 25)),
        "TuneXGBoost        Executing    running",
    ]


def test_an_unknown_execution_id_is_one_line(stubbed, monkeypatch, capsys):
    client, stubber = stubbed
    stubber.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": []})
    monkeypatch.setattr(api, "clients", lambda settings: AwsClients(client, None))
    assert main(["status", "zzzz", "--region", "us-east-1"]) == 1
    assert capsys.readouterr().err == ("error: no recent execution zzzz of pipeline HousePricePipeline; "
                                       "`pipeline.py status` lists them\n")
