"""A directory that stands in for Amazon S3."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from .errors import DiskFull, EngineError, is_disk_full

_STAGING_DIR = ".staging"  # not a valid bucket name, so it cannot clash with one


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise EngineError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or bucket.startswith("."):
        raise EngineError(f"S3 URI has no valid bucket: {uri!r}")
    return bucket, key


def join_s3_uri(prefix: str, relative: str) -> str:
    """Append a relative key to an S3 prefix with exactly one slash between them."""
    return prefix.rstrip("/") + "/" + relative.lstrip("/")


class LocalS3:
    """Maps ``s3://bucket/key`` to ``root/bucket/key``.

    A prefix is a plain string prefix, as in S3: ``s3://b/data/x.csv`` covers the object
    ``data/x.csv`` and also ``data/x.csv.old`` and ``data/x.csv-v2/part.csv``. (An object and a
    prefix of the same name cannot both exist here, since one is a file and the other a folder.)
    """

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()  # jobs run in other directories
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, uri: str) -> Path:
        """The local path that holds the object or prefix ``uri``."""
        bucket, key = split_s3_uri(uri)
        parts = [part for part in key.split("/") if part]
        if any(part in (".", "..") for part in parts):
            raise EngineError(f"S3 key may not contain '.' or '..' segments: {uri!r}")
        return self.root.joinpath(bucket, *parts)

    def exists(self, uri: str) -> bool:
        """Whether any object's key starts with the key of ``uri``."""
        return bool(self.list(uri))

    def put_bytes(self, uri: str, data: bytes) -> str:
        """Store ``data`` as the object ``uri``; returns ``uri``."""
        self._write_atomically(uri, lambda tmp: tmp.write_bytes(data))
        return uri

    def put_file(self, uri: str, local_file: Path | str) -> str:
        """Copy one local file to the object ``uri``; returns ``uri``."""
        self._write_atomically(uri, lambda tmp: shutil.copyfile(local_file, tmp))
        return uri

    def put_directory(self, uri_prefix: str, local_dir: Path | str) -> list[str]:
        """Copy every file under ``local_dir`` below ``uri_prefix``; returns the object URIs."""
        local_dir = Path(local_dir)
        return [self.put_file(join_s3_uri(uri_prefix, file.relative_to(local_dir).as_posix()), file)
                for file in sorted(p for p in local_dir.rglob("*") if p.is_file())]

    def read_bytes(self, uri: str) -> bytes:
        """The content of the object ``uri``."""
        path = self.path_for(uri)
        if not path.is_file():
            raise EngineError(f"no such S3 object: {uri}")
        return path.read_bytes()

    def list(self, uri_prefix: str) -> list[str]:
        """URIs of every object whose key starts with the key of ``uri_prefix``, sorted (ListObjectsV2)."""
        return [uri for uri, _ in self._matching(uri_prefix)]

    def download(self, uri_prefix: str, dest_dir: Path | str, shard: tuple[int, int] = (0, 1)) -> list[Path]:
        """Copy every object under ``uri_prefix`` into ``dest_dir`` the way a SageMaker input does.

        Each object lands at its key with the prefix taken off (and a leading ``/``): ``s3://b/x/train``
        puts ``x/train/part.csv`` at ``part.csv``; the object the prefix names exactly keeps its file
        name, and a neighbour such as ``x/train.old`` lands at ``.old``. Raises ``EngineError`` when
        nothing matches. ``shard`` ``(i, n)`` keeps the i-th of every n objects in key order: host i+1's
        share of a ShardedByS3Key input on n hosts (empty when there are fewer objects than hosts).
        """
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        matching = self._matching(uri_prefix)
        if not matching:
            raise EngineError(f"nothing in S3 at {uri_prefix}")
        prefix = split_s3_uri(uri_prefix)[1]
        index, count = shard
        copied = []
        for uri, source in matching[index::count]:
            key = split_s3_uri(uri)[1]
            relative = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
            target = dest_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(target)
        return sorted(copied)

    def _matching(self, uri_prefix: str) -> list[tuple[str, Path]]:
        bucket, key = split_s3_uri(uri_prefix)
        folder, _, start = key.rpartition("/")
        base = self.path_for(f"s3://{bucket}/{folder}")
        if not base.is_dir():
            return []
        found = []
        for entry in sorted(base.iterdir()):
            if not entry.name.startswith(start):
                continue
            files = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
            found += [(f"s3://{bucket}/{path.relative_to(self.root / bucket).as_posix()}", path) for path in files]
        return sorted(found)

    def publish(self, items: list[tuple[Path, str]]) -> list[str]:
        """Upload each local file or directory to its URI, all or nothing as far as possible.

        Everything is first copied to a staging area beside the store (the slow part, and the one
        that needs space); only when all of it is staged are the files moved into place by renames.
        Objects already under a URI that the upload does not hold are kept, as S3 keeps them.
        Missing or empty local paths upload nothing. Returns the URIs that received files. A full
        disk while staging raises ``DiskFull`` and leaves nothing behind.
        """
        staging = self._staging_path()
        staged = []
        try:
            for number, (local, uri) in enumerate(items):
                files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
                if not files:
                    continue
                copy = staging / str(number)
                for file in files:
                    target = copy / file.relative_to(local) if local.is_dir() else copy
                    try:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(file, target)
                    except OSError as error:
                        if is_disk_full(error):
                            raise DiskFull(f"no space left on the device of the local S3 at {self.root} while "
                                           f"publishing {uri}; nothing was published") from None
                        raise
                staged.append((copy, uri))
            for copy, uri in staged:
                self._commit(copy, uri)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return [uri for _, uri in staged]

    def _staging_path(self) -> Path:
        return self.root / _STAGING_DIR / uuid.uuid4().hex

    def _commit(self, staged: Path, uri: str) -> None:
        if staged.is_file():
            self._move_into_place(staged, self.path_for(uri))
            return
        for file in sorted(p for p in staged.rglob("*") if p.is_file()):
            self._move_into_place(file, self.path_for(join_s3_uri(uri, file.relative_to(staged).as_posix())))

    def _move_into_place(self, source: Path, target: Path) -> None:
        if target.is_dir():
            shutil.rmtree(target)  # an object replaces a prefix of the same name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def _write_atomically(self, uri: str, write) -> None:
        staging = self._staging_path()
        staging.mkdir(parents=True)
        try:
            write(staging / "object")
            self._move_into_place(staging / "object", self.path_for(uri))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
