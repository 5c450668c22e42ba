"""Pieces shared by Processing and Training jobs."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .container import ContainerOutcome, ContainerRun, failure_reason, read_message, run_container
from .context import RunContext
from .errors import EngineError, StepFailed
from .parameters import format_value
from .s3 import LocalS3


def now() -> datetime:
    return datetime.now(timezone.utc)


def download_input(s3: LocalS3, uri: str, local_dir: Path, what: str) -> None:
    """Copy an S3 input into the sandbox; a missing input fails the job with a clear reason."""
    try:
        s3.download(uri, local_dir)
    except EngineError as error:
        raise EngineError(f"{what}: {error}") from None


def text_environment(environment: dict[str, Any] | None) -> dict[str, str]:
    """A definition's ``Environment`` with every value as text (parameters may be numbers)."""
    return {key: format_value(value) for key, value in (environment or {}).items()}


def max_runtime(arguments: dict[str, Any]) -> float | None:
    seconds = (arguments.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return float(seconds) if seconds is not None else None


def run_job_process(run: ContainerRun, context: RunContext, message_file: Path) -> ContainerOutcome:
    """Run the container process in a job slot; raise ``StepFailed`` with the job's own
    message and the end of its log if it fails or runs out of time (an interrupted one is returned)."""
    with context.control.slot():
        outcome = run_container(run, context.control)
    if not outcome.succeeded and not outcome.interrupted:
        raise StepFailed(failure_reason(outcome, read_message(message_file), run), log_path=run.log_path)
    return outcome


def resource_config(instance_type: str | None) -> dict[str, Any]:
    """``/opt/ml/input/config/resourceconfig.json`` of a single-instance job."""
    return {"current_host": "algo-1", "current_instance_type": instance_type or "local",
            "current_group_name": "homogeneousCluster", "hosts": ["algo-1"],
            "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                 "instance_type": instance_type or "local", "hosts": ["algo-1"]}],
            "network_interface_name": "eth0"}
