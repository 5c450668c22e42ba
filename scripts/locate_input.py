"""LocateInput: the S3 location of the input data, with the object key as S3 names it.

An S3 event carries the object key URL-encoded (form encoding: a space becomes `+`, other reserved
characters `%XX`), and an EventBridge rule can pass only whole JSON paths, so a rule cannot decode
it. This job does, before anything reads the data: Preprocess takes its input location from here.
Pure: no AWS call, no data read, so it is cached like any other step.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import unquote_plus

from container import ContractArgumentParser, failure_reporting, opt_ml_root, write_json_atomic

LOCATION_FILE = "location.json"
KEY_ENCODINGS = ("none", "url")


def object_key(key: str, encoding: str) -> str:
    """The key S3 stores: decoded when it came from an S3 event (`encoding` "url")."""
    if encoding not in KEY_ENCODINGS:
        raise ValueError(f"InputKeyEncoding {encoding!r} is not one of {', '.join(KEY_ENCODINGS)}")
    return unquote_plus(key) if encoding == "url" else key


def location(bucket: str, key: str, encoding: str) -> dict:
    decoded = object_key(key, encoding)
    if not decoded.strip() or decoded.startswith("/"):
        raise ValueError(f"InputDataKey {key!r} names no object: give a key or prefix without a leading /")
    return {"uri": f"s3://{bucket}/{decoded}", "key": decoded, "given_key": key, "encoding": encoding}


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("processing", description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--key-encoding", default="none", help="none, or url for a key taken from an S3 event")
    parser.add_argument("--output-dir", type=Path, default=opt_ml_root() / "processing" / "location")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("processing"):
        found = location(arguments.bucket, arguments.key, arguments.key_encoding)
        write_json_atomic(arguments.output_dir / LOCATION_FILE, found)
        decoded = f" (decoded from {arguments.key!r})" if found["key"] != arguments.key else ""
        print(f"input: {found['uri']}{decoded}")


if __name__ == "__main__":
    main()
