"""The instances of a processing job, and the messages they exchange.

A processing job with InstanceCount above one runs the same script on every instance. SageMaker names them in
``/opt/ml/config/resourceconfig.json`` (``current_host``, ``hosts``: ``algo-1``, ``algo-2``, ...; "How Amazon
SageMaker Processing Configures Your Processing Container"), gives each its share of the ShardedByS3Key inputs,
and lets them reach each other by those names, as Spark processing jobs do. The scikit-learn image has no
collective, so the hosts talk through ``multiprocessing.connection``: every other host connects to the leader
(the first by name, as aws/sagemaker-spark-container's ``smspark/job.py`` chooses its primary host, which also
waits for every host name to resolve), which gathers what they send and broadcasts back.

What travels is bytes (JSON, Arrow IPC): nothing received is unpickled. The connection key is the job's name,
which keeps other jobs' hosts out; the job's own network (VPC, inter-container encryption) is what guards it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from pathlib import Path

from job_hosts import JobHosts, connect_timeout

EXCHANGE_PORT = 9097


class HostFailed(ValueError):
    """Another host of the job failed; the message is its reason, naming the host."""


@dataclass(frozen=True)
class ProcessingHosts(JobHosts):
    job_name: str = ""

    @classmethod
    def of_this_job(cls, config_dir: Path) -> "ProcessingHosts":
        """The hosts named in ``config_dir``'s resourceconfig.json; one host when there is none (outside a job)."""
        resources = config_dir / "resourceconfig.json"
        job = config_dir / "processingjobconfig.json"
        config = json.loads(resources.read_text()) if resources.is_file() else {}
        hosts = tuple(config.get("hosts") or ["algo-1"])
        name = json.loads(job.read_text()).get("ProcessingJobName", "") if job.is_file() else ""
        return cls(hosts, config.get("current_host") or hosts[0], name)

    @contextlib.contextmanager
    def exchange(self) -> Iterator["Exchange"]:
        """The open connections: the leader's to every other host, or this host's to the leader. A failure inside
        is sent to the other hosts before it propagates, so they stop with its reason instead of waiting."""
        port = self.port(EXCHANGE_PORT)
        key = f"processing-job:{self.job_name}".encode()
        exchange = Exchange(self, _accept_all(self, port, key) if self.is_leader else
                            {self.leader: _connect(self.leader, port, key, self.current_host)})
        try:
            yield exchange
        except BaseException as error:
            if isinstance(error, HostFailed):
                exchange.tell_failure(str(error))
            else:
                exchange.tell_failure(f"{error} (on {self.current_host})" if isinstance(error, ValueError)
                                      else f"{self.current_host} stopped: {type(error).__name__}: {error}")
            raise
        finally:
            for connection in exchange.connections.values():
                connection.close()


def _accept_all(hosts: ProcessingHosts, port: int, key: bytes) -> dict[str, Connection]:
    """Every other host's connection, authenticated as multiprocessing's Listener does. The listening socket is
    our own: the Listener makes its socket blocking, so its accept() would wait for a missing host for ever."""
    others = [host for host in hosts.hosts if host != hosts.current_host]
    timeout = connect_timeout()
    deadline = time.monotonic() + timeout
    connections = {}
    # On the address its own name resolves to, which the other hosts reach it by: no other interface.
    with socket.create_server((_address(hosts.current_host, deadline), port)) as server:
        while len(connections) < len(others):
            server.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                accepted, _ = server.accept()
            except TimeoutError:
                missing = ", ".join(sorted(set(others) - set(connections)))
                raise ValueError(f"processing hosts {missing} did not connect to {hosts.current_host} within "
                                 f"{timeout} s; see their logs") from None
            accepted.setblocking(True)
            connection = Connection(accepted.detach())
            deliver_challenge(connection, key)
            answer_challenge(connection, key)
            connections[connection.recv_bytes().decode()] = connection
    return {host: connections[host] for host in others}


def _address(host: str, deadline: float) -> str:
    """A host's address: a job's host names may take a while to resolve once it starts."""
    while True:
        try:
            return socket.gethostbyname(host)
        except socket.gaierror:
            if time.monotonic() > deadline:
                raise ValueError(f"the processing host name {host} did not resolve within {connect_timeout()} s"
                                 ) from None
            time.sleep(0.5)


def _connect(leader: str, port: int, key: bytes, current_host: str) -> Connection:
    timeout = connect_timeout()
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = Client((_address(leader, deadline), port), authkey=key)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise ValueError(f"could not reach the leading processing host {leader} on port {port} within "
                                 f"{timeout} s; see its log") from None
            time.sleep(0.2)
    connection.send_bytes(current_host.encode())
    return connection


class Exchange:
    def __init__(self, hosts: ProcessingHosts, connections: dict[str, Connection]):
        self.hosts, self.connections = hosts, connections

    def gather(self, blobs: list[bytes]) -> list[list[bytes]]:
        """On the leader: every host's blobs, the leader's first, then by host name; elsewhere: []."""
        if not self.hosts.is_leader:
            self._send(self.hosts.leader, blobs)
            return []
        return [blobs, *(self._receive(host) for host in self.connections)]

    def broadcast(self, blob: bytes = b"") -> bytes:
        """The leader's ``blob``, on every host."""
        if not self.hosts.is_leader:
            return self._receive(self.hosts.leader)[0]
        for host in self.connections:
            self._send(host, [blob])
        return blob

    def tell_failure(self, message: str) -> None:
        """Best effort: a host that is gone already needs no telling."""
        for connection in self.connections.values():
            with contextlib.suppress(OSError):
                connection.send_bytes(json.dumps({"failed": message}).encode())

    def _send(self, host: str, blobs: list[bytes]) -> None:
        connection = self.connections[host]
        connection.send_bytes(json.dumps({"blobs": len(blobs)}).encode())
        for blob in blobs:
            connection.send_bytes(blob)

    def _receive(self, host: str) -> list[bytes]:
        connection = self.connections[host]
        try:
            header = json.loads(connection.recv_bytes())
            if "failed" in header:
                raise HostFailed(header["failed"])
            return [connection.recv_bytes() for _ in range(header["blobs"])]
        except (EOFError, OSError):
            raise HostFailed(f"processing host {host} stopped without a word; see its log") from None
