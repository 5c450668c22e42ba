"""Everything that talks to AWS: upload code, upsert the pipeline, diff it, start and follow runs.

Clients are passed in, so the same functions serve real AWS and moto. Retries of throttled or
failed calls are botocore's own (adaptive mode), not hand-written loops.
"""

from __future__ import annotations

import difflib
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Mapping

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pipelines.definition import BuiltDefinition
from pipelines.parameters import describe_parameters

PURPOSE = ("Tabular regression: a CSV in S3 to a tuned, quality-gated model version in the Model Registry "
           "(LocateInput, Preprocess, TrainBaseline, TuneXGBoost, RefitXGBoost, FindChampion, Evaluate, "
           "QualityGate, RegisterModel). Parameters:")


def pipeline_description() -> str:
    """What Studio shows for the pipeline: its purpose, then each parameter's meaning."""
    return f"{PURPOSE}\n{describe_parameters()}"
from pipelines.settings import Settings
from pipelines.status import STARTED_BY_API

RETRYING = Config(retries={"mode": "adaptive", "max_attempts": 10})
CLIENT_TOKEN = re.compile(r"[A-Za-z0-9-]{32,128}")
TERMINAL_STATUSES = {"Succeeded", "Failed", "Stopped"}


class DeployError(RuntimeError):
    """An AWS-side problem, worded for the person at the terminal."""


@dataclass(frozen=True)
class AwsClients:
    sagemaker: object
    s3: object
    logs: object = None

    @classmethod
    def for_settings(cls, settings: Settings) -> AwsClients:
        session = boto3.Session(region_name=settings.region)
        return cls(*(session.client(name, config=RETRYING) for name in ("sagemaker", "s3", "logs")))


def require_real_role(settings: Settings) -> None:
    if not settings.has_real_role:
        raise DeployError(
            "no IAM role for the pipeline: set --role-arn or PIPELINE_ROLE_ARN to the role its jobs run as"
        )


def upload_code(built: BuiltDefinition, s3) -> list[str]:
    """Upload each code object the definition references unless it is already there; returns new URIs.

    Keys are content-addressed, so an existing object already holds exactly these bytes.
    """
    uploaded = []
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": built.settings.kms_key_id} \
        if built.settings.kms_key_id else {}
    for uri, content in sorted(built.code_objects().items()):
        bucket, key = split_s3_uri(uri)
        if _object_exists(s3, bucket, key):
            continue
        s3.put_object(Bucket=bucket, Key=key, Body=content, **extra)
        uploaded.append(uri)
    return uploaded


def upsert(built: BuiltDefinition, clients: AwsClients) -> str:
    """Upload the code, then create the pipeline or update it in place; returns the pipeline ARN."""
    settings = built.settings
    require_real_role(settings)
    upload_code(built, clients.s3)
    request = {
        "PipelineName": settings.pipeline_name,
        "PipelineDisplayName": settings.pipeline_name,
        "PipelineDefinition": built.json,
        "PipelineDescription": pipeline_description()[:3072],
        "RoleArn": settings.role_arn,
    }
    tags = [{"Key": key, "Value": value} for key, value in settings.tag_map.items()]
    if deployed_definition(clients.sagemaker, settings.pipeline_name) is None:
        try:
            return clients.sagemaker.create_pipeline(**request, **({"Tags": tags} if tags else {}))["PipelineArn"]
        except ClientError as error:
            # Another upsert created it between our look and our create: update what it created.
            if not _created_meanwhile(error) or deployed_definition(clients.sagemaker, settings.pipeline_name) is None:
                raise
    response = clients.sagemaker.update_pipeline(**request)
    _sync_tags(clients.sagemaker, response["PipelineArn"], settings.tag_map)
    return response["PipelineArn"]


# Tags that the settings do not own: AWS's own (which nobody may remove) and those SageMaker Projects sets,
# which tie the pipeline to its project whether or not this upsert runs inside one.
FOREIGN_TAG_PREFIXES = ("aws:", "sagemaker:")


