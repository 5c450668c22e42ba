"""The Python API: what `pipeline.py` does, as functions for a SageMaker Studio notebook.

    from pipelines import api
    built = api.build(bucket="my-ml-bucket", role_arn="arn:aws:iam::<account>:role/HousePricePipeline")
    api.validate(built)                      # [] when the definition is valid
    api.upsert(built)                        # the pipeline's ARN
    arn = api.start(built, {"InputDataKey": "data/2026-11/"})
    api.status(built.settings)               # recent executions; api.status(built.settings, arn): its steps
    api.wait(built.settings, arn)            # follow it to the end

Settings not given fall back to the environment (`PIPELINE_BUCKET`, `PIPELINE_ROLE_ARN`, ...; in
Studio `SAGEMAKER_PROJECT_NAME`/`SAGEMAKER_PROJECT_ID` too), exactly as for the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from pipelines.definition import BuiltDefinition, build_definition, cached_build
from pipelines.settings import Settings


def settings(**values: Any) -> Settings:
    """Settings from keyword arguments (names as in `Settings`), else the environment, else defaults."""
    return Settings.resolve(values)


def build(settings_or_none: Settings | None = None, *, cache_dir: Path | None = None, **values: Any) -> BuiltDefinition:
    """The pipeline definition, built offline (no AWS call)."""
    resolved = settings_or_none or settings(**values)
    return cached_build(resolved, cache_dir) if cache_dir else build_definition(resolved)


def validate(built: BuiltDefinition) -> list[str]:
    """Problems in the definition (empty when it is valid), checked offline against the API shapes."""
    from pipelines.validate import validate_definition

    return validate_definition(built.document)


def check_parameters(built: BuiltDefinition, overrides: Mapping[str, Any] | None) -> dict[str, str]:
    """`overrides` as text after checking names, types and values against the declared parameters."""
    from localengine.parameters import resolve_parameters

    from pipelines.parameters import check_parameter_values

    as_text = {name: str(value) for name, value in (overrides or {}).items()}
    check_parameter_values(resolve_parameters(built.document, as_text))
    return as_text


def clients(resolved: Settings):
    from pipelines.deploy import AwsClients

    return AwsClients.for_settings(resolved)


def upsert(built: BuiltDefinition, aws=None) -> str:
    """Refuses an invalid definition; uploads code, creates or updates the pipeline; returns its ARN."""
    from pipelines.deploy import DeployError, upsert as upsert_pipeline

    from pipelines.policy import check_policy

    problems = validate(built)
    if problems:
        raise DeployError(f"definition is invalid ({len(problems)} problem(s)), first: {problems[0]}")
    violations = check_policy(built.document, built.settings)
    if violations:
        raise DeployError(f"the policy rules do not hold ({len(violations)} violation(s)), first: {violations[0]}; "
                          "run `pipeline.py validate --policy` for all")
    return upsert_pipeline(built, aws or clients(built.settings))


def start(built: BuiltDefinition, parameters: Mapping[str, Any] | None = None, aws=None,
          client_token: str | None = None) -> str:
    """Start an execution of the deployed pipeline with checked parameter overrides; returns its ARN.
    Each call starts one execution however often botocore retries it; a `client_token` used before
    starts none (SageMaker's ClientRequestToken)."""
    from pipelines.deploy import start_execution

    overrides = check_parameters(built, parameters)
    return start_execution((aws or clients(built.settings)).sagemaker, built.settings, overrides, client_token)


def wait(resolved: Settings, execution_arn: str, on_step: Callable[[dict], None] = print,
         poll_seconds: float = 30.0, aws=None) -> dict:
    """Follow an execution until it ends, calling `on_step` for each step status change."""
    from pipelines.deploy import wait_for_execution

    return wait_for_execution((aws or clients(resolved)).sagemaker, execution_arn, on_step, poll_seconds)


def status(resolved: Settings, execution_arn: str | None = None, *, limit: int = 10, aws=None) -> list[dict]:
    """Recent executions (newest first), or, given one execution, each of its steps (a failed job step
    with the tail of its job's log)."""
    from pipelines.status import execution_steps, recent_executions

    aws = aws or clients(resolved)
    if execution_arn:
        return execution_steps(aws.sagemaker, execution_arn, aws.logs)
    return recent_executions(aws.sagemaker, resolved.pipeline_name, limit)


def execution_arn(resolved: Settings, execution: str, aws=None) -> str:
    """An execution's ARN from its ARN or its id (as `status` lists it, among the newest 100)."""
    if execution.startswith("arn:"):
        return execution
    for row in status(resolved, limit=100, aws=aws):
        if row["execution"] == execution:
            return row["arn"]
    from pipelines.deploy import DeployError

    raise DeployError(f"no recent execution {execution} of pipeline {resolved.pipeline_name}; "
                      "`pipeline.py status` lists them")


def plan(built: BuiltDefinition, parameters: Mapping[str, Any] | None = None, *, local_dir: Path | None = None,
         aws=None) -> list:
    """Which steps the next execution takes from the step cache (`local_dir`: the next local run)."""
    from pipelines.plan import cloud_plan, local_plan

    overrides = check_parameters(built, parameters)
    if local_dir is not None:
        return local_plan(built, Path(local_dir), overrides)
    return cloud_plan(built, aws or clients(built.settings), overrides)
