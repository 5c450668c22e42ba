"""`validate --policy` and upsert's policy gate: each rule holds for the project's own definition under the
settings that ask for it, and each one fails when its subject is broken."""

from __future__ import annotations

import copy

import boto3
import pytest
from moto import mock_aws

from pipeline import main
from pipelines.definition import build_definition
from pipelines.policy import check_policy, pass_role_wildcards
from pipelines.settings import Settings

ROLE = "arn:aws:iam::123456789012:role/HousePricePipeline"
STRICT = Settings(role_arn=ROLE, kms_key_id="alias/pipeline", network_isolation=True, subnets="subnet-1",
                  security_group_ids="sg-1", tags="team=pricing,owner=ml", required_tags="team,owner",
                  allowed_instance_types="ml.m5.xlarge,ml.m5.large", endpoint_instance_type="ml.m5.large")


@pytest.fixture(scope="module")
def strict():
    return build_definition(STRICT).document


def step(document: dict, name: str) -> dict:
    return next(s for s in document["Steps"] if s["Name"] == name)


def rules(document: dict, settings: Settings = STRICT) -> list[str]:
    return [f"{v.rule} {v.where}" for v in check_policy(document, settings)]


def test_the_projects_definition_holds_every_rule_under_strict_settings(strict):
    assert check_policy(strict, STRICT) == []
    assert check_policy(build_definition(Settings()).document, Settings()) == []


def test_pol001_a_job_without_a_runtime_limit(strict):
    broken = copy.deepcopy(strict)
    del step(broken, "TuneXGBoost")["Arguments"]["TrainingJobDefinition"]["StoppingCondition"]
    assert rules(broken) == ["POL001 TuneXGBoost"]


def test_pol002_a_volume_or_output_without_the_key(strict):
    broken = copy.deepcopy(strict)
    del step(broken, "Preprocess")["Arguments"]["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
    step(broken, "TrainBaseline")["Arguments"]["OutputDataConfig"]["KmsKeyId"] = "alias/another"
    assert rules(broken) == ["POL002 Preprocess", "POL002 TrainBaseline"]
    assert "it names alias/another" in str(check_policy(broken, STRICT)[1])


def test_pol003_a_job_with_network_access_but_the_one_that_needs_the_api(strict):
    assert step(strict, "FindChampion")["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] is False
    broken = copy.deepcopy(strict)
    step(broken, "TuneXGBoost")["Arguments"]["TrainingJobDefinition"]["EnableNetworkIsolation"] = False
    assert rules(broken) == ["POL003 TuneXGBoost"]


def test_pol004_a_job_outside_the_vpc(strict):
    broken = copy.deepcopy(strict)
    del step(broken, "TrainBaseline")["Arguments"]["VpcConfig"]
    assert rules(broken) == ["POL004 TrainBaseline"]


def test_pol005_jobs_without_a_required_tag(strict):
    settings = Settings(**{**STRICT.__dict__, "required_tags": "team,owner,cost-center"})
    violations = check_policy(strict, settings)
    assert {v.rule for v in violations} == {"POL005"} and len(violations) == 7  # every job step
    assert "lacks the required tag(s) cost-center" in str(violations[0])


def test_pol006_a_policy_that_passes_any_role():
    assert pass_role_wildcards({"Statement": [
        {"Sid": "Fine", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": [ROLE]},
        {"Sid": "AnyRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
        {"Sid": "EveryRoleOfTheAccount", "Effect": "Allow", "Action": ["iam:*"],
         "Resource": ["arn:aws:iam::123456789012:role/*"]},
    ]}) == ["AnyRole", "EveryRoleOfTheAccount"]


def test_pol007_instance_types_outside_the_allowed_list(strict):
    settings = Settings(**{**STRICT.__dict__, "allowed_instance_types": "ml.m5.large", "endpoint_instance_type":
                           "ml.g5.xlarge"})
    assert rules(strict, settings) == ["POL007 parameter ProcessingInstanceType",
                                       "POL007 parameter TrainingInstanceType", "POL007 endpoint"]


def test_pol008_an_administrative_role(strict):
    settings = Settings(**{**STRICT.__dict__, "role_arn": "arn:aws:iam::123456789012:role/OrgAdministrator"})
    assert rules(strict, settings) == ["POL008 role"]


def test_validate_policy_lists_violations_and_upsert_refuses_them(aws_test_credentials, capsys):
    flags = ["--role-arn", ROLE, "--required-tags", "team", "--bucket", "policy-test-bucket"]
    assert main(["validate", "--policy", *flags]) == 1
    out = capsys.readouterr().out
    assert "✘ POL005 Preprocess: lacks the required tag(s) team; set them with --tags Key=Value" in out
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="policy-test-bucket")
        assert main(["upsert", *flags]) == 1
        assert "the policy rules do not hold (7 violation(s)), first: POL005 LocateInput" in capsys.readouterr().err
        assert boto3.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
        assert main(["upsert", *flags, "--tags", "team=pricing"]) == 0
