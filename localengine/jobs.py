"""Pieces shared by Processing and Training jobs."""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .container import ContainerOutcome, ContainerRun, failure_reason, read_message, run_containers_together
from .context import RunContext
from .errors import EngineError, StepFailed
from .images import SHIMS
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


# Where the hosts of a multi-host job meet on this machine (SageMaker's hosts are instances of their own, each
# with every port free; here they share one machine, so each job gets a free port). A script may read it in
# place of its framework's fixed port.
CLUSTER_PORT_VARIABLE = "LOCALENGINE_CLUSTER_PORT"
HOSTNAMES_SHIM = SHIMS.parent / "hostnames"  # its sitecustomize.py resolves algo-N to this machine


@dataclass(frozen=True)
class JobHost:
    """One instance of a job: ``algo-<n>``, as SageMaker names them."""

    name: str
    names: tuple[str, ...]
    cluster_port: int | None  # set when there is more than one host

    @property
    def index(self) -> int:
        return self.names.index(self.name)

    @property
    def is_leader(self) -> bool:
        return self.index == 0

    def sandbox_root(self, context: RunContext, job: str) -> Path:
        root = context.sandbox_root(job)
        return root / self.name if len(self.names) > 1 else root

    def log_path(self, job_log: Path) -> Path:
        """The leader logs to the job's log; each other host to one beside it (a log stream per host)."""
        return job_log if self.is_leader else job_log.with_name(f"{job_log.stem}.{self.name}{job_log.suffix}")

    def cpu_share(self, cpu_set: frozenset[int] | None) -> frozenset[int] | None:
        if cpu_set is None or len(self.names) == 1:
            return cpu_set
        cores = sorted(cpu_set)
        share = cores[self.index::len(self.names)]
        return frozenset(share) if share else cpu_set

    def environment(self) -> dict[str, str]:
        """What a host of a multi-host job needs on this machine besides the contract: the port to meet on."""
        if len(self.names) == 1:
            return {}
        return {CLUSTER_PORT_VARIABLE: str(self.cluster_port)}

    def resolving_names(self, environment: dict[str, str]) -> dict[str, str]:
        """``environment`` in which the host names of a multi-host job resolve to this machine."""
        if len(self.names) == 1:
            return environment
        paths = [str(HOSTNAMES_SHIM), environment.get("PYTHONPATH")]
        return {**environment, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def job_hosts(count: int) -> list[JobHost]:
    """The hosts of a job of ``count`` instances."""
    names = tuple(f"algo-{number}" for number in range(1, count + 1))
    port = _free_port() if count > 1 else None
    return [JobHost(name, names, port) for name in names]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resource_config(instance_type: str | None, current_host: str = "algo-1",
                    hosts: tuple[str, ...] = ("algo-1",)) -> dict[str, Any]:
    """``/opt/ml/input/config/resourceconfig.json`` of one host of a job."""
    return {"current_host": current_host, "current_instance_type": instance_type or "local",
            "current_group_name": "homogeneousCluster", "hosts": list(hosts),
            "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                 "instance_type": instance_type or "local", "hosts": list(hosts)}],
            "network_interface_name": "eth0"}
