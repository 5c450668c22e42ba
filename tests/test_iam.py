"""Least-privilege IAM policies: accepted by IAM (moto), scoped to this pipeline's resources."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from pipeline import main
from pipelines.iam import (
    deployer_policy, execution_role_policy, github_trust_policy, model_deployer_policy, planner_policy, trust_policy,
)
from pipelines.settings import Settings

ROLE = "arn:aws:iam::123456789012:role/HousePricePipeline"
# Only these statements may name every resource: the services accept nothing narrower.
WILDCARD_ALLOWED = {"ListModelVersions", "EcrToken", "JobMetrics", "RunJobsInVpc", "UseEncryptionKey", "EncryptCodeBundles",
                    "ListVersions", "EncryptEndpointsAndOutputs"}
ALIAS_CONDITIONED = {"UseEncryptionKey", "EncryptCodeBundles", "EncryptEndpointsAndOutputs"}


@pytest.fixture
def iam(aws_test_credentials):
    with mock_aws():
        yield boto3.client("iam")


def all_settings() -> Settings:
    return Settings(role_arn=ROLE, bucket="ml-bucket", kms_key_id="alias/pipeline",
                    subnets="subnet-1", security_group_ids="sg-1")


@pytest.mark.parametrize("make", [execution_role_policy, deployer_policy, planner_policy, model_deployer_policy])
def test_policies_are_accepted_by_iam_and_attach_to_the_role(iam, make):
    iam.create_role(RoleName="HousePricePipeline", AssumeRolePolicyDocument=json.dumps(trust_policy()))
    policy = iam.create_policy(PolicyName=make.__name__, PolicyDocument=json.dumps(make(all_settings())))
    iam.attach_role_policy(RoleName="HousePricePipeline", PolicyArn=policy["Policy"]["Arn"])
    attached = iam.list_attached_role_policies(RoleName="HousePricePipeline")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == [make.__name__]


@pytest.mark.parametrize("make", [execution_role_policy, deployer_policy, planner_policy, model_deployer_policy])
def test_only_unavoidable_statements_name_every_resource(make):
    for statement in make(all_settings())["Statement"]:
        if "*" in statement["Resource"]:
            assert statement["Sid"] in WILDCARD_ALLOWED, statement
            assert statement["Sid"] not in ALIAS_CONDITIONED or statement["Condition"]


def test_the_model_deployer_reaches_only_this_groups_versions_and_this_endpoint():
    statements = {s["Sid"]: s for s in model_deployer_policy(all_settings())["Statement"]}
    prefix = "arn:aws:sagemaker:us-east-1:123456789012:"
    assert statements["CreateAndUpdateEndpoint"]["Resource"] == [f"{prefix}endpoint/house-price-endpoint"]
    assert statements["ReviewVersions"]["Resource"] == [f"{prefix}model-package/HousePriceModels/*",
                                                        f"{prefix}model-package/housepricemodels/*"]
    assert set(statements["CreateModelsAndConfigs"]["Resource"]) == {
        f"{prefix}model/HousePriceModels-v*", f"{prefix}model/housepricemodels-v*",
        f"{prefix}endpoint-config/house-price-endpoint-*"}
    assert statements["PassExecutionRole"]["Resource"] == [ROLE]
    assert "sagemaker:DeleteEndpoint" not in {a for s in statements.values() for a in s["Action"]}


def test_execution_role_writes_only_under_the_pipeline_prefix_and_passes_only_itself():
    statements = {s["Sid"]: s for s in execution_role_policy(all_settings())["Statement"]}
    assert statements["WriteJobOutputs"]["Resource"] == ["arn:aws:s3:::ml-bucket/HousePricePipeline/*"]
    assert statements["PassOwnRoleToJobs"]["Resource"] == [ROLE]
    assert statements["RegisterModels"]["Resource"][0].endswith(":model-package-group/HousePriceModels")
    assert all(arn.startswith("arn:aws:ecr:us-east-1:") for arn in statements["PullFrameworkImages"]["Resource"])


def test_optional_statements_follow_the_settings():
    plain = {s["Sid"] for s in execution_role_policy(Settings(role_arn=ROLE))["Statement"]}
    assert not plain & {"UseEncryptionKey", "RunJobsInVpc"}
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    keyed = {s["Sid"]: s for s in execution_role_policy(Settings(role_arn=ROLE, kms_key_id=key_arn))["Statement"]}
    assert keyed["UseEncryptionKey"]["Resource"] == [key_arn]


def test_cli_prints_the_policy_and_refuses_without_a_role(capsys):
    assert main(["iam-policy", "deployer", "--role-arn", ROLE]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["Statement"][0]["Sid"] == "UpsertAndStartPipeline"
    assert main(["iam-policy", "execution"]) == 1
    assert "PIPELINE_ROLE_ARN" in capsys.readouterr().err


def test_the_planner_only_reads():
    actions = {action for statement in planner_policy(all_settings())["Statement"] for action in statement["Action"]}
    assert actions and all(action.split(":")[1].startswith(("Describe", "List", "Get")) for action in actions)


@pytest.mark.parametrize("branch, subject", [
    ("main", "repo:acme/prices:ref:refs/heads/main"),
    (None, "repo:acme/prices:pull_request"),
])
def test_github_oidc_trust_is_scoped_to_one_repository_and_branch(iam, branch, subject):
    document = github_trust_policy(all_settings(), "acme/prices", branch=branch)
    iam.create_role(RoleName="ci", AssumeRolePolicyDocument=json.dumps(document))  # IAM accepts it
    (statement,) = document["Statement"]
    assert statement["Principal"] == {
        "Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                                                       "token.actions.githubusercontent.com:sub": subject}}


def test_cli_github_trust_needs_the_repository(capsys):
    assert main(["iam-policy", "github-deploy-trust", "--role-arn", ROLE]) == 1
    assert "--github-repository OWNER/NAME" in capsys.readouterr().err
    assert main(["iam-policy", "github-deploy-trust", "--role-arn", ROLE, "--github-repository", "acme/prices",
                 "--branch", "release"]) == 0
    assert "repo:acme/prices:ref:refs/heads/release" in capsys.readouterr().out
