"""Step caching with SageMaker's rules.

A job step with ``CacheConfig.Enabled`` reuses the latest earlier successful run of the
same step (same name and type) whose resolved arguments are identical, if that run is
younger than ``ExpireAfter``. Every successful job step is recorded, whether or not
its own run had caching on, as the service looks at all earlier executions. The entry
is written only after the step's outputs were published, so a failed or interrupted
step never becomes one. Unlike SageMaker, an entry whose published outputs were
since deleted from the local S3 is ignored rather than handed out.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .context import StepOutput
from .files import write_json
from .s3 import LocalS3
from .spec import StepSpec

_UNSAFE_IN_FILE_NAME = re.compile(r"[^\w-]")


@dataclass
class CacheEntry:
    properties: dict[str, Any]
    log_path: Path | None
    published_uris: list[str]
    created: datetime
    execution_id: str


class StepCache:
    """Entries as ``root/<step name>/<key>.json``; the key hashes type, name and resolved arguments."""

    def __init__(self, root: Path, s3: LocalS3):
        self._root = root
        self._s3 = s3

    @staticmethod
    def key(spec: StepSpec, arguments: dict[str, Any]) -> str:
        document = {"Name": spec.name, "Type": spec.type, "Arguments": arguments}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def lookup(self, spec: StepSpec, key: str) -> CacheEntry | None:
        """The usable entry for ``key``, or None if absent, expired or its outputs are gone."""
        path = self._path(spec, key)
        if spec.cache is None or not path.is_file():
            return None
        record = json.loads(path.read_text())
        created = datetime.fromisoformat(record["created"])
        expire_after = spec.cache.expire_after
        if expire_after is not None and datetime.now(timezone.utc) - created > expire_after:
            return None
        if not all(self._s3.exists(uri) for uri in record["published_uris"]):
            return None
        log_path = Path(record["log_path"]) if record["log_path"] else None
        return CacheEntry(record["properties"], log_path, record["published_uris"], created,
                          record["execution_id"])

    def store(self, spec: StepSpec, key: str, output: StepOutput, execution_id: str) -> None:
        record = {"step_name": spec.name, "step_type": spec.type, "execution_id": execution_id,
                  "created": datetime.now(timezone.utc).isoformat(), "properties": output.properties,
                  "log_path": str(output.log_path) if output.log_path else None,
                  "published_uris": output.published_uris}
        write_json(self._path(spec, key), record)

    def _path(self, spec: StepSpec, key: str) -> Path:
        return self._root / _UNSAFE_IN_FILE_NAME.sub("_", spec.name) / f"{key}.json"
