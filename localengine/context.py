"""What a step needs to know about the execution it belongs to."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .container import JobControl, Sandbox
from .expressions import format_timestamp
from .images import ImageEnvironments, framework_image
from .names import arn, job_name
from .registry import LocalModelRegistry
from .registry_api import RegistryApi
from .s3 import LocalS3


@dataclass(frozen=True)
class ExecutionInfo:
    """Identity of one pipeline execution; the ``Execution.*`` variables come from here."""

    pipeline_name: str
    execution_id: str
    start_time: datetime

    @property
    def pipeline_arn(self) -> str:
        return arn(f"pipeline/{self.pipeline_name.lower()}")

    @property
    def execution_arn(self) -> str:
        return f"{self.pipeline_arn}/execution/{self.execution_id}"

    def variables(self) -> dict[str, str]:
        """Every execution variable except ``CurrentDateTime``, which is read when used."""
        return {"PipelineExecutionId": self.execution_id, "PipelineExecutionArn": self.execution_arn,
                "PipelineName": self.pipeline_name, "PipelineArn": self.pipeline_arn,
                "StartDateTime": format_timestamp(self.start_time)}


@dataclass
class RunContext:
    """Shared services of a run; one instance per execution, used from many threads."""

    execution: ExecutionInfo
    s3: LocalS3
    work_dir: Path
    control: JobControl
    registry: LocalModelRegistry
    cpu_count: int
    registry_api: RegistryApi
    images: ImageEnvironments | None = None  # faithful mode: each image's own environment
    interrupt_spot_jobs: bool = False  # reclaim each managed-spot job's instance once, after its first checkpoint

    def job_environment(self, base: dict[str, str]) -> dict[str, str]:
        """What a job process starts with: ``base`` without the caller's AWS credentials, with the
        SageMaker API pointed at the local registry."""
        return self.registry_api.job_environment(base)

    def interpreter(self, image_uri: str) -> Path:
        """The Python a job of this image runs: the image's environment in faithful mode, else this one."""
        if self.images is None:
            return Path(sys.executable)
        return self.images.python(framework_image(image_uri))

    def container_environment(self, sandbox: Sandbox, image_uri: str) -> dict[str, str]:
        """A job's starting environment: this process's (fast mode) or the image's (faithful mode)."""
        if self.images is None:
            return self.job_environment(sandbox.base_environment())
        return self.job_environment({**sandbox.container_environment(self.interpreter(image_uri)),
                                     "PIP_CACHE_DIR": str(self.images.root / "pip-cache")})

    @property
    def execution_dir(self) -> Path:
        return self.work_dir / "executions" / self.execution.execution_id

    def log_path(self, step_name: str, job: str | None = None) -> Path:
        """``<execution>/logs/<step>.log``, or ``<execution>/logs/<step>/<job>.log`` for a trial."""
        logs = self.execution_dir / "logs"
        return logs / step_name / f"{job}.log" if job else logs / f"{step_name}.log"

    def sandbox_root(self, job: str) -> Path:
        return self.execution_dir / "jobs" / job

    def job_name(self, step_name: str, *, max_length: int = 63) -> str:
        return job_name(self.execution.execution_id, step_name, max_length=max_length)


@dataclass
class StepOutput:
    """What a step produced: its properties (as the matching Describe* API would return
    them), its log, the S3 URIs a later cache hit relies on, and a short account of what
    it decided for people to read (a Condition step's evaluated comparisons)."""

    properties: dict[str, Any]
    log_path: Path | None = None
    published_uris: list[str] = field(default_factory=list)
    detail: str | None = None
