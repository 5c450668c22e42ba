"""Pieces shared by Processing and Training jobs."""

from __future__ import annotations

import dataclasses

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .container import ContainerOutcome, ContainerRun, failure_reason, read_message, run_containers_together
from .context import RunContext
from .errors import EngineError, StepFailed
from .parameters import format_value
from .s3 import LocalS3


def now() -> datetime:
    return datetime.now(timezone.utc)


def download_input(s3: LocalS3, uri: str, local_dir: Path, what: str, shard: tuple[int, int] = (0, 1)) -> None:
    """Copy an S3 input (or a host's shard of it) into the sandbox; a missing input fails the job with a clear
    reason."""
    try:
        s3.download(uri, local_dir, shard)
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
    return run_job_processes([(run, message_file)], context)


def run_job_processes(hosts: list[tuple[ContainerRun, Path]], context: RunContext) -> ContainerOutcome:
    """Run the processes of a job's hosts (each with its message file, the first the leader's) together in one
    job slot. Raise ``StepFailed`` for the first host that failed on its own (the others were stopped with it);
    else the leader's outcome, with every host's metrics (the leader's where they differ), interrupted if any
    host was."""
    with context.control.slot():
        outcomes = run_containers_together([run for run, _ in hosts], context.control)
    for (run, message_file), outcome in zip(hosts, outcomes):
        if not outcome.succeeded and not outcome.interrupted:
            raise StepFailed(failure_reason(outcome, read_message(message_file), run), log_path=run.log_path)
    leader = outcomes[0]
    metrics = {name: value for outcome in reversed(outcomes) for name, value in outcome.metrics.items()}
    return dataclasses.replace(leader, metrics=metrics, interrupted=any(outcome.interrupted for outcome in outcomes))


def resource_config(instance_type: str | None, current_host: str = "algo-1",
                    hosts: tuple[str, ...] = ("algo-1",)) -> dict[str, Any]:
    """``/opt/ml/input/config/resourceconfig.json`` of one host of a job."""
    return {"current_host": current_host, "current_instance_type": instance_type or "local",
            "current_group_name": "homogeneousCluster", "hosts": list(hosts),
            "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                 "instance_type": instance_type or "local", "hosts": list(hosts)}],
            "network_interface_name": "eth0"}
