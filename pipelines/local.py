"""Run a built definition on this machine with the local engine: local S3, no AWS, no Docker."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from filelock import FileLock, Timeout

from localengine import EngineError, ExecutionResult, LocalModelRegistry, LocalS3, run_pipeline
from localengine.images import ImageEnvironments
from localengine.retention import Removed, remove_old_executions

from pipelines.definition import USER_CACHE_DIR, BuiltDefinition

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE_DATA = PROJECT_DIR / "data" / "ames_housing.csv"
LOCAL_INPUT_PREFIX = "local-input"
RUN_LOCK = "run.lock"
DAY_SECONDS = 24 * 3600
DATA_REPORT = ("Preprocess", "report", "data-report.json")
EVALUATION_PAGE = ("Evaluate", "evaluation", "report/index.html")
EVALUATION = ("Evaluate", "evaluation", "evaluation.json")


@dataclass
class LocalRun:
    result: ExecutionResult
    data_report: dict | None
    staged_input: tuple[str, str] | None  # (local S3 URI, the user's path) of --data
    evaluation_page: Path | None = None  # the evaluation report, as a file a browser opens
    evaluation: dict | None = None  # what Evaluate wrote: the chosen candidate, its metrics, the gate

    def as_user_sees_it(self, text: str) -> str:
        """Messages name the staged copy of --data; the user knows it by its own path."""
        if self.staged_input is None:
            return text
        staged, original = self.staged_input
        return text.replace(staged.rstrip("/"), original.rstrip("/"))


def image_environments(on_build: Callable[[str], None] | None = None) -> ImageEnvironments:
    """Faithful mode's environments, one per framework image, shared by every local directory."""
    return ImageEnvironments(Path(os.environ.get("PIPELINE_IMAGE_ENVS") or USER_CACHE_DIR / "images"), on_build)


def local_registry(local_dir: Path) -> LocalModelRegistry:
    return LocalModelRegistry.for_work_dir(_work_dir(local_dir))


def _work_dir(local_dir: Path) -> Path:
    return local_dir / "work"


def run_locally(
    built: BuiltDefinition,
    local_dir: Path,
    parameters: Mapping[str, str] | None = None,
    data: Path | None = None,
    on_event: Callable | None = None,
    data_at: str | None = None,
    images: ImageEnvironments | None = None,
    on_wait: Callable[[str], None] | None = None,
    interrupt_spot_jobs: bool = False,
) -> LocalRun:
    """Stage code and data the way `upsert` would in S3, then execute the definition itself.

    The bundled sample sits at the default input location; `data` (a CSV file, or a directory of
    them as an S3 prefix would hold) is staged beside it and becomes the input unless
    `InputDataKey` is given explicitly, or staged at the S3 URI `data_at` (where an event says a
    file landed).

    One run at a time per local directory: a second waits for the first (`on_wait` hears why), so
    staging, the step cache and the registry are never written by two runs at once.
    `interrupt_spot_jobs` reclaims each spot training job's instance once (the engine's simulation).
    """
    local_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(local_dir / RUN_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait:
            on_wait(f"another run is using {local_dir}; this one starts when it ends (Ctrl-C to give up)")
        lock.acquire()
    try:
        run = _run_locked(built, local_dir, parameters, data, on_event, data_at, images, interrupt_spot_jobs)
        remove_old_executions(_work_dir(local_dir), built.settings.local_retention_days * DAY_SECONDS,
                              keep=frozenset({run.result.execution_id}))
        return run
    finally:
        lock.release()


def clean(local_dir: Path, older_than_days: float) -> Removed:
    """Remove executions (logs, kept sandboxes) older than `older_than_days` (0: all); refuses while a run
    uses the directory. The step cache, local S3 and the registry stay."""
    lock = FileLock(local_dir / RUN_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise EngineError(f"a run is using {local_dir}; clean it when the run has ended") from None
    try:
        return remove_old_executions(_work_dir(local_dir), older_than_days * DAY_SECONDS)
    finally:
        lock.release()


def _run_locked(built, local_dir, parameters, data, on_event, data_at, images, interrupt_spot_jobs) -> LocalRun:
    s3 = LocalS3(local_dir / "s3")
    for uri, content in built.code_objects().items():
        s3.put_bytes(uri, content)
    defaults = {p["Name"]: p.get("DefaultValue") for p in built.document["Parameters"]}
    s3.put_file(f"s3://{defaults['InputDataBucket']}/{defaults['InputDataKey']}", SAMPLE_DATA)
    bucket = built.settings.bucket
    parameters = dict(parameters or {})
    staged_input = None
    if data is not None and data_at is not None:
        s3.put_file(data_at, data)
        staged_input = (data_at, str(data))
    elif data is not None:
        key = f"{LOCAL_INPUT_PREFIX}/{data.name}"
        if data.is_dir():
            key += "/"
            s3.put_directory(f"s3://{bucket}/{key}", data)
        else:
            s3.put_file(f"s3://{bucket}/{key}", data)
        staged_input = (f"s3://{bucket}/{key}", str(data))
        parameters.setdefault("InputDataKey", key)
    result = run_pipeline(
        built.document, s3=s3, work_dir=_work_dir(local_dir), parameters=parameters, on_event=on_event,
        pipeline_name=built.settings.pipeline_name, images=images, interrupt_spot_jobs=interrupt_spot_jobs,
    )
    data_report, evaluation = _output_file(result, s3, *DATA_REPORT), _output_file(result, s3, *EVALUATION)
    return LocalRun(result, json.loads(data_report.read_text()) if data_report else None, staged_input,
                    _output_file(result, s3, *EVALUATION_PAGE),
                    json.loads(evaluation.read_text()) if evaluation else None)


def _output_file(result: ExecutionResult, s3: LocalS3, step_name: str, output_name: str, file: str) -> Path | None:
    """Where a file a processing step wrote lies in local S3, if the step succeeded and wrote it."""
    step = result.steps.get(step_name)
    if step is None or step.status != "Succeeded":
        return None
    outputs = (step.properties.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    for output in outputs:
        if output.get("OutputName") == output_name:
            uri = f"{output['S3Output']['S3Uri'].rstrip('/')}/{file}"
            return s3.path_for(uri) if s3.exists(uri) else None
    return None


def data_report_lines(report: dict | None) -> list[str]:
    """The data report as the run prints it: what was done to the data, then what looks wrong."""
    if not report:
        return []
    return ([f"Data: {line}" for line in report.get("summary", [])]
            + [f"  note: {note}" for note in report.get("notes", [])]
            + [f"⚠ {warning}" for warning in report.get("warnings", [])])


def evaluation_lines(evaluation: dict | None) -> list[str]:
    """Which candidate the run chose and why, and how it scored on the test rows."""
    if not evaluation:
        return []
    chosen, readable = evaluation["chosen"], evaluation["readable"]
    baseline = "" if chosen["candidate"] == "baseline" else f", baseline RMSE {readable['baseline_rmse']}"
    return [f"Model: {chosen['candidate']} chosen ({chosen['reason']}); on the test rows RMSE {readable['rmse']}, "
            f"R² {readable['r2']}{baseline}; {readable['champion']}"]
