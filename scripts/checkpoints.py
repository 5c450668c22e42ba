"""A training job's progress, kept where SageMaker keeps checkpoints so that a restarted job resumes.

With a CheckpointConfig, SageMaker copies what the job writes under /opt/ml/checkpoints to the
configured S3 URI while it runs, and when a spot interruption restarts the job on a new instance it
copies that back before the script starts again (Developer Guide, "Checkpoints in Amazon SageMaker
AI"). Without a CheckpointConfig there is no such directory and nothing is kept. Each job keeps its
progress in a folder named after the job, so tuning trials that share one S3 prefix never resume
each other's work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from container import opt_ml_root, write_bytes_atomic


class Progress:
    """Named records of finished work; ``load`` gives back what ``save`` stored before a restart."""

    def __init__(self, directory: Path | None):
        self.directory = directory

    @classmethod
    def of_this_job(cls) -> "Progress":
        checkpoints = opt_ml_root() / "checkpoints"
        if not checkpoints.is_dir():
            return cls(None)
        return cls(checkpoints / os.environ.get("TRAINING_JOB_NAME", "job"))

    @property
    def kept(self) -> bool:
        return self.directory is not None

    def load(self, name: str) -> dict | None:
        path = self._path(name)
        return json.loads(path.read_text()) if path is not None and path.is_file() else None

    def save(self, name: str, record: dict) -> None:
        if self.kept:
            write_bytes_atomic(self._path(name), json.dumps(record).encode())

    def _path(self, name: str) -> Path | None:
        return self.directory / f"{name}.json" if self.kept else None
