"""Build the pipeline definition offline: no AWS call, no credentials, byte-identical builds."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import steps  # noqa: F401  (sets the import-time environment the SDK needs)
from pipelines.house_prices import build_pipeline
from pipelines.settings import Settings
from steps.code_bundle import SCRIPTS_DIR, CodeBundle
from steps.context import StepContext


@dataclass(frozen=True)
class BuiltDefinition:
    settings: Settings
    json: str
    bundles: tuple[CodeBundle, ...]

    @property
    def document(self) -> dict:
        return json.loads(self.json)

    def code_objects(self) -> dict[str, bytes]:
        """Every code object the definition references: S3 URI -> content."""
        objects: dict[str, bytes] = {}
        for bundle in self.bundles:
            objects.update(bundle.objects(self.settings.bucket, self.settings.pipeline_name))
        return objects


def build_definition(settings: Settings, scripts_dir: Path = SCRIPTS_DIR) -> BuiltDefinition:
    ctx = StepContext(settings, scripts_dir)
    with _sdk_telemetry_off():
        pipeline = build_pipeline(ctx)
        definition = json.dumps(json.loads(pipeline.definition()), indent=2, ensure_ascii=False)
    return BuiltDefinition(settings, definition + "\n", tuple(ctx.bundles[name] for name in sorted(ctx.bundles)))


@contextlib.contextmanager
def _sdk_telemetry_off() -> Iterator[None]:
    """The SDK reports each builder call from a background thread (an STS call and an HTTPS request).

    Its only switch is an SDK config file, which costs seconds of schema validation per build, so the
    sender is replaced for the duration of the build instead.
    """
    from sagemaker.core.telemetry import telemetry_logging

    original = telemetry_logging._send_telemetry_request
    telemetry_logging._send_telemetry_request = lambda *args, **kwargs: None
    try:
        yield
    finally:
        telemetry_logging._send_telemetry_request = original
