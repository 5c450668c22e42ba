"""Step caching with SageMaker's rules.

A job step with ``CacheConfig.Enabled`` reuses the latest earlier successful run of the
same step (same name and type) whose cache key attributes (``cache_keys``: the request
attributes AWS documents per step type) are identical, if that run is younger than
``ExpireAfter``. Every successful job step is recorded, whether or not its own run had
caching on, as the service looks at all earlier executions. The entry is written only
after the step's outputs were published, so a failed or interrupted step never becomes
one. As in the service, a hit is handed out without checking that the earlier run's
outputs still exist; the executor explains a failure that follows from that.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .cache_keys import cache_key
from .context import StepOutput
from .files import write_json
from .spec import StepSpec

_UNSAFE_IN_FILE_NAME = re.compile(r"[^\w-]")


@dataclass
class CacheEntry:
    """One successful earlier run of a job step: its resolved request and what it produced."""

    step_name: str
    arguments: dict[str, Any]
    properties: dict[str, Any]
    log_path: Path | None
    published_uris: list[str]
    created: datetime
    execution_id: str
    path: Path

    @classmethod
    def read(cls, path: Path) -> "CacheEntry":
        record = json.loads(path.read_text())
        return cls(record["step_name"], record.get("arguments") or {}, record["properties"],
                   Path(record["log_path"]) if record["log_path"] else None, record["published_uris"],
                   datetime.fromisoformat(record["created"]), record["execution_id"], path)

    def younger_than(self, spec: StepSpec) -> bool:
        return still_fresh(self.created, spec.cache.expire_after if spec.cache else None)


def still_fresh(created: datetime, expire_after: timedelta | None) -> bool:
    """Whether a run made at ``created`` may still be reused under ``ExpireAfter`` (None: forever)."""
    return expire_after is None or datetime.now(timezone.utc) - created <= expire_after


class StepCache:
    """Entries as ``root/<step name>/<key>.json``; the key hashes name, type and key attributes."""

    def __init__(self, root: Path):
        self.root = root

    @staticmethod
    def key(spec: StepSpec, arguments: dict[str, Any]) -> str:
        return cache_key(spec.name, spec.type, arguments)

    def lookup(self, spec: StepSpec, key: str) -> CacheEntry | None:
        """The usable entry for ``key``: None if caching is off, or it is absent or expired."""
        path = self.step_dir(spec.name) / f"{key}.json"
        if spec.cache is None or not path.is_file():
            return None
        entry = CacheEntry.read(path)
        return entry if entry.younger_than(spec) else None

    def entries(self, step_name: str) -> list[CacheEntry]:
        """Every recorded successful run of ``step_name``, newest first."""
        directory = self.step_dir(step_name)
        found = [CacheEntry.read(path) for path in directory.glob("*.json")] if directory.is_dir() else []
        return sorted(found, key=lambda entry: entry.created, reverse=True)

    def store(self, spec: StepSpec, key: str, arguments: dict[str, Any], output: StepOutput,
              execution_id: str) -> None:
        record = {"step_name": spec.name, "step_type": spec.type, "execution_id": execution_id,
                  "created": datetime.now(timezone.utc).isoformat(), "arguments": arguments,
                  "properties": output.properties,
                  "log_path": str(output.log_path) if output.log_path else None,
                  "published_uris": output.published_uris}
        write_json(self.step_dir(spec.name) / f"{key}.json", record)

    def step_dir(self, step_name: str) -> Path:
        return self.root / _UNSAFE_IN_FILE_NAME.sub("_", step_name)
