"""Transient faults that a step's retry policies name, and a full disk, injected into real runs."""

import contextlib
import errno
import json
import os
import shutil
import subprocess
import threading

import pytest

from localengine import DefinitionError, LocalS3
from localengine.container import JobControl
from localengine.errors import Cancelled
from localengine.files import write_json
from localengine.results import StepEvent, describe_event

from test_engine_support import BUCKET, Env, processing_step

WRITE_REPORT = """
    import os
    out = os.path.join(os.environ["SM_OPT_ML"], "processing", "report")
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write("done")
"""


def retry_policy(*exception_types, **limits):
    return {"ExceptionType": list(exception_types), "IntervalSeconds": 0, "BackoffRate": 2.0,
            **(limits or {"MaxAttempts": 2})}


class RefusedStarts:
    """``subprocess.Popen`` that fails the first ``times`` job starts as fork does when the machine refuses a
    process (EAGAIN: the process limit; ENOMEM: no memory), then starts real processes."""

    def __init__(self, monkeypatch, code: int, times: int):
        self.code, self.times, self.calls = code, times, 0
        self._popen = subprocess.Popen
        monkeypatch.setattr(subprocess, "Popen", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.times:
            raise OSError(self.code, os.strerror(self.code))
        return self._popen(*args, **kwargs)


def test_a_fault_a_retry_policy_names_is_retried_and_the_step_succeeds(tmp_path, monkeypatch):
    env = Env(tmp_path)
    code = env.script("report.py", WRITE_REPORT)
    starts = RefusedStarts(monkeypatch, errno.EAGAIN, times=1)
    step = processing_step("Report", code, outputs={"report": f"{BUCKET}/out"},
                           RetryPolicies=[retry_policy("SageMaker.RESOURCE_LIMIT")])
    result = env.run([step])
    assert result.status == "Succeeded", result.failure_reason
    assert starts.calls == 2
    assert env.s3.read_bytes(f"{BUCKET}/out/report.txt") == b"done"
    report = result.steps["Report"]
    assert report.retried == [f"SageMaker.RESOURCE_LIMIT: cannot start {report.retried[0].split('start ')[1]}"]
    assert "process limit" in report.retried[0]
    assert "after 1 retry: SageMaker.RESOURCE_LIMIT" in describe_event(StepEvent("finished", "Report", "Processing",
                                                                                 report))


def test_a_retry_policy_stops_after_max_attempts_and_the_step_fails_saying_why(tmp_path, monkeypatch):
    env = Env(tmp_path)
    code = env.script("report.py", WRITE_REPORT)
    starts = RefusedStarts(monkeypatch, errno.ENOMEM, times=10)
    after = env.script("after.py", "print('must not run')")
    result = env.run([processing_step("Report", code, outputs={"report": f"{BUCKET}/out"},
                                      CacheConfig={"Enabled": True, "ExpireAfter": "P1D"},
                                      RetryPolicies=[retry_policy("SageMaker.CAPACITY_ERROR", MaxAttempts=2)]),
                      processing_step("After", after, DependsOn=["Report"])])
    assert result.status == "Failed" and starts.calls == 3  # the first attempt and two retries
    assert "SageMaker.CAPACITY_ERROR; still failing after 3 attempts" in result.failure_reason
    assert result.steps["After"].status == "NotStarted"
    assert not env.s3.exists(f"{BUCKET}/out")
    assert not list((tmp_path / "work" / "cache").rglob("*.json"))


def test_a_fault_no_retry_policy_names_fails_at_once(tmp_path, monkeypatch):
    env = Env(tmp_path)
    code = env.script("report.py", WRITE_REPORT)
    starts = RefusedStarts(monkeypatch, errno.ENOMEM, times=1)
    result = env.run([processing_step("Report", code,
                                      RetryPolicies=[retry_policy("SageMaker.RESOURCE_LIMIT", MaxAttempts=5)])])
    assert result.status == "Failed" and starts.calls == 1
    assert "SageMaker.CAPACITY_ERROR; no retry policy of the step names it" in result.failure_reason


def test_the_backoff_grows_by_its_rate_and_expire_after_min_bounds_it(tmp_path):
    from localengine.retries import RetryPolicy

    by_attempts = RetryPolicy.parse({"ExceptionType": ["SageMaker.CAPACITY_ERROR"], "IntervalSeconds": 60,
                                     "BackoffRate": 2.0, "MaxAttempts": 3}, "step X")
    assert [by_attempts.delay_before_retry(n, 0) for n in range(4)] == [60, 120, 240, None]
    by_time = RetryPolicy.parse({"ExceptionType": ["SageMaker.CAPACITY_ERROR"], "IntervalSeconds": 60,
                                 "ExpireAfterMin": 5}, "step X")
    assert by_time.delay_before_retry(0, 0) == 60 and by_time.delay_before_retry(2, 60) == 240
    assert by_time.delay_before_retry(2, 61) is None  # the retry would start after 5 minutes


@pytest.mark.parametrize("policy, named", [
    ({"ExceptionType": ["SageMaker.OUT_OF_LUCK"], "MaxAttempts": 1}, "SageMaker.OUT_OF_LUCK"),
    ({"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 1, "ExpireAfterMin": 5}, "exactly one of"),
    ({"ExceptionType": ["Step.THROTTLING"]}, "exactly one of"),
    ({"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 21}, "MaxAttempts 21"),
])
def test_a_malformed_retry_policy_is_refused_before_anything_runs(tmp_path, policy, named):
    env = Env(tmp_path)
    code = env.script("report.py", WRITE_REPORT)
    with pytest.raises(DefinitionError, match=named):
        env.run([processing_step("Report", code, RetryPolicies=[policy])])
    assert not (tmp_path / "work" / "executions").exists()


def test_an_interrupt_ends_the_wait_before_a_retry():
    control = JobControl(1)
    threading.Timer(0.1, control.cancel).start()
    with pytest.raises(Cancelled):
        control.pause(3600)


@contextlib.contextmanager
def full_filesystem(path, size="1m"):
    """A real filesystem of ``size`` mounted at ``path`` (a tmpfs: root only), or None where mounting is not
    allowed."""
    path.mkdir(parents=True)
    mounted = os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=True)


def full_local_s3_device(monkeypatch, allowed_bytes: int):
    """Where no small filesystem can be mounted: a copy into the local S3's staging area writes ``allowed_bytes``
    of the file, as much as a full disk takes, then fails with ENOSPC as the write would."""
    copy = shutil.copyfile

    def copyfile(source, target, **kwargs):
        if ".staging" not in str(target):
            return copy(source, target, **kwargs)
        with open(source, "rb") as reader, open(target, "wb") as writer:
            writer.write(reader.read(allowed_bytes))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    monkeypatch.setattr(shutil, "copyfile", copyfile)


BIG_OUTPUT = """
    import os
    out = os.path.join(os.environ["SM_OPT_ML"], "processing", "big")
    with open(os.path.join(out, "part-1.csv"), "w") as f:
        f.write("a,b\\n" + "123456,654321\\n" * 50_000)
    with open(os.path.join(out, "part-2.csv"), "w") as f:
        f.write("a,b\\n" + "123456,654321\\n" * 200_000)
"""


def test_a_full_disk_while_publishing_fails_the_step_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """Local S3 on a 1 MiB filesystem, a job that writes 3.5 MB of output: staging it fails with ENOSPC."""
    with full_filesystem(tmp_path / "small") as small:
        env = Env(tmp_path)
        if small is not None:
            env.s3 = LocalS3(small / "s3")
        code = env.script("big.py", BIG_OUTPUT)
        after = env.script("after.py", "print('must not run')")
        if small is None:
            full_local_s3_device(monkeypatch, allowed_bytes=1 << 20)
        result = env.run([processing_step("Big", code, outputs={"big": f"{BUCKET}/big/out"},
                                          CacheConfig={"Enabled": True, "ExpireAfter": "P1D"}),
                          processing_step("After", after, DependsOn=["Big"])])
        assert result.status == "Failed" and result.failed_step == "Big"
        assert result.failure_reason.startswith(f"no space left on the device of the local S3 at {env.s3.root} "
                                                f"while publishing {BUCKET}/big/out; nothing was published")
        assert result.steps["After"].status == "NotStarted"
        assert not env.s3.exists(f"{BUCKET}/big")
        assert not list((env.s3.root / ".staging").rglob("*"))
        assert not list((tmp_path / "work" / "cache").rglob("*.json"))
        # The sandbox would keep the disk full: unlike other failed jobs', it is removed. The log stays.
        execution = tmp_path / "work" / "executions" / result.execution_id
        assert not list((execution / "jobs").glob("*"))
        assert "Big.log" in [p.name for p in (execution / "logs").iterdir()]


def test_a_full_disk_while_writing_a_record_leaves_the_old_one_whole(tmp_path, monkeypatch):
    """A cache entry or execution record on a full disk: the write fails, the earlier record stays whole and no
    temporary file is left."""
    with full_filesystem(tmp_path / "small") as small:
        folder = small or tmp_path / "records"
        record = folder / "record.json"
        write_json(record, {"version": 1})
        if small is None:
            def dump(document, file, **kwargs):
                file.write('{"half": ')
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            monkeypatch.setattr(json, "dump", dump)
        with pytest.raises(OSError) as raised:
            write_json(record, {"version": 2, "padding": "x" * (2 << 20)})
        assert raised.value.errno == errno.ENOSPC
        assert json.loads(record.read_text()) == {"version": 1}
        assert [p.name for p in folder.iterdir()] == ["record.json"]
