"""SageMaker container contract shared by the processing and training entry scripts.

Environment:
    SM_OPT_ML  root of the container's /opt/ml, overridable for running outside a
               container. Every default path of every script derives from it, so
               setting it alone relocates all inputs, outputs and failure files.
    SM_MODEL_DIR, SM_CHANNEL_<NAME>
               the training toolkit's own variables; when set they win over the
               root-derived defaults, and explicit command-line paths win over both.
    SM_NUM_CPUS
               CPUs a training job may use (default: os.cpu_count()).
"""

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, NoReturn

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import FEATURE_SPEC_FILE, category_label, is_missing, read_raw_csv, require_columns, spec_from_json

OPT_ML_ENV = "SM_OPT_ML"
SCRIPTS_DIR = Path(__file__).resolve().parent
# inference.py and every scripts module it imports: a model artefact's code/ must be self-contained.
SERVING_MODULES = ("inference.py", "features.py", "linear_model.py")
TRAINING_CHANNELS = ("train", "validation", "features")
# What SageMaker packs a training job's model directory into.
MODEL_ARCHIVE = "model.tar.gz"
_FAILURE_FILE_NAMES = {"processing": "message", "training": "failure"}


def opt_ml_root() -> Path:
    return Path(os.environ.get(OPT_ML_ENV, "/opt/ml"))


