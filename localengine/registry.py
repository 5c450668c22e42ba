"""A model registry kept as JSON files: model package groups and their numbered versions."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import EngineError
from .expressions import format_timestamp
from .files import write_json
from .names import arn

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
_GROUP_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


class LocalModelRegistry:
    """Model package groups under ``root/<group>/``, versions as ``root/<group>/<n>.json``.

    Versions count 1, 2, ... per group; claiming a version number is atomic (a hard link
    that fails if the file exists), so concurrent registrations never share a number.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @classmethod
    def for_work_dir(cls, work_dir: Path | str) -> LocalModelRegistry:
        """The registry that ``run_pipeline`` uses for a given ``work_dir``."""
        return cls(Path(work_dir) / "registry")

    def register(self, request: dict[str, Any], *, generated_by: str | None = None) -> dict[str, Any]:
        """Create the next version in ``request["ModelPackageGroupName"]`` (a CreateModelPackage
        request), creating the group if needed; returns the package's description."""
        group = request.get("ModelPackageGroupName")
        if not isinstance(group, str) or not _GROUP_NAME.fullmatch(group):
            raise EngineError(f"invalid ModelPackageGroupName {group!r}")
        status = request.get("ModelApprovalStatus") or "PendingManualApproval"
        if status not in APPROVAL_STATUSES:
            raise EngineError(f"ModelApprovalStatus must be one of {', '.join(APPROVAL_STATUSES)}, got {status!r}")
        group_dir = self._ensure_group(group)
        now = format_timestamp(datetime.now(timezone.utc))
        package = {key: value for key, value in request.items() if value is not None}
        package.update(ModelPackageName=group, ModelApprovalStatus=status,
                       ModelPackageStatus="Completed", CreationTime=now)
        if generated_by:
            package["MetadataProperties"] = {**package.get("MetadataProperties", {}), "GeneratedBy": generated_by}
        return self._claim_next_version(group_dir, group, package)

    def list_groups(self) -> list[str]:
        """Names of every model package group, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/group.json"))

    def list_packages(self, group: str) -> list[dict[str, Any]]:
        """Descriptions of every version of ``group``, oldest first ([] for an unknown group,
        as ListModelPackages answers)."""
        return [json.loads(path.read_text()) for path in sorted(
            (self.root / group).glob("[0-9]*.json"), key=lambda p: int(p.stem))]

    def describe(self, arn_or_group_version: str) -> dict[str, Any]:
        """A package by its ARN or as ``group/version``."""
        reference = arn_or_group_version.split("model-package/", 1)[-1]
        group, _, version = reference.rpartition("/")
        path = self.root / group / f"{version}.json"
        if not group or not version.isdigit() or not path.is_file():
            raise EngineError(f"no model package {arn_or_group_version!r}")
        return json.loads(path.read_text())

    def update_approval(self, arn_or_group_version: str, status: str) -> dict[str, Any]:
        """Set a version's ModelApprovalStatus (what UpdateModelPackage does); returns the package."""
        if status not in APPROVAL_STATUSES:
            raise EngineError(f"ModelApprovalStatus must be one of {', '.join(APPROVAL_STATUSES)}, got {status!r}")
        package = self.describe(arn_or_group_version)
        package.update(ModelApprovalStatus=status, LastModifiedTime=format_timestamp(datetime.now(timezone.utc)))
        path = self.root / package["ModelPackageGroupName"] / f"{package['ModelPackageVersion']}.json"
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
            json.dump(package, tmp, indent=2)
        os.replace(tmp.name, path)
        return package

    @staticmethod
    def format_package(package: dict[str, Any]) -> str:
        """One line about a package: group, version, approval status, when, model data, metrics."""
        containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
        statistics = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
        parts = [f"{package['ModelPackageGroupName']} v{package['ModelPackageVersion']}",
                 package["ModelApprovalStatus"], package["CreationTime"],
                 f"model {containers[0].get('ModelDataUrl', '-')}"]
        if statistics.get("S3Uri"):
            parts.append(f"metrics {statistics['S3Uri']}")
        return "  ".join(parts)

    def _ensure_group(self, group: str) -> Path:
        group_dir = self.root / group
        group_file = group_dir / "group.json"
        if not group_file.is_file():
            group_dir.mkdir(parents=True, exist_ok=True)
            description = {"ModelPackageGroupName": group,
                           "ModelPackageGroupArn": arn(f"model-package-group/{group}"),
                           "CreationTime": format_timestamp(datetime.now(timezone.utc))}
            write_json(group_file, description)
        return group_dir

    def _claim_next_version(self, group_dir: Path, group: str, package: dict[str, Any]) -> dict[str, Any]:
        existing = [int(p.stem) for p in group_dir.glob("[0-9]*.json")]
        version = max(existing, default=0) + 1
        while True:
            package.update(ModelPackageVersion=version, ModelPackageArn=arn(f"model-package/{group}/{version}"))
            with tempfile.NamedTemporaryFile("w", dir=group_dir, suffix=".tmp", delete=False) as tmp:
                json.dump(package, tmp, indent=2)
            try:
                os.link(tmp.name, group_dir / f"{version}.json")
                return package
            except FileExistsError:
                version += 1
            finally:
                os.unlink(tmp.name)
