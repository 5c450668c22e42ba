"""The cloud side of the last mile against moto (botocore's Stubber where moto lacks UpdateEndpoint):
approving versions, deploying only an approved one to an endpoint, and Batch Transform."""

from __future__ import annotations

import datetime

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from pipeline import main
from pipelines import hosting
from pipelines.settings import Settings

ROLE = "arn:aws:iam::123456789012:role/PipelineExecution"
GROUP = "HousePriceModels"
SETTINGS = ["--role-arn", ROLE, "--region", "us-east-1"]
CONTAINER = {"Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
             "ModelDataUrl": "s3://bucket/HousePricePipeline/evaluation/model/model.tar.gz",
             "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                             "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/HousePricePipeline/code/abc/sourcedir.tar.gz"}}


@pytest.fixture
def sagemaker(aws_test_credentials):
    with mock_aws():
        client = boto3.client("sagemaker")
        client.create_model_package_group(ModelPackageGroupName=GROUP)
        yield client


def register(sagemaker, status: str) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [CONTAINER], "SupportedContentTypes": ["text/csv"],
                                "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]


def test_approve_and_reject_set_the_cloud_versions_status(sagemaker, capsys):
    arn = register(sagemaker, "PendingManualApproval")
    assert main(["approve", "1", "--cloud", *SETTINGS, "--description", "beats v0 on test RMSE"]) == 0
    assert capsys.readouterr().out.strip() == f"{arn}: Approved"
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
    assert main(["reject", "1", "--cloud", *SETTINGS]) == 0
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Rejected"
    assert main(["approve", "4", "--cloud", *SETTINGS]) == 1
    assert capsys.readouterr().err.strip() == f"error: group {GROUP} has no version 4"


def test_deploy_refuses_a_version_nobody_approved(sagemaker, capsys):
    register(sagemaker, "PendingManualApproval")
    assert main(["deploy", "--version", "1", *SETTINGS]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {GROUP} v1 is PendingManualApproval, not Approved: refusing to deploy it; a reviewer approves it "
        "with `pipeline.py approve 1 --cloud` or in Studio")
    assert main(["deploy", *SETTINGS]) == 1
    assert "has no Approved version" in capsys.readouterr().err
    assert sagemaker.list_models()["Models"] == [] and sagemaker.list_endpoints()["Endpoints"] == []


def test_deploy_creates_model_config_and_serverless_endpoint_for_the_newest_approved_version(sagemaker, capsys):
    register(sagemaker, "Approved")
    newest = register(sagemaker, "Approved")
    register(sagemaker, "PendingManualApproval")
    assert main(["deploy", *SETTINGS, "--poll-seconds", "0", "--tags", "team=pricing"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (f"deploying {GROUP} v2 to endpoint house-price-endpoint "
                                   "(serverless, 2,048 MB, 5 at once)")
    assert "InService" in out and "endpoint house-price-endpoint created" in out
    model = sagemaker.describe_model(ModelName=f"{GROUP}-v2")
    assert model["PrimaryContainer"]["ModelPackageName"] == newest
    assert model["ExecutionRoleArn"] == ROLE
    endpoint = sagemaker.describe_endpoint(EndpointName="house-price-endpoint")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert variant["ModelName"] == f"{GROUP}-v2" and variant["VariantName"] == "AllTraffic"
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    tags = sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    assert {"Key": "team", "Value": "pricing"} in tags
    # The same deploy again changes nothing.
    assert main(["deploy", *SETTINGS, "--poll-seconds", "0", "--tags", "team=pricing"]) == 0
    assert "endpoint house-price-endpoint unchanged" in capsys.readouterr().out
    assert len(sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1


def test_an_instance_backed_endpoint_config_names_its_fleet():
    settings = Settings(role_arn=ROLE, endpoint_instance_type="ml.m5.large", endpoint_instance_count=2,
                        kms_key_id="alias/models")
    config = hosting.endpoint_config(settings, "HousePriceModels-v3")
    assert config["ProductionVariants"] == [{"VariantName": "AllTraffic", "ModelName": "HousePriceModels-v3",
                                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 2,
                                             "InitialVariantWeight": 1.0}]
    assert config["KmsKeyId"] == "alias/models"
    serverless = hosting.endpoint_config(Settings(role_arn=ROLE, kms_key_id="alias/models"), "HousePriceModels-v3")
    assert "KmsKeyId" not in serverless and serverless["EndpointConfigName"] != config["EndpointConfigName"]


def test_deploying_a_new_version_updates_the_endpoint_blue_green_and_waits_for_it(capsys):
    """moto has no UpdateEndpoint: the whole exchange with the service, stubbed with its own response shapes."""
    settings = Settings(role_arn=ROLE, endpoint_instance_type="ml.m5.large")
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    package_arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP.lower()}/3"
    package = {"ModelPackageGroupName": GROUP, "ModelPackageVersion": 3, "ModelPackageArn": package_arn,
               "ModelPackageName": GROUP, "ModelApprovalStatus": "Approved", "ModelPackageStatus": "Completed",
               "CreationTime": datetime.datetime(2026, 11, 1), "InferenceSpecification": {
                   "Containers": [CONTAINER], "SupportedContentTypes": ["text/csv"],
                   "SupportedResponseMIMETypes": ["application/json"]}}
    config = hosting.endpoint_config(settings, f"{GROUP}-v3")
    endpoint_arn = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/house-price-endpoint"
    not_found = {"service_error_code": "ValidationException", "service_message": "Could not find model"}
    arn_of = "arn:aws:sagemaker:us-east-1:123456789012:{}".format

    def endpoint(status, config_name):
        return {"EndpointName": "house-price-endpoint", "EndpointArn": endpoint_arn, "EndpointConfigName": config_name,
                "EndpointStatus": status, "CreationTime": datetime.datetime(2026, 10, 1),
                "LastModifiedTime": datetime.datetime(2026, 11, 1)}

    with Stubber(client) as stub:
        stub.add_client_error("describe_model", **not_found, expected_params={"ModelName": f"{GROUP}-v3"})
        stub.add_response("create_model", {"ModelArn": arn_of(f"model/{GROUP.lower()}-v3")}, {
            "ModelName": f"{GROUP}-v3", "ExecutionRoleArn": ROLE, "PrimaryContainer": {"ModelPackageName": package_arn},
            "EnableNetworkIsolation": False, "Tags": []})
        stub.add_client_error("describe_endpoint_config", service_error_code="ValidationException",
                              service_message="Could not find endpoint configuration")
        stub.add_response("create_endpoint_config",
                          {"EndpointConfigArn": arn_of(f"endpoint-config/{config['EndpointConfigName']}")},
                          {**config, "Tags": []})
        stub.add_response("describe_endpoint", endpoint("InService", "house-price-endpoint-0123456789"))
        stub.add_response("update_endpoint", {"EndpointArn": endpoint_arn}, {
            "EndpointName": "house-price-endpoint", "EndpointConfigName": config["EndpointConfigName"],
            "DeploymentConfig": {"BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": 300, "MaximumExecutionTimeoutInSeconds": 3600}}})
        for status in ("Updating", "Updating", "InService"):
            stub.add_response("describe_endpoint", endpoint(status, config["EndpointConfigName"]))
        seen = []
        deployment = hosting.deploy(client, settings, package, on_status=lambda status, _: seen.append(status),
                                    poll_seconds=0)
        stub.assert_no_pending_responses()
    assert (deployment.action, deployment.status) == ("updated", "InService")
    assert seen == ["Updating", "InService"]


def test_a_failed_endpoint_names_the_services_reason():
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", {
            "EndpointName": "e", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e",
            "EndpointStatus": "Failed", "FailureReason": "The primary container for production variant AllTraffic "
            "did not pass the ping health check.", "CreationTime": datetime.datetime(2026, 11, 1),
            "LastModifiedTime": datetime.datetime(2026, 11, 1)})
        with pytest.raises(hosting.DeployError, match="endpoint e is Failed: The primary container .* ping health"):
            hosting.wait_for_endpoint(client, "e", None, poll_seconds=0, timeout_seconds=60)


