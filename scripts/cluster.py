"""The hosts of a training job, and XGBoost's collective across them.

A training job with InstanceCount above one runs the same script on every host. The container contract names
them: SM_HOSTS (all of them, `algo-1`, `algo-2`, ...) and SM_CURRENT_HOST, as in resourceconfig.json. Each host
reads its own shard of the ShardedByS3Key channels. XGBoost joins them with its collective:

- one host, the first by name, runs the tracker that the others connect to (how sagemaker-xgboost-container's
  `distributed.py` chooses it, on the port it uses, 9099);
- each host's QuantileDMatrix holds its own rows; XGBoost merges the quantile sketches, the gradient histograms
  and the evaluation metrics across the hosts, so every host grows the same trees and sees the same scores;
- what the script sums itself (squared errors, row counts) goes through ``Cluster.total``.

On one host nothing of this starts, and ``total`` is the value itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from job_hosts import JobHosts, connect_timeout

TRACKER_PORT = 9099


@dataclass(frozen=True)
class Cluster(JobHosts):
    @classmethod
    def of_this_job(cls) -> "Cluster":
        hosts = tuple(json.loads(os.environ.get("SM_HOSTS", '["algo-1"]')))
        return cls(hosts, os.environ.get("SM_CURRENT_HOST", hosts[0]))

    @contextlib.contextmanager
    def connected(self) -> Iterator["Cluster"]:
        """Within it, XGBoost trains across all hosts (the leader also runs the tracker)."""
        if not self.distributed:
            yield self
            return
        from xgboost import collective, tracker

        port = self.port(TRACKER_PORT)
        # Names resolved here, through Python's resolver: XGBoost's own connects by address.
        leader_address = socket.gethostbyname(self.leader)
        rabit = None
        if self.is_leader:
            rabit = tracker.RabitTracker(n_workers=len(self.hosts), host_ip=leader_address, port=port,
                                         sortby="task", timeout=connect_timeout())
            rabit.start()
        with collective.CommunicatorContext(dmlc_tracker_uri=leader_address, dmlc_tracker_port=port,
                                            dmlc_task_id=self.current_host):
            yield self
        if rabit is not None:
            rabit.wait_for()

    def total(self, values) -> np.ndarray:
        """The element-wise sum of ``values`` over all hosts (inside ``connected``)."""
        array = np.asarray(values, dtype=np.float64)
        if not self.distributed:
            return array
        from xgboost import collective

        return collective.allreduce(array, collective.Op.SUM)


ONE_HOST = Cluster(("algo-1",), "algo-1")
