"""Run a built definition on this machine with the local engine: local S3, no AWS, no Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from localengine import ExecutionResult, LocalModelRegistry, LocalS3, run_pipeline

from pipelines.definition import BuiltDefinition

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE_DATA = PROJECT_DIR / "data" / "ames_housing.csv"
LOCAL_INPUT_PREFIX = "local-input"


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
) -> ExecutionResult:
    """Stage code and data the way `upsert` would in S3, then execute the definition itself.

    The bundled sample sits at the default input location; `data` (a CSV file) is staged beside it
    and becomes the input unless `InputDataKey` is given explicitly.
    """
    s3 = LocalS3(local_dir / "s3")
    for uri, content in built.code_objects().items():
        s3.put_bytes(uri, content)
    defaults = {p["Name"]: p.get("DefaultValue") for p in built.document["Parameters"]}
    s3.put_file(f"s3://{defaults['InputDataBucket']}/{defaults['InputDataKey']}", SAMPLE_DATA)
    bucket = built.settings.bucket
    parameters = dict(parameters or {})
    if data is not None:
        key = f"{LOCAL_INPUT_PREFIX}/{data.name}"
        s3.put_file(f"s3://{bucket}/{key}", data)
        parameters.setdefault("InputDataKey", key)
    return run_pipeline(
        built.document, s3=s3, work_dir=_work_dir(local_dir), parameters=parameters, on_event=on_event,
        pipeline_name=built.settings.pipeline_name,
    )
