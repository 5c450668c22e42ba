"""upsert, diff, start and --wait against moto: the AWS calls, their order and their payloads."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from pipeline import main
from pipelines.definition import build_definition
from pipelines.deploy import upload_code, wait_for_execution
from pipelines.settings import Settings
from pipelines.status import STARTED_BY_API

ROLE = "arn:aws:iam::123456789012:role/PipelineExecution"
BUCKET = "pipeline-test-artifacts"
SETTINGS = ["--role-arn", ROLE, "--bucket", BUCKET, "--region", "us-east-1"]


@pytest.fixture
def aws(aws_test_credentials):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("sagemaker"), boto3.client("s3")


def stored_keys(s3) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_upsert_uploads_code_creates_then_updates(aws, capsys):
    sagemaker, s3 = aws
    assert main(["upsert", *SETTINGS]) == 0
    arn = capsys.readouterr().out.strip()
    assert arn.endswith(":pipeline/HousePricePipeline")
    built = build_definition(Settings(role_arn=ROLE, bucket=BUCKET))
    described = sagemaker.describe_pipeline(PipelineName="HousePricePipeline")
    assert described["PipelineDefinition"] == built.json
    assert described["RoleArn"] == ROLE
    assert "MaxRmse" in described["PipelineDescription"]
    expected_keys = {uri.removeprefix(f"s3://{BUCKET}/") for uri in built.code_objects()}
    assert expected_keys <= stored_keys(s3)

    assert main(["upsert", *SETTINGS, "--cache-expire-after", "P1D"]) == 0
    assert capsys.readouterr().out.strip() == arn
    updated = json.loads(sagemaker.describe_pipeline(PipelineName="HousePricePipeline")["PipelineDefinition"])
    assert {s.get("CacheConfig", {}).get("ExpireAfter") for s in updated["Steps"]} >= {"P1D"}
    assert len(sagemaker.list_pipelines()["PipelineSummaries"]) == 1


def test_code_upload_skips_objects_already_present(aws):
    _, s3 = aws
    built = build_definition(Settings(role_arn=ROLE, bucket=BUCKET))
    first = upload_code(built, s3)
    assert len(first) == len(built.code_objects())
    assert upload_code(built, s3) == []


def test_upsert_without_a_role_is_refused_before_any_call(aws, capsys):
    sagemaker, s3 = aws
    assert main(["upsert", "--bucket", BUCKET]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PIPELINE_ROLE_ARN" in err
    assert sagemaker.list_pipelines()["PipelineSummaries"] == []
    assert stored_keys(s3) == set()


def test_diff_reports_identical_then_changed(aws, capsys):
    assert main(["diff", *SETTINGS]) == 1
    assert "not deployed" in capsys.readouterr().out
    main(["upsert", *SETTINGS])
    capsys.readouterr()
    assert main(["diff", *SETTINGS]) == 0
    assert "identical" in capsys.readouterr().out
    assert main(["diff", *SETTINGS, "--cache-expire-after", "PT12H"]) == 1
    diff = capsys.readouterr().out
    assert '-        "ExpireAfter": "P30D"' in diff and '+        "ExpireAfter": "PT12H"' in diff


def test_start_passes_parameters(aws, capsys):
    sagemaker, _ = aws
    main(["upsert", *SETTINGS])
    capsys.readouterr()
    assert main(["start", *SETTINGS, "--param", "TargetColumn=price", "--param", "MaxRmse=25000"]) == 0
    execution_arn = capsys.readouterr().out.strip()
    sent = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution_arn)
    assert {(p["Name"], p["Value"]) for p in sent["PipelineParameters"]} == {("TargetColumn", "price"), ("MaxRmse", "25000")}


@pytest.mark.parametrize("param, message", [
    ("TargetColum=price", "unknown parameter(s) TargetColum"),
    ("MaxRmse=lots", "parameter MaxRmse is Float, got 'lots'"),
    ("ModelApprovalStatus=Maybe", "ModelApprovalStatus"),
    ("no-equals-sign", "must look like Name=Value"),
    ("MaxRmse=-5", "parameter MaxRmse=-5.0 must be 0 (off) or a positive RMSE"),
    ("InputDataKey=/data/x.csv", "without a leading /"),
])
def test_start_rejects_bad_parameters_before_any_call(aws, capsys, param, message):
    sagemaker, _ = aws
    main(["upsert", *SETTINGS])
    capsys.readouterr()
    assert main(["start", *SETTINGS, "--param", param]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    executions = sagemaker.list_pipeline_executions(PipelineName="HousePricePipeline")
    assert executions["PipelineExecutionSummaries"] == []


def test_start_of_a_pipeline_that_was_never_upserted_is_one_clear_line(aws, capsys):
    assert main(["start", *SETTINGS]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: AWS StartPipelineExecution failed") and err.count("\n") == 1


def test_wait_reports_each_step_change_once_and_returns_the_final_state():
    """moto cannot list execution steps, so the service's responses are replayed by botocore's stubber."""
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc"
    stub = Stubber(client)
    for status, steps in [
        ("Executing", [("Preprocess", "Executing")]),
        ("Executing", [("Preprocess", "Succeeded"), ("TrainBaseline", "Executing")]),
        ("Failed", [("Preprocess", "Succeeded"), ("TrainBaseline", "Failed")]),
    ]:
        stub.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": status, "PipelineExecutionArn": arn},
                          {"PipelineExecutionArn": arn})
        stub.add_response("list_pipeline_execution_steps",
                          {"PipelineExecutionSteps": [{"StepName": n, "StepStatus": s} for n, s in steps]},
                          {"PipelineExecutionArn": arn, "SortOrder": "Ascending"})
    seen = []
    with stub:
        final = wait_for_execution(client, arn, lambda step: seen.append((step["StepName"], step["StepStatus"])), 0)
    assert final["PipelineExecutionStatus"] == "Failed"
    assert seen == [("Preprocess", "Executing"), ("Preprocess", "Succeeded"), ("TrainBaseline", "Executing"),
                    ("TrainBaseline", "Failed")]
    stub.assert_no_pending_responses()


def test_start_wait_follows_the_steps_and_exits_non_zero_when_the_execution_fails(monkeypatch, capsys):
    """The whole `start --wait` command, with the service's answers replayed (moto has no step listing)."""
    from pipelines import deploy

    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/housepricepipeline/execution/abc"
    stub = Stubber(client)
    stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn}, {
        "PipelineName": "HousePricePipeline", "PipelineExecutionDescription": STARTED_BY_API,
        "PipelineParameters": [{"Name": "MaxRmse", "Value": "1000"}]})
    stub.add_response("describe_pipeline_execution", {
        "PipelineExecutionStatus": "Failed", "FailureReason": "Step failure: QualityGateFailed"},
        {"PipelineExecutionArn": arn})
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        {"StepName": "Evaluate", "StepStatus": "Succeeded"},
        {"StepName": "QualityGateFailed", "StepStatus": "Failed", "FailureReason": "Quality gate failed: tuned RMSE"},
    ]}, {"PipelineExecutionArn": arn, "SortOrder": "Ascending"})
    monkeypatch.setattr(deploy.AwsClients, "for_settings", classmethod(lambda cls, settings: cls(client, None)))
    with stub:
        code = main(["start", *SETTINGS, "--param", "MaxRmse=1000", "--wait", "--poll-seconds", "0"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out == [arn, "  Evaluate: Succeeded", "  QualityGateFailed: Failed (Quality gate failed: tuned RMSE)",
                   "execution Failed: Step failure: QualityGateFailed"]
    stub.assert_no_pending_responses()


def test_upsert_brings_a_projects_tags_to_a_pipeline_created_before_it(aws, capsys, monkeypatch):
    sagemaker, _ = aws
    assert main(["upsert", *SETTINGS]) == 0
    arn = capsys.readouterr().out.strip()
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == []
    monkeypatch.setenv("SAGEMAKER_PROJECT_NAME", "house-prices")
    monkeypatch.setenv("SAGEMAKER_PROJECT_ID", "p-abc123def456")
    assert main(["upsert", *SETTINGS]) == 0
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"sagemaker:project-name": "house-prices", "sagemaker:project-id": "p-abc123def456"}
    described = sagemaker.describe_pipeline(PipelineName="HousePricePipeline")
    assert described["PipelineDisplayName"] == "HousePricePipeline"
