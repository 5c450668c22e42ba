"""Content-addressed code bundles for the container entry scripts.

A bundle is one entry script plus the local modules it imports (found by reading its imports),
so a change to one script moves only the code URI of the steps that run it. The bundle's key
contains the SHA-256 of its files and the tarball is byte-reproducible (sorted entries, mtime 0,
fixed owner), which keeps the pipeline definition byte-identical when nothing changed and lets
SageMaker's step cache hit. Building a bundle touches no AWS; uploading is the deploy code's job.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
SOURCEDIR_TARBALL = "sourcedir.tar.gz"


def _local_imports(source: str, scripts_dir: Path) -> set[str]:
    """Module file names under scripts_dir that `source` imports at top level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return {f"{name}.py" for name in names if (scripts_dir / f"{name}.py").is_file()}


@dataclass(frozen=True)
class CodeBundle:
    """One entry script and its local module dependencies, addressed by content."""

    entry_point: str
    files: tuple[tuple[str, bytes], ...]

    @classmethod
    def for_script(cls, entry_point: str, scripts_dir: Path = SCRIPTS_DIR) -> CodeBundle:
        pending, collected = [entry_point], {}
        while pending:
            name = pending.pop()
            if name in collected:
                continue
            path = scripts_dir / name
            if not path.is_file():
                raise FileNotFoundError(f"container script {path} does not exist")
            collected[name] = path.read_bytes()
            pending.extend(_local_imports(collected[name].decode("utf-8"), scripts_dir))
        return cls(entry_point=entry_point, files=tuple(sorted(collected.items())))

    @cached_property
    def digest(self) -> str:
        sha = hashlib.sha256()
        for name, content in self.files:
            sha.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
        return sha.hexdigest()

    def s3_prefix(self, bucket: str, key_prefix: str) -> str:
        return f"s3://{bucket}/{key_prefix}/code/{self.digest}"

    def files_uri(self, bucket: str, key_prefix: str) -> str:
        """Prefix holding the loose files (a processing job downloads it as its code input)."""
        return f"{self.s3_prefix(bucket, key_prefix)}/files/"

    def sourcedir_uri(self, bucket: str, key_prefix: str) -> str:
        """The script-mode tarball that framework containers unpack (`sagemaker_submit_directory`)."""
        return f"{self.s3_prefix(bucket, key_prefix)}/{SOURCEDIR_TARBALL}"

    @cached_property
    def sourcedir_tarball(self) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in self.files:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(content), 0o644, 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(content))
        return gzip.compress(raw.getvalue(), mtime=0)

    def objects(self, bucket: str, key_prefix: str) -> dict[str, bytes]:
        """Every S3 object of the bundle: URI -> content."""
        files_uri = self.files_uri(bucket, key_prefix)
        objects = {f"{files_uri}{name}": content for name, content in self.files}
        objects[self.sourcedir_uri(bucket, key_prefix)] = self.sourcedir_tarball
        return objects
