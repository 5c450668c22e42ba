"""What stands in for a container: a sandbox directory and a supervised subprocess.

The ``/opt/ml`` tree of a container lives at ``<sandbox>/opt/ml``. Paths that the
definition gives (input/output LocalPaths, entrypoint, container arguments) are
rewritten to it, and ``SM_OPT_ML`` tells the script where it is, so scripts that
derive their paths from ``SM_OPT_ML`` (defaulting to ``/opt/ml``) run unchanged.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import Cancelled, EngineError, TransientFault, is_disk_full
from .parameters import format_value

CONTAINER_OPT_ML = "/opt/ml"
# What a fast-mode job takes from the caller's environment: how to find programs, libraries and packages,
# and how to read text and time. Everything else (credentials, tokens, proxies, settings) stays behind.
INTERPRETER_VARIABLES = ("PATH", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "PYTHONPATH", "SYSTEMROOT", "TMPDIR",
                         "LANG", "LC_ALL", "LC_CTYPE", "TZ")
LOG_TAIL_LINES = 20
MESSAGE_LIMIT_BYTES = 1024  # what the service keeps of output/message and output/failure
_OPT_ML_PATTERN = re.compile(r"(?<![\w./-])/opt/ml(?![\w.-])")
_PYTHON_COMMAND = re.compile(r"python[0-9.]*")


class Sandbox:
    """A job's private directory; ``opt_ml`` is where the container's ``/opt/ml`` lives."""

    def __init__(self, root: Path):
        self.root = root
        self.opt_ml = root / "opt" / "ml"
        self.opt_ml.mkdir(parents=True, exist_ok=True)

    def remap(self, text: str) -> str:
        """Rewrite every ``/opt/ml`` path inside ``text`` (also in ``--x=/opt/ml/y``) to the sandbox."""
        return _OPT_ML_PATTERN.sub(lambda _: str(self.opt_ml), text)

    def local_path(self, container_path: str) -> Path:
        """The sandbox path of a container path, which must lie under ``/opt/ml``."""
        if not _OPT_ML_PATTERN.match(container_path):
            raise EngineError(f"container path {container_path!r} is outside {CONTAINER_OPT_ML}")
        return Path(self.remap(container_path))

    def command(self, argv: list[Any], interpreter: str = sys.executable) -> list[str]:
        """The argv to run locally: values as text, paths remapped, a leading
        ``python``/``python3`` replaced by ``interpreter`` (this Python unless the image has its own)."""
        argv = [self.remap(format_value(arg)) for arg in argv]
        if argv and _PYTHON_COMMAND.fullmatch(argv[0]):
            argv[0] = interpreter
        return argv

    def base_environment(self) -> dict[str, str]:
        """A fast-mode job's start: of this process's environment only what the interpreter and its native
        libraries need (no credentials, tokens or settings of the caller's), a home of its own (so no
        ``~/.aws`` either), and what every job gets."""
        passed = {name: os.environ[name] for name in INTERPRETER_VARIABLES if name in os.environ}
        return {**passed, "HOME": str(self._home()), "SM_OPT_ML": str(self.opt_ml), "PYTHONUNBUFFERED": "1"}

    def _home(self) -> Path:
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        return home

    def container_environment(self, interpreter: Path) -> dict[str, str]:
        """What a framework image's container starts with (its Dockerfiles' ENV), not the caller's
        environment: the image's Python first on PATH, a home of its own, ``SM_OPT_ML`` for the paths."""
        return {"PATH": f"{interpreter.parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(self._home()), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "UTF-8",
                "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "SM_OPT_ML": str(self.opt_ml)}


@contextlib.contextmanager
def job_sandbox(root: Path) -> Iterator[Sandbox]:
    """A fresh sandbox that is deleted when the job succeeds and kept for inspection when it fails,
    unless it failed for a full disk, which the sandbox would go on filling."""
    if root.exists():
        shutil.rmtree(root)
    sandbox = Sandbox(root)
    try:
        yield sandbox
    except BaseException as error:
        if is_disk_full(error):
            shutil.rmtree(root, ignore_errors=True)
        raise
    shutil.rmtree(root, ignore_errors=True)


class JobControl:
    """Bounds how many jobs run at once and lets an interrupted run stop them all."""

    def __init__(self, max_parallel_jobs: int):
        self.max_parallel_jobs = max_parallel_jobs
        self._slots = threading.BoundedSemaphore(max_parallel_jobs)
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._cancelled = threading.Event()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``max_parallel_jobs`` job slots."""
        with self._slots:
            self._raise_if_cancelled()
            yield

    def cancel(self) -> None:
        """Kill every running job's process group; jobs not yet started will not start."""
        with self._lock:
            self._cancelled.set()
            for process in self._running:
                _kill_group(process)

    def pause(self, seconds: float) -> None:
        """Sleep (before a retry) unless the run is interrupted meanwhile."""
        if self._cancelled.wait(seconds):
            raise Cancelled("the run was interrupted")

    def _raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled("the run was interrupted")

    def start(self, argv: list[str], *, env: dict[str, str], cwd: Path,
              cpu_set: frozenset[int] | None = None) -> subprocess.Popen:
        with self._lock:
            self._raise_if_cancelled()
            # A session of its own, so that a timeout or an interrupt kills the whole tree.
            process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            if cpu_set and hasattr(os, "sched_setaffinity"):
                # Its share of the machine, as a tuning trial has an instance of its own; the
                # processes it starts inherit the share.
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(process.pid, cpu_set)
            self._running.add(process)
            return process

    def finished(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(process)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class ContainerRun:
    """One container process: what to run, where its log goes, what to watch in it."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    max_runtime_seconds: float | None = None
    metric_definitions: list[dict[str, Any]] = field(default_factory=list)
    cpu_set: frozenset[int] | None = None  # the cores it may use (a tuning trial's share)
    interrupt_when: Callable[[], bool] | None = None  # polled: true stops the job as a reclaimed instance would


@dataclass
class ContainerOutcome:
    exit_code: int
    timed_out: bool
    metrics: dict[str, tuple[float, datetime]]  # metric name → (last value, when it was logged)
    log_tail: list[str]
    interrupted: bool = False  # stopped because ``interrupt_when`` came true

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.interrupted


class _LogWatcher:
    """Copies the process output to the log file, keeps its tail, and applies metric regexes."""

    def __init__(self, log_file, metric_definitions: list[dict[str, Any]]):
        self._log_file = log_file
        self._patterns = [(d["Name"], re.compile(d["Regex"])) for d in metric_definitions]
        self.tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.metrics: dict[str, tuple[float, datetime]] = {}

    def consume(self, stream) -> None:
        for raw in stream:
            line = raw.decode("utf-8", errors="replace")
            self._log_file.write(line)
            self._log_file.flush()
            self.tail.append(line.rstrip("\n"))
            self._match_metrics(line)

    def _match_metrics(self, line: str) -> None:
        for name, pattern in self._patterns:
            match = pattern.search(line)
            if match:
                with contextlib.suppress(ValueError, IndexError):
                    self.metrics[name] = (float(match.group(1)), datetime.now(timezone.utc))


def run_container(run: ContainerRun, control: JobControl) -> ContainerOutcome:
    """Run the process to completion (or until MaxRuntimeInSeconds), logging its output."""
    run.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(run.log_path, "a", encoding="utf-8") as log_file:
        log_file.write(f"$ {' '.join(run.argv)}\n")
        log_file.flush()
        watcher = _LogWatcher(log_file, run.metric_definitions)
        try:
            process = control.start(run.argv, env=run.env, cwd=run.cwd, cpu_set=run.cpu_set)
        except OSError as error:
            raise _start_failure(run, error) from None
        reader = threading.Thread(target=watcher.consume, args=(process.stdout,), daemon=True)
        reader.start()
        timed_out, interrupted = _wait(process, run.max_runtime_seconds, run.interrupt_when)
        # As when a container stops: what the job left running must not outlive it (and
        # must not hold the output pipe open).
        _kill_group(process)
        reader.join()
        process.stdout.close()
        control.finished(process)
    return ContainerOutcome(process.returncode, timed_out, watcher.metrics, list(watcher.tail), interrupted)


def run_containers_together(runs: list[ContainerRun], control: JobControl) -> list[ContainerOutcome]:
    """Run the processes of one job's hosts at once (they may wait for each other). When one of them stops short
    (fails, times out, is interrupted), the others are stopped as interrupted, as SageMaker stops the instances
    of a job one of whose hosts failed."""
    if len(runs) == 1:
        return [run_container(runs[0], control)]
    stopped = threading.Event()
    outcomes: list[ContainerOutcome | None] = [None] * len(runs)
    errors: list[BaseException] = []

    def run_host(index: int, run: ContainerRun) -> None:
        own = run.interrupt_when
        try:
            outcomes[index] = run_container(dataclasses.replace(
                run, interrupt_when=lambda: stopped.is_set() or bool(own and own())), control)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(error)
        if outcomes[index] is None or not outcomes[index].succeeded:
            stopped.set()

    threads = [threading.Thread(target=run_host, args=(index, run), daemon=True) for index, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return outcomes


# The machine refusing a new process stands for the service refusing a new instance: the faults that
# a step's retry policies name for it.
_START_FAULTS = {
    errno.EAGAIN: ("SageMaker.RESOURCE_LIMIT", "the machine's process limit is reached"),
    errno.ENOMEM: ("SageMaker.CAPACITY_ERROR", "the machine has no memory for another process"),
}


def _start_failure(run: ContainerRun, error: OSError) -> EngineError:
    if error.errno in _START_FAULTS:
        exception_type, meaning = _START_FAULTS[error.errno]
        return TransientFault(exception_type, f"cannot start {run.argv[0]}: {error.strerror} ({meaning})")
    return EngineError(f"cannot start {run.argv[0]}: {error}")


# Only for a simulated spot interruption; short, as a boosting segment on a small table takes about 0.1 s.
INTERRUPT_POLL_SECONDS = 0.02


def _wait(process: subprocess.Popen, max_runtime_seconds: float | None,
          interrupt_when: Callable[[], bool] | None) -> tuple[bool, bool]:
    """Wait for the process; ``(timed out, interrupted)``, having killed it in either case."""
    deadline = time.monotonic() + max_runtime_seconds if max_runtime_seconds is not None else None
    while True:
        waits = [seconds for seconds in (INTERRUPT_POLL_SECONDS if interrupt_when else None,
                                         deadline - time.monotonic() if deadline is not None else None)
                 if seconds is not None]
        try:
            process.wait(timeout=max(0.0, min(waits)) if waits else None)
            return False, False
        except subprocess.TimeoutExpired:
            timed_out = deadline is not None and time.monotonic() >= deadline
            interrupted = not timed_out and interrupt_when is not None and interrupt_when()
            if timed_out or interrupted:
                _kill_group(process)
                process.wait()
                return timed_out, interrupted


def read_message(path: Path) -> str:
    """The first KB of a job's ``output/message`` or ``output/failure`` file, or ''."""
    if not path.is_file():
        return ""
    with open(path, "rb") as file:
        return file.read(MESSAGE_LIMIT_BYTES).decode("utf-8", errors="replace").strip()


def failure_reason(outcome: ContainerOutcome, message: str, run: ContainerRun) -> str:
    """What a failed job reports: its own message (or why it stopped) and the end of its log."""
    if outcome.timed_out:
        cause = f"exceeded MaxRuntimeInSeconds ({run.max_runtime_seconds:g} s) and was stopped"
    elif outcome.exit_code == -signal.SIGKILL:
        # Nobody here sends SIGKILL to a running job but the kernel's out-of-memory killer or a person.
        # Jobs share this machine's memory where on SageMaker each has an instance of its own.
        cause = ("was killed (SIGKILL): out of memory (the kernel's OOM killer), or killed from outside; on "
                 "SageMaker give the step an instance type with more memory; here, run fewer jobs at once (a "
                 "tuning job's MaxParallelTrainingJobs)")
    elif outcome.exit_code < 0:
        cause = f"was killed by signal {signal.Signals(-outcome.exit_code).name}"
    else:
        cause = f"exited with code {outcome.exit_code}"
    headline = f"{message} ({cause})" if message else f"the job {cause}"
    lines = len(outcome.log_tail)
    tail = "\n".join(outcome.log_tail)
    return f"{headline}\n--- last {lines} line{'' if lines == 1 else 's'} of {run.log_path} ---\n{tail}"