def _path_from_env(variable: str, default_under_root: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else opt_ml_root() / default_under_root


def channel_dir(channel: str) -> Path:
    return _path_from_env(f"SM_CHANNEL_{channel.upper()}", f"input/data/{channel}")


def model_dir() -> Path:
    return _path_from_env("SM_MODEL_DIR", "model")


def available_cpus() -> int:
    """SM_NUM_CPUS as the toolkit sets it (every core of the instance), but never more cores than this
    process may run on (a container's or a local engine's CPU share)."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(int(os.environ.get("SM_NUM_CPUS") or allowed), allowed)


def _failure_file(kind: str) -> Path:
    return opt_ml_root() / "output" / _FAILURE_FILE_NAMES[kind]


def _record_failure(message: str, kind: str) -> None:
    path = _failure_file(kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message + "\n")
    except OSError:
        # Not being able to record the failure must not hide it: stderr still gets it.
        pass


def report_failure(message: str, kind: str) -> NoReturn:
    """Record one line where SageMaker shows it as the job's failure reason, print it, exit 1.

    kind is "processing" (/opt/ml/output/message) or "training" (/opt/ml/output/failure).
    """
    line = " ".join(str(message).split())
    _record_failure(line, kind)
    print(line, file=sys.stderr)
    sys.exit(1)


@contextmanager
def failure_reporting(kind: str):
    """Turn bad input (ValueError, which every module here raises for it) into one reported line.

    Anything else is a bug: it is recorded as the failure reason too, but re-raised
    so the traceback reaches the logs.
    """
    try:
        yield
    except ValueError as error:
        report_failure(str(error), kind)
    except Exception as error:
        _record_failure(" ".join(f"{type(error).__name__}: {error}".split()), kind)
        raise


class ContractArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors follow the same one-line failure contract as bad data."""

    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind

    def error(self, message: str) -> NoReturn:
        report_failure(f"invalid arguments: {message}; run with --help for the accepted ones", self.kind)


def whole_number(text: str) -> int:
    """argparse type for integer hyperparameters; tuners may send integral floats such as "6.0"."""
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


def positive_whole_number(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Channel and model directories, defaulting to the toolkit's variables, then to the root."""
    for channel in TRAINING_CHANNELS:
        parser.add_argument(f"--{channel}", type=Path, default=channel_dir(channel),
                            help=f"directory of the {channel} channel")
    parser.add_argument("--model-dir", type=Path, default=model_dir(),
                        help="directory whose contents become model.tar.gz")


def read_table_directory(directory: Path, description: str) -> pd.DataFrame:
    """Every *.parquet under directory (what Preprocess writes), else every *.csv, recursively and in path order,
    as one frame; their columns must agree."""
    return TableBatches(directory, description).frame()


# Rows per batch of a table read in batches, and per row group of the Parquet files Preprocess writes.
BATCH_ROWS = 100_000


def table_files(directory: Path, description: str, patterns: tuple[str, ...], kinds: str, remedy: str) -> list[Path]:
    """The files under ``directory`` (recursively, in path order) of the first of ``patterns`` that has any."""
    if not directory.is_dir():
        raise ValueError(f"{description} directory {directory} does not exist; provide it or pass its path")
    for pattern in patterns:
        if files := sorted(path for path in directory.rglob(pattern) if path.is_file()):
            return files
    raise ValueError(f"no {kinds} files found under {directory} ({description}); {remedy}")


class TableBatches:
    """The tables under a directory (every *.parquet, else every *.csv, recursively and in path order; their columns
    must agree), read a batch of rows at a time: Parquet by row batches, a CSV file whole."""

    def __init__(self, directory: Path, description: str):
        self.files = table_files(directory, description, ("*.parquet", "*.csv"), "Parquet or CSV", "put the data there")
        self.columns = self._columns()

    def _columns(self) -> list[str]:
        """The columns every file shares."""
        columns = None
        for path in self.files:
            if path.suffix == ".parquet":
                names = self._read(lambda: pq.read_schema(path), path).names
            else:
                names = list(self._read(lambda: pd.read_csv(path, nrows=0), path).columns)
            if columns is not None and names != columns:
                differing = sorted(set(names) ^ set(columns)) or "same names, different order"
                raise ValueError(f"{path} has different columns from {self.files[0]} (differing: {differing}); "
                                 "give every file the same columns")
            columns = names
        return columns

    def __len__(self) -> int:
        return self._row_count

    @functools.cached_property
    def _row_count(self) -> int:
        """The number of rows, counted once (a job asks for it more than once): a Parquet file's from its footer, a
        CSV file's by reading it."""
        return sum(self._read(lambda: pq.ParquetFile(path).metadata.num_rows, path) if path.suffix == ".parquet"
                   else len(self._csv(path)) for path in self.files)

    def batches(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The rows in batches (only ``columns`` if given)."""
        for path in self.files:
            if path.suffix == ".parquet":
                batches = self._read(lambda: pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=columns), path)
                # An empty part (a processing instance's share of no rows) adds nothing, not even its column types.
                for batch in batches:
                    if batch.num_rows:
                        yield batch.to_pandas()
            else:
                frame = self._csv(path)
                yield frame if columns is None else frame[columns]

    def frame(self, columns: list[str] | None = None) -> pd.DataFrame:
        """All the rows as one frame (only ``columns`` if given)."""
        frames = list(self.batches(columns)) or [pd.DataFrame(columns=columns or self.columns)]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _csv(self, path: Path) -> pd.DataFrame:
        return self._read(lambda: read_raw_csv(path), path)

    @staticmethod
    def _read(read, path: Path):
        try:
            return read()
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
                pa.ArrowException) as error:
            raise ValueError(f"cannot read {path} as a table with a header: {error}") from error


def training_inputs(arguments: argparse.Namespace) -> tuple[TableBatches, TableBatches, dict]:
    """The train rows, validation rows (to be read a batch at a time, or whole) and feature spec named by
    add_training_arguments' options."""
    spec = read_feature_spec(arguments.features)
    tables = []
    for channel in ("train", "validation"):
        table = TableBatches(getattr(arguments, channel), f"{channel} channel")
        # Checked here: pooled for cross-validation, a column missing from one channel would become gaps.
        require_columns(table.columns, [spec["target"], *spec["numeric"], *spec["categorical"]],
                        f"the {channel} channel must hold every column of the feature spec")
        tables.append(table)
    return tables[0], tables[1], spec


def read_text(path: Path, description: str) -> str:
    if not path.is_file():
        raise ValueError(f"{description} {path} does not exist; provide it or pass its path")
    return path.read_text()


def read_feature_spec(directory: Path) -> dict:
    return spec_from_json(read_text(directory / FEATURE_SPEC_FILE, "feature spec"))


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file written via a temporary sibling and os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        # mkstemp creates 0600 files; artefacts are read later by other processes and users.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, content: bytes) -> None:
    with atomic_file(path) as stream:
        stream.write(content)


def copy_file_atomic(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.with_name(f".{destination.name}.tmp")
    shutil.copyfile(source, staging)
    os.replace(staging, destination)


def save_serving_code(model_dir: Path) -> None:
    """Put the serving handlers beside the model, so model.tar.gz serves on its own."""
    for module in SERVING_MODULES:
        write_bytes_atomic(model_dir / "code" / module, (SCRIPTS_DIR / module).read_bytes())


def write_json_atomic(path: Path, data) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode())


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    write_bytes_atomic(path, frame.to_csv(index=False).encode())


def text_typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each column of objects as text: a value of another kind in it (a number among words, from
    input files typed differently) becomes its category label, which is how the models read it anyway."""
    typed = frame.copy(deep=False)
    for name in frame.columns[frame.dtypes == object]:
        if pd.api.types.infer_dtype(frame[name], skipna=True) not in ("string", "empty"):
            typed[name] = frame[name].map(lambda value: value if is_missing(value) else category_label(value))
    return typed


def table_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as an Arrow IPC stream (text columns as ``text_typed``); ``frame_of_bytes`` reads it back."""
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(text_typed(frame), preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def frame_of_bytes(blob: bytes) -> pd.DataFrame:
    return pa.ipc.open_stream(blob).read_all().to_pandas()


def write_table_atomic(path: Path, frame: pd.DataFrame) -> None:
    """Parquet: typed columns, read back as they were written, in a fraction of a CSV's time and space. A column
    of objects is stored as text (``text_typed``)."""
    typed = text_typed(frame)
    schema = pa.Schema.from_pandas(typed, preserve_index=False)
    # Categories (Preprocess's text) are stored as plain text.
    stored = pa.schema([column.with_type(column.type.value_type) if pa.types.is_dictionary(column.type) else column
                        for column in schema], metadata=schema.metadata)
    # A row group at a time: a table of millions of rows is never converted (or buffered) whole.
    with atomic_file(path) as stream, pq.ParquetWriter(stream, stored) as writer:
        for start in range(0, max(len(typed), 1), BATCH_ROWS):
            batch = pa.Table.from_pandas(typed.iloc[start:start + BATCH_ROWS], schema=schema, preserve_index=False)
            writer.write_table(batch.cast(stored))
