"""`pipeline.py clean`: old executions' logs and kept sandboxes go; the step cache, local S3 and the registry stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from filelock import FileLock

from pipeline import main
from pipelines.local import RUN_LOCK

from test_engine_support import BUCKET, Env, processing_step

FAILING = """
import os, sys
open(os.path.join(os.environ["SM_OPT_ML"], "processing", "out", "x.txt"), "w").write("x")
sys.exit(int(os.environ.get("FAIL", "0")))
"""


def listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")) if root.exists() else []


def age(path: Path, days: float) -> None:
    stamp = time.time() - days * 24 * 3600
    for entry in [path, *path.rglob("*")]:
        os.utime(entry, (stamp, stamp))


def test_clean_removes_old_executions_and_their_kept_sandboxes_only(tmp_path, capsys):
    env = Env(tmp_path)
    code = env.script("job.py", FAILING)
    cached = processing_step("Cached", code, outputs={"out": f"{BUCKET}/ok"},
                             CacheConfig={"Enabled": True, "ExpireAfter": "P30D"})
    assert env.run([cached]).succeeded
    failed = env.run([processing_step("Broken", code, outputs={"out": f"{BUCKET}/broken"},
                                      environment={"FAIL": "1"})])
    assert not failed.succeeded
    executions = tmp_path / "work" / "executions"
    old, recent = executions / failed.execution_id, next(p for p in executions.iterdir() if p.name != failed.execution_id)
    assert list(old.glob("jobs/*")), "the failed job's sandbox is kept for inspection"
    age(old, 30)
    kept = {name: listing(tmp_path / name) for name in ("s3", "work/cache", "work/registry")}

    assert main(["clean", "--local-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"removed 1 execution(s) older than 14 day(s) from {tmp_path} (")
    assert sorted(executions.iterdir()) == [recent]
    assert {name: listing(tmp_path / name) for name in kept} == kept
    assert env.run([cached]).steps["Cached"].cache_hit  # the cache still serves

    assert main(["clean", "--local-dir", str(tmp_path), "--all"]) == 0
    assert list(executions.iterdir()) == []


def test_clean_refuses_while_a_run_uses_the_directory(tmp_path, capsys):
    with FileLock(tmp_path / RUN_LOCK):
        assert main(["clean", "--local-dir", str(tmp_path), "--all"]) == 1
    assert capsys.readouterr().err.strip() == f"error: a run is using {tmp_path}; clean it when the run has ended"


def test_retention_never_removes_the_execution_that_just_ran(tmp_path):
    from localengine.retention import remove_old_executions

    env = Env(tmp_path)
    code = env.script("job.py", FAILING)
    first = env.run([processing_step("One", code, outputs={"out": f"{BUCKET}/one"})])
    second = env.run([processing_step("Two", code, outputs={"out": f"{BUCKET}/two"})])
    removed = remove_old_executions(tmp_path / "work", 0, keep=frozenset({second.execution_id}))
    assert (removed.executions, removed.kept) == (1, 1)
    assert [p.name for p in (tmp_path / "work" / "executions").iterdir()] == [second.execution_id]
    assert first.execution_id != second.execution_id
