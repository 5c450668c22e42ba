"""How long a work directory keeps what runs leave behind: each execution's logs and the sandboxes of its
failed jobs (kept for inspection). The step cache, local S3 and the model registry are never touched."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Removed:
    executions: int
    kept: int
    bytes_freed: int


def _size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink())


def _last_touched(execution: Path) -> float:
    return max((entry.stat().st_mtime for entry in (execution, *execution.rglob("*"))), default=0.0)


def remove_old_executions(work_dir: Path, older_than_seconds: float, keep: frozenset[str] = frozenset()) -> Removed:
    """Delete every execution directory (logs, kept job sandboxes, execution.json) whose newest file is
    older than `older_than_seconds` (0: whatever its age), except the executions in `keep`. Call it only
    while no run uses `work_dir`."""
    executions = work_dir / "executions"
    if not executions.is_dir():
        return Removed(0, 0, 0)
    cutoff = time.time() - older_than_seconds
    removed = kept = freed = 0
    for execution in sorted(path for path in executions.iterdir() if path.is_dir()):
        if execution.name in keep or (older_than_seconds and _last_touched(execution) >= cutoff):
            kept += 1
            continue
        freed += _size(execution)
        shutil.rmtree(execution)
        removed += 1
    return Removed(removed, kept, freed)
