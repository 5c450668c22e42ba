"""The hosts of a job that runs on several instances, as SageMaker names them (``algo-1``, ``algo-2``, ...), and
which of them leads: the first by name, as the XGBoost container's ``distributed.py`` and the Spark processing
container's ``smspark/job.py`` both choose."""

from __future__ import annotations

import os
from dataclasses import dataclass

# Set by the local engine only: its hosts share one machine, so each multi-host job gets a free port of its own.
LOCAL_PORT_VARIABLE = "LOCALENGINE_CLUSTER_PORT"
# How long the hosts wait for each other to join (and to leave); a host that never comes fails the job instead
# of hanging it. The local engine's tests shorten it through LOCAL_TIMEOUT_VARIABLE.
CONNECT_TIMEOUT_SECONDS = 300
LOCAL_TIMEOUT_VARIABLE = "LOCALENGINE_CONNECT_TIMEOUT_SECONDS"


def connect_timeout() -> int:
    """Seconds."""
    return int(os.environ.get(LOCAL_TIMEOUT_VARIABLE, CONNECT_TIMEOUT_SECONDS))


@dataclass(frozen=True)
class JobHosts:
    hosts: tuple[str, ...]
    current_host: str

    @property
    def distributed(self) -> bool:
        return len(self.hosts) > 1

    @property
    def leader(self) -> str:
        return sorted(self.hosts)[0]

    @property
    def is_leader(self) -> bool:
        return self.current_host == self.leader

    def port(self, default: int) -> int:
        """Where the hosts meet: the framework's fixed port, or the one the local engine chose for the job."""
        return int(os.environ.get(LOCAL_PORT_VARIABLE, default))
