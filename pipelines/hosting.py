"""Model versions in the cloud registry: approve or reject one, deploy one to an endpoint, score S3 with it.

Only an Approved version is deployed or used for Batch Transform: approval is the reviewer's act,
and these are the places it protects. Clients are passed in, so the same code serves AWS and moto.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import ClientError

from pipelines.deploy import DeployError
from pipelines.settings import Settings

VARIANT = "AllTraffic"
ENDPOINT_DONE = {"InService", "Failed", "OutOfService"}
TRANSFORM_DONE = {"Completed", "Failed", "Stopped"}
# Batch Transform sends each input file as one request (SplitType None): the CSV's header row must
# reach input_fn with its rows. MaxPayloadInMB allows at most 100.
TRANSFORM_MAX_PAYLOAD_MB = 100


def label(package: dict) -> str:
    return f"{package['ModelPackageGroupName']} v{package['ModelPackageVersion']}"


def find_version(sagemaker, group: str, version: int | None = None, model_package_arn: str | None = None) -> dict:
    """A version's description: by ARN, by number, else the group's newest Approved version."""
    if model_package_arn:
        return sagemaker.describe_model_package(ModelPackageName=model_package_arn)
    filters = {} if version is not None else {"ModelApprovalStatus": "Approved"}
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending", **filters)
    for summary in (summary for page in pages for summary in page["ModelPackageSummaryList"]):
        if version is None or summary.get("ModelPackageVersion") == version:
            return sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
    if version is None:
        raise DeployError(f"group {group} has no Approved version; approve one with `pipeline.py approve N --cloud` "
                          "or in Studio")
    raise DeployError(f"group {group} has no version {version}")


def set_approval(sagemaker, package: dict, status: str, description: str | None = None) -> dict:
    """UpdateModelPackage's approval status (and the reason, when given); returns the new description."""
    request = {"ModelPackageArn": package["ModelPackageArn"], "ModelApprovalStatus": status}
    if description:
        request["ApprovalDescription"] = description
    sagemaker.update_model_package(**request)
    return sagemaker.describe_model_package(ModelPackageName=package["ModelPackageArn"])


def require_approved(package: dict, purpose: str) -> None:
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise DeployError(f"{label(package)} is {status}, not Approved: refusing to {purpose}; a reviewer approves it "
                          f"with `pipeline.py approve {package['ModelPackageVersion']} --cloud` or in Studio")


def _tags(settings: Settings) -> list[dict]:
    return [{"Key": key, "Value": value} for key, value in settings.tag_map.items()]


def _model_name(settings: Settings, package: dict) -> str:
    return f"{settings.model_package_group[:50]}-v{package['ModelPackageVersion']}"


def ensure_model(sagemaker, settings: Settings, package: dict) -> str:
    """A SageMaker model of the version (its image, data and environment come from the package)."""
    name = _model_name(settings, package)
    request = {"ModelName": name, "ExecutionRoleArn": settings.role_arn,
               "PrimaryContainer": {"ModelPackageName": package["ModelPackageArn"]},
               "EnableNetworkIsolation": settings.network_isolation, "Tags": _tags(settings)}
    if settings.vpc_config:
        request["VpcConfig"] = settings.vpc_config
    if _described(lambda: sagemaker.describe_model(ModelName=name)) is None:
        sagemaker.create_model(**request)
    return name


def endpoint_config(settings: Settings, model_name: str) -> dict:
    """The endpoint configuration for the settings; its name carries a digest of its content, so an
    unchanged deploy reuses it and a changed one gets a new one (configurations cannot be edited)."""
    variant = {"VariantName": VARIANT, "ModelName": model_name}
    if settings.endpoint_instance_type:
        variant.update(InstanceType=settings.endpoint_instance_type,
                       InitialInstanceCount=settings.endpoint_instance_count, InitialVariantWeight=1.0)
    else:
        variant["ServerlessConfig"] = {"MemorySizeInMB": settings.serverless_memory_mb,
                                       "MaxConcurrency": settings.serverless_max_concurrency}
    request = {"ProductionVariants": [variant]}
    if settings.kms_key_id and settings.endpoint_instance_type:  # serverless endpoints take no KmsKeyId
        request["KmsKeyId"] = settings.kms_key_id
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:10]
    return {"EndpointConfigName": f"{settings.endpoint_name[:52]}-{digest}", **request}


