"""Model (CreateModel) and RegisterModel (CreateModelPackage) steps."""

from __future__ import annotations

from typing import Any

from .context import RunContext, StepOutput
from .expressions import format_timestamp
from .files import write_json
from .jobs import now
from .names import arn
from .spec import StepSpec

MODEL_PROPERTIES = frozenset({"ModelName", "ModelArn", "CreationTime"})
REGISTER_MODEL_PROPERTIES = frozenset({
    "ModelPackageArn", "ModelPackageName", "ModelPackageVersion", "ModelPackageStatus",
    "ModelApprovalStatus", "CreationTime", "MetadataProperties",
})


def run_model(spec: StepSpec, arguments: dict[str, Any], context: RunContext) -> StepOutput:
    """Record the model under ``<work_dir>/models/<ModelName>.json``; nothing is deployed."""
    name = context.job_name(spec.name)
    model = {**arguments, "ModelName": name, "ModelArn": arn(f"model/{name}"),
             "CreationTime": format_timestamp(now())}
    write_json(context.work_dir / "models" / f"{name}.json", model)
    return StepOutput(model)


def run_register_model(spec: StepSpec, arguments: dict[str, Any], context: RunContext) -> StepOutput:
    """Add the next version to the model package group in the local registry."""
    package = context.registry.register(arguments, generated_by=context.execution.execution_arn)
    return StepOutput(package)
