"""The S3 trigger: rule, target, mapping and role in moto; idempotence; removal; the template; the event path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from cfnlint.api import lint_file
from moto import mock_aws

from pipeline import main
from pipelines.deploy import DeployError
from pipelines.settings import Settings
from pipelines.trigger import (EVENT_PARAMETERS, TriggerSpec, bucket_sends_events, cloudformation_template,
                               parameters_from_event)

PROJECT = Path(__file__).resolve().parent.parent
BUCKET = "landing-bucket-for-tests"
FLAGS = ["--bucket", BUCKET, "--region", "us-east-1", "--tags", "team=pricing"]
EXAMPLE_EVENT = PROJECT / "examples" / "s3-object-created-event.json"


@pytest.fixture
def aws(aws_test_credentials):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("events"), boto3.client("iam")


def test_install_creates_rule_target_and_a_role_that_may_start_only_this_pipeline(aws, capsys):
    events, iam = aws
    assert main(["trigger", "install", "--prefix", "incoming/", *FLAGS]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["created"] * 4 + ["⚠"]
    # moto keeps no EventBridge setting on a bucket, so install says how to turn it on.
    assert out[-1].startswith(f"⚠ bucket {BUCKET} does not send its events to EventBridge yet")

    rule = events.describe_rule(Name="HousePricePipeline-s3-trigger")
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [BUCKET]}, "object": {"key": [{"wildcard": "incoming/*.csv"}]}}}
    (target,) = events.list_targets_by_rule(Rule="HousePricePipeline-s3-trigger")["Targets"]
    assert target["Arn"] == "arn:aws:sagemaker:us-east-1:123456789012:pipeline/housepricepipeline"
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [
        {"Name": "InputDataBucket", "Value": "$.detail.bucket.name"},
        {"Name": "InputDataKey", "Value": "$.detail.object.key"},
        {"Name": "InputKeyEncoding", "Value": "url"}]
    role = iam.get_role(RoleName="HousePricePipeline-s3-trigger")["Role"]
    assert target["RoleArn"] == role["Arn"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert {"Key": "team", "Value": "pricing"} in role["Tags"]
    policy = iam.get_role_policy(RoleName="HousePricePipeline-s3-trigger", PolicyName="StartPipeline")
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert statement["Resource"] == ["arn:aws:sagemaker:us-east-1:123456789012:pipeline/HousePricePipeline",
                                     "arn:aws:sagemaker:us-east-1:123456789012:pipeline/housepricepipeline"]
    assert iam.list_attached_role_policies(RoleName="HousePricePipeline-s3-trigger")["AttachedPolicies"] == []


def test_installing_twice_changes_nothing_and_a_new_prefix_updates_only_the_rule(aws, capsys):
    events, _ = aws
    assert main(["trigger", "install", "--prefix", "incoming/", *FLAGS]) == 0
    capsys.readouterr()
    assert main(["trigger", "install", "--prefix", "incoming/", *FLAGS]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["unchanged"] * 4 + ["⚠"]
    assert main(["trigger", "install", "--prefix", "daily/", "--suffix", ".csv.gz", *FLAGS]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "unchanged", "unchanged", "updated", "unchanged", "⚠"]
    pattern = json.loads(events.describe_rule(Name="HousePricePipeline-s3-trigger")["EventPattern"])
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "daily/*.csv.gz"}]
    assert len(events.list_targets_by_rule(Rule="HousePricePipeline-s3-trigger")["Targets"]) == 1


def test_show_prints_the_deployed_rule_and_remove_leaves_nothing_behind(aws, capsys):
    events, iam = aws
    assert main(["trigger", "show", *FLAGS]) == 1
    assert "no trigger named HousePricePipeline-s3-trigger" in capsys.readouterr().err
    assert main(["trigger", "install", "--prefix", "incoming/", *FLAGS]) == 0
    capsys.readouterr()
    assert main(["trigger", "show", *FLAGS]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["Rule"]["EventPattern"]["detail"]["object"]["key"] == [{"wildcard": "incoming/*.csv"}]
    assert shown["Targets"][0]["Id"] == "pipeline"
    assert main(["trigger", "remove", *FLAGS]) == 0
    assert capsys.readouterr().out.splitlines() == ["deleted EventBridge rule HousePricePipeline-s3-trigger and its target",
                                                    "deleted IAM role HousePricePipeline-s3-trigger"]
    assert events.list_rules()["Rules"] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []
    assert main(["trigger", "remove", *FLAGS]) == 0
    assert "no trigger named" in capsys.readouterr().out


@pytest.mark.parametrize("prefix", ["new data/", "daten/ü/", "a+b/", "/incoming/"])
def test_a_prefix_an_event_pattern_cannot_match_is_refused_at_install(prefix):
    with pytest.raises(DeployError, match=r"--prefix"):
        TriggerSpec(Settings(bucket=BUCKET), prefix)


def test_the_committed_template_is_the_generated_one_and_passes_cfn_lint():
    committed = (PROJECT / "infrastructure" / "s3-trigger.yaml").read_text()
    assert committed == cloudformation_template(), "regenerate: python pipeline.py trigger template > infrastructure/s3-trigger.yaml"
    mapping = re.findall(r"- Name: (\w+)\n\s+Value: (\S+)", committed)
    assert dict(mapping) == EVENT_PARAMETERS  # the rule, the template and the local run share one mapping
    assert lint_file(PROJECT / "infrastructure" / "s3-trigger.yaml") == []


def test_a_broken_template_fails_cfn_lint(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(cloudformation_template().replace("Type: AWS::Events::Rule", "Type: AWS::Events::Rulez"))
    assert any("AWS::Events::Rulez" in str(match) for match in lint_file(broken))


def test_the_example_event_maps_to_the_parameters_the_rule_passes():
    event = json.loads(EXAMPLE_EVENT.read_text())
    assert parameters_from_event(event) == {"InputDataBucket": "house-price-pipeline-artifacts",
                                            "InputDataKey": "incoming/new+sales+2026.csv", "InputKeyEncoding": "url"}
    with pytest.raises(DeployError, match="not an S3 'Object Created' event"):
        parameters_from_event({**event, "detail-type": "Object Deleted"})


@pytest.mark.parametrize("configuration, sends", [
    ({}, False),
    ({"QueueConfigurations": [{"QueueArn": "arn:aws:sqs:us-east-1:123456789012:q", "Events": ["s3:ObjectCreated:*"]}]},
     False),
    ({"EventBridgeConfiguration": {}}, True),
])
def test_the_bucket_prerequisite_is_read_from_its_notification_configuration(configuration, sends):
    # moto does not keep EventBridgeConfiguration; the Stubber answers in S3's own response shape.
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(s3) as stubber:
        stubber.add_response("get_bucket_notification_configuration", configuration, {"Bucket": BUCKET})
        assert bucket_sends_events(s3, BUCKET) is sends