def blue_green_policy(settings: Settings) -> dict:
    """Update an instance-backed endpoint blue/green: the new fleet takes all traffic once healthy, the old
    one stays five minutes to roll back to. (Serverless endpoints are updated by SageMaker's default.)"""
    if not settings.endpoint_instance_type:
        return {}
    return {"DeploymentConfig": {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": 300, "MaximumExecutionTimeoutInSeconds": 3600}}}


@dataclass
class Deployment:
    endpoint_name: str
    action: str  # created, updated or unchanged
    endpoint_config_name: str
    status: str


def deploy(sagemaker, settings: Settings, package: dict, on_status: Callable[[str, float], None] | None = None,
           wait: bool = True, poll_seconds: float = 15.0, timeout_seconds: float = 3600.0) -> Deployment:
    """Create or update the endpoint so it serves `package` (which must be Approved)."""
    require_approved(package, "deploy it")
    model_name = ensure_model(sagemaker, settings, package)
    config = endpoint_config(settings, model_name)
    if _described(lambda: sagemaker.describe_endpoint_config(EndpointConfigName=config["EndpointConfigName"])) is None:
        sagemaker.create_endpoint_config(**config, Tags=_tags(settings))
    current = _described(lambda: sagemaker.describe_endpoint(EndpointName=settings.endpoint_name))
    if current is None:
        sagemaker.create_endpoint(EndpointName=settings.endpoint_name,
                                  EndpointConfigName=config["EndpointConfigName"], Tags=_tags(settings))
        action = "created"
    elif current.get("EndpointConfigName") == config["EndpointConfigName"] and current["EndpointStatus"] == "InService":
        return Deployment(settings.endpoint_name, "unchanged", config["EndpointConfigName"], "InService")
    else:
        if current["EndpointStatus"] not in ENDPOINT_DONE:
            raise DeployError(f"endpoint {settings.endpoint_name} is {current['EndpointStatus']}; wait until that "
                              "finishes, then deploy again")
        sagemaker.update_endpoint(EndpointName=settings.endpoint_name, EndpointConfigName=config["EndpointConfigName"],
                                  **blue_green_policy(settings))
        action = "updated"
    status = wait_for_endpoint(sagemaker, settings.endpoint_name, on_status, poll_seconds,
                               timeout_seconds) if wait else "Creating" if action == "created" else "Updating"
    return Deployment(settings.endpoint_name, action, config["EndpointConfigName"], status)


def _described(describe: Callable[[], dict]) -> dict | None:
    """A Describe* call's answer, or None when the resource does not exist (SageMaker says ValidationException)."""
    try:
        return describe()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ValidationException":
            return None
        raise


def follow(describe: Callable[[], dict], status_key: str, done: set[str], what: str,
           on_status: Callable[[str, float], None] | None, poll_seconds: float, timeout_seconds: float) -> dict:
    """Poll `describe()` until its status is one of `done`, reporting each change with the seconds elapsed."""
    started, last = time.monotonic(), None
    while True:
        described = describe()
        status, elapsed = described[status_key], time.monotonic() - started
        if status != last and on_status:
            on_status(status, elapsed)
        last = status
        if status in done:
            return described
        if elapsed > timeout_seconds:
            raise DeployError(f"{what} is still {status} after {elapsed:,.0f} s; it goes on in SageMaker")
        time.sleep(poll_seconds)


def wait_for_endpoint(sagemaker, name: str, on_status: Callable[[str, float], None] | None,
                      poll_seconds: float, timeout_seconds: float) -> str:
    """InService, or a DeployError with the endpoint's FailureReason."""
    endpoint = follow(lambda: sagemaker.describe_endpoint(EndpointName=name), "EndpointStatus", ENDPOINT_DONE,
                      f"endpoint {name}", on_status, poll_seconds, timeout_seconds)
    if endpoint["EndpointStatus"] != "InService":
        raise DeployError(f"endpoint {name} is {endpoint['EndpointStatus']}: "
                          f"{endpoint.get('FailureReason', 'no reason given')}")
    return "InService"


def transform_job_request(settings: Settings, model_name: str, package: dict, input_uri: str, output_uri: str,
                          instance_type: str) -> dict:
    """A Batch Transform job scoring every CSV under `input_uri` (each file one request, header included)."""
    digest = hashlib.sha256(f"{input_uri}\n{output_uri}\n{time.time_ns()}".encode()).hexdigest()[:8]
    request = {
        "TransformJobName": f"{settings.model_package_group[:40]}-v{package['ModelPackageVersion']}-{digest}",
        "ModelName": model_name,
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": TRANSFORM_MAX_PAYLOAD_MB,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
                           "ContentType": "text/csv", "SplitType": "None"},
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": 1},
        "Tags": _tags(settings),
    }
    if settings.kms_key_id:
        request["TransformOutput"]["KmsKeyId"] = settings.kms_key_id
        request["TransformResources"]["VolumeKmsKeyId"] = settings.kms_key_id
    return request


def start_transform(sagemaker, settings: Settings, package: dict, input_uri: str, output_uri: str,
                    instance_type: str) -> str:
    """Start a Batch Transform job with an Approved version; returns the job name."""
    require_approved(package, "score data with it")
    for uri, flag in ((input_uri, "--input"), (output_uri, "--output")):
        if not uri.startswith("s3://") or len(uri) <= len("s3://"):
            raise DeployError(f"{flag} {uri!r} is not an S3 URI; give s3://bucket/prefix/")
    model_name = ensure_model(sagemaker, settings, package)
    request = transform_job_request(settings, model_name, package, input_uri, output_uri, instance_type)
    sagemaker.create_transform_job(**request)
    return request["TransformJobName"]


def wait_for_transform(sagemaker, name: str, on_status: Callable[[str, float], None] | None,
                       poll_seconds: float = 30.0, timeout_seconds: float = 48 * 3600.0) -> dict:
    return follow(lambda: sagemaker.describe_transform_job(TransformJobName=name), "TransformJobStatus",
                  TRANSFORM_DONE, f"transform job {name}", on_status, poll_seconds, timeout_seconds)