def test_transform_scores_an_s3_prefix_with_an_approved_version_only(sagemaker, capsys):
    register(sagemaker, "PendingManualApproval")
    assert main(["transform", "--version", "1", "--input", "s3://bucket/new/", "--output", "s3://bucket/scored/",
                 *SETTINGS]) == 1
    assert "not Approved: refusing to score data with it" in capsys.readouterr().err
    register(sagemaker, "Approved")
    assert main(["transform", "--input", "s3://bucket/new/", "--output", "s3://bucket/scored/", *SETTINGS,
                 "--wait", "--poll-seconds", "0"]) == 0
    out = capsys.readouterr().out
    name = out.split()[2]
    assert f"transform job {name} scores s3://bucket/new/ with {GROUP} v2 into s3://bucket/scored/" in out
    job = sagemaker.describe_transform_job(TransformJobName=name)
    assert job["ModelName"] == f"{GROUP}-v2" and job["TransformJobStatus"] == "Completed"
    assert job["TransformInput"]["SplitType"] == "None" and job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformOutput"]["S3OutputPath"] == "s3://bucket/scored/"
    assert main(["transform", "--input", "bucket/new", "--output", "s3://bucket/scored/", *SETTINGS]) == 1
    assert "--input 'bucket/new' is not an S3 URI" in capsys.readouterr().err
