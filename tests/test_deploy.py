"""upsert, diff, start and --wait against moto: the AWS calls, their order and their payloads."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError
from botocore.stub import ANY, Stubber
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


def test_an_upsert_that_loses_a_create_race_updates_what_the_other_created(aws):
    """Two upserts at once: both find no pipeline, one creates it, the other's create conflicts and it updates
    instead (the service's answers replayed; moto does not reproduce the race)."""
    from pipelines.deploy import AwsClients, upsert

    _, s3 = aws
    built = build_definition(Settings(role_arn=ROLE, bucket=BUCKET, tags="team=pricing"))
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/housepricepipeline"
    stub = Stubber(client)
    stub.add_client_error("describe_pipeline", "ResourceNotFound", "Pipeline does not exist")
    stub.add_client_error("create_pipeline", "ConflictException", "Another operation is in progress")
    stub.add_response("describe_pipeline", {"PipelineArn": arn, "PipelineName": "HousePricePipeline",
                                            "PipelineDefinition": "{}"})
    stub.add_response("update_pipeline", {"PipelineArn": arn}, {
        "PipelineName": "HousePricePipeline", "PipelineDisplayName": "HousePricePipeline",
        "PipelineDefinition": built.json, "PipelineDescription": ANY, "RoleArn": ROLE})
    stub.add_response("list_tags", {"Tags": []}, {"ResourceArn": arn})
    stub.add_response("add_tags", {"Tags": [{"Key": "team", "Value": "pricing"}]},
                      {"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "pricing"}]})
    with stub:
        assert upsert(built, AwsClients(client, s3)) == arn
    stub.assert_no_pending_responses()


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


def test_a_retried_start_starts_one_execution_and_another_start_another(aws):
    """The first attempt's connection drops; botocore resends the same request, the same token with it."""
    from pipelines import api
    from pipelines.deploy import RETRYING, AwsClients

    sagemaker, _ = aws
    built = build_definition(Settings(role_arn=ROLE, bucket=BUCKET))
    api.upsert(built, aws=AwsClients(sagemaker, boto3.client("s3")))
    client = boto3.client("sagemaker", config=RETRYING)
    tokens, drops = [], [ConnectionClosedError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com")]

    def flaky_network(request, **_):
        tokens.append(json.loads(request.body)["ClientRequestToken"])
        if drops:
            raise drops.pop()

    client.meta.events.register_first("before-send.sagemaker.StartPipelineExecution", flaky_network)
    first = api.start(built, {}, aws=AwsClients(client, None))
    assert len(tokens) == 2 and tokens[0] == tokens[1] and len(tokens[0]) == 32
    executions = sagemaker.list_pipeline_executions(PipelineName="HousePricePipeline")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionArn"] for e in executions] == [first]
    api.start(built, {}, aws=AwsClients(client, None))
    assert tokens[2] != tokens[0]
    api.start(built, {}, aws=AwsClients(client, None), client_token="ci-run-1234-attempt-0000000000000000")
    assert tokens[3] == "ci-run-1234-attempt-0000000000000000"


class ServiceAnswer:
    """A raw HTTP answer as the service sends it, for botocore to parse (and retry) as it would a real one."""

    def __init__(self, body: dict):
        self.body = json.dumps(body).encode()

    def stream(self, **_):
        yield self.body


def test_throttling_while_waiting_is_ridden_out_by_the_shared_retry_configuration():
    """Two throttled polls, then the answer: botocore's retries (RETRYING) absorb them and --wait goes on.
    The service's answers are sent as raw HTTP (a Stubber would skip the retry logic under test)."""
    from botocore.awsrequest import AWSResponse

    from pipelines.deploy import RETRYING, wait_for_execution

    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
                          config=RETRYING)
    execution_arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/housepricepipeline/execution/abc"
    answers = {
        "DescribePipelineExecution": [
            (400, {"__type": "ThrottlingException", "message": "Rate exceeded"}),
            (400, {"__type": "ThrottlingException", "message": "Rate exceeded"}),
            (200, {"PipelineExecutionArn": execution_arn, "PipelineExecutionStatus": "Succeeded"})],
        "ListPipelineExecutionSteps": [
            (200, {"PipelineExecutionSteps": [{"StepName": "Preprocess", "StepStatus": "Succeeded"}]})],
    }
    attempts = []

    def service(request, event_name, **_):
        operation = event_name.rsplit(".", 1)[-1]
        attempts.append(operation)
        status, body = answers[operation].pop(0)
        return AWSResponse(request.url, status, {"x-amzn-RequestId": "r"}, ServiceAnswer(body))

    client.meta.events.register_first("before-send.sagemaker", service)
    seen = []
    execution = wait_for_execution(client, execution_arn, seen.append, poll_seconds=0)
    assert execution["PipelineExecutionStatus"] == "Succeeded"
    assert attempts == ["DescribePipelineExecution"] * 3 + ["ListPipelineExecutionSteps"]
    assert [step["StepName"] for step in seen] == ["Preprocess"]


def test_a_malformed_client_token_is_refused_before_any_call(aws, capsys):
    assert main(["start", *SETTINGS, "--client-token", "too-short"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: --client-token 'too-short' must be 32 to 128 letters, digits or hyphens (SageMaker's "
        "ClientRequestToken)")


def test_start_wait_follows_the_steps_and_exits_non_zero_when_the_execution_fails(monkeypatch, capsys):
    """The whole `start --wait` command, with the service's answers replayed (moto has no step listing)."""
    from pipelines import deploy

    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/housepricepipeline/execution/abc"
    stub = Stubber(client)
    stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn}, {
        "PipelineName": "HousePricePipeline", "PipelineExecutionDescription": STARTED_BY_API,
        "PipelineParameters": [{"Name": "MaxRmse", "Value": "1000"}], "ClientRequestToken": ANY})
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


def test_upsert_keeps_the_pipelines_tags_in_step_with_the_settings(aws, capsys):
    """Tags dropped from the settings are removed, changed ones updated; AWS's and SageMaker Projects' stay."""
    sagemaker, _ = aws
    assert main(["upsert", *SETTINGS, "--tags", "team=pricing,owner=ana,stage=beta"]) == 0
    arn = capsys.readouterr().out.strip()
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "sagemaker:project-name", "Value": "house-prices"}])
    assert main(["upsert", *SETTINGS, "--tags", "team=pricing,stage=prod"]) == 0
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "pricing", "stage": "prod", "sagemaker:project-name": "house-prices"}
    assert main(["upsert", *SETTINGS]) == 0
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "sagemaker:project-name", "Value": "house-prices"}]


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
