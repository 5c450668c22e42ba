"""Build the pipeline definition offline: no AWS call, no credentials, byte-identical builds.

Importing the SDK costs seconds, so a build can be served from a cache keyed by everything the
definition is made of: the settings, the installed SDK versions and the source of the pipeline,
its step factories and its container scripts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterator

from pipelines.settings import Settings
from steps.code_bundle import SCRIPTS_DIR, CodeBundle

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Per-user caches: built definitions (keyed by everything they are made of) and faithful mode's environments.
USER_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "house-price-pipeline"
DEFINITION_SOURCES = (PROJECT_DIR / "pipelines", PROJECT_DIR / "steps")
SDK_DISTRIBUTIONS = ("sagemaker", "sagemaker-core", "sagemaker-mlops", "sagemaker-train", "sagemaker-serve")


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
    import steps  # noqa: F401  (sets the import-time environment the SDK needs)
    from pipelines.house_prices import build_pipeline
    from steps.context import StepContext

    ctx = StepContext(settings, scripts_dir)
    with _sdk_telemetry_off():
        pipeline = build_pipeline(ctx)
        definition = json.dumps(json.loads(pipeline.definition()), indent=2, ensure_ascii=False)
    return BuiltDefinition(settings, definition + "\n", tuple(ctx.bundles[name] for name in sorted(ctx.bundles)))


def cached_build(settings: Settings, cache_dir: Path, scripts_dir: Path = SCRIPTS_DIR) -> BuiltDefinition:
    """`build_definition`, reusing an earlier build when none of its inputs changed."""
    entry = cache_dir / f"{_build_key(settings, scripts_dir)}.json"
    if entry.is_file():
        cached = json.loads(entry.read_text(encoding="utf-8"))
        bundles = tuple(CodeBundle.for_script(name, scripts_dir) for name in cached["bundles"])
        return BuiltDefinition(settings, cached["definition"], bundles)
    built = build_definition(settings, scripts_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = entry.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps({"definition": built.json, "bundles": [b.entry_point for b in built.bundles]}),
                       encoding="utf-8")
    staging.replace(entry)
    return built


def _build_key(settings: Settings, scripts_dir: Path) -> str:
    digest = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode())
    for name in SDK_DISTRIBUTIONS:
        digest.update(f"{name}=={metadata.version(name)}".encode())
    for directory in (*DEFINITION_SOURCES, scripts_dir):
        for path in sorted(directory.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


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