def _sync_tags(sagemaker, pipeline_arn: str, wanted: dict[str, str]) -> None:
    """UpdatePipeline takes no tags: make the pipeline's tags those of the settings, adding and removing."""
    pages = sagemaker.get_paginator("list_tags").paginate(ResourceArn=pipeline_arn)
    current = {tag["Key"]: tag["Value"] for page in pages for tag in page["Tags"]}
    dropped = [key for key in current if key not in wanted and not key.startswith(FOREIGN_TAG_PREFIXES)]
    if dropped:
        sagemaker.delete_tags(ResourceArn=pipeline_arn, TagKeys=dropped)
    changed = [{"Key": key, "Value": value} for key, value in wanted.items() if current.get(key) != value]
    if changed:
        sagemaker.add_tags(ResourceArn=pipeline_arn, Tags=changed)


def _created_meanwhile(error: ClientError) -> bool:
    detail = error.response.get("Error", {})
    return detail.get("Code") == "ConflictException" or (
        detail.get("Code") == "ValidationException" and
        re.search(r"already exists|must be unique", detail.get("Message", ""), re.IGNORECASE) is not None)


def deployed_definition(sagemaker, pipeline_name: str) -> str | None:
    try:
        return sagemaker.describe_pipeline(PipelineName=pipeline_name)["PipelineDefinition"]
    except ClientError as error:
        if error.response["Error"]["Code"] in {"ResourceNotFound", "ValidationException"}:
            return None
        raise


def definition_diff(deployed: str, local: str, pipeline_name: str) -> list[str]:
    """Unified diff of the two definitions, both normalised so formatting alone never differs."""
    def lines(text: str) -> list[str]:
        return json.dumps(json.loads(text), indent=2, sort_keys=True).splitlines(keepends=True)

    return list(difflib.unified_diff(lines(deployed), lines(local), f"deployed:{pipeline_name}", "local"))


def start_execution(sagemaker, settings: Settings, parameters: Mapping[str, object],
                    client_token: str | None = None) -> str:
    """Start an execution with already-validated parameter overrides; returns its ARN.

    The request carries a ClientRequestToken, new for each call unless one is given: botocore resends
    the same request when an attempt fails or times out, and SageMaker starts no second execution for a
    token it has seen, so a retried call never starts the pipeline twice. A caller that may itself run
    again (a CI job re-run) passes a token of its own, stable across its runs."""
    require_real_role(settings)
    token = client_token or uuid.uuid4().hex
    if not CLIENT_TOKEN.fullmatch(token):
        raise DeployError(f"--client-token {token!r} must be 32 to 128 letters, digits or hyphens "
                          "(SageMaker's ClientRequestToken)")
    response = sagemaker.start_pipeline_execution(
        PipelineName=settings.pipeline_name,
        PipelineExecutionDescription=STARTED_BY_API,
        PipelineParameters=[{"Name": name, "Value": str(value)} for name, value in parameters.items()],
        ClientRequestToken=token,
    )
    return response["PipelineExecutionArn"]


def wait_for_execution(
    sagemaker, execution_arn: str, on_step: Callable[[dict], None], poll_seconds: float = 30.0
) -> dict:
    """Poll until the execution ends, reporting each step status change once; returns the description."""
    reported: dict[str, str] = {}
    while True:
        execution = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        for step in _execution_steps(sagemaker, execution_arn):
            if reported.get(step["StepName"]) != step.get("StepStatus"):
                reported[step["StepName"]] = step.get("StepStatus")
                on_step(step)
        if execution["PipelineExecutionStatus"] in TERMINAL_STATUSES:
            return execution
        time.sleep(poll_seconds)


def _execution_steps(sagemaker, execution_arn: str) -> list[dict]:
    paginator = sagemaker.get_paginator("list_pipeline_execution_steps")
    steps = [step for page in paginator.paginate(PipelineExecutionArn=execution_arn, SortOrder="Ascending")
             for step in page["PipelineExecutionSteps"]]
    return steps


def _object_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
