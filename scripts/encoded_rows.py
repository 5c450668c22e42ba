"""The train and validation rows as the trees read them, encoded once per execution by Preprocess.

Preprocess does the costly part of encoding each row by the feature spec it fitted, once: its numbers parsed,
imputed and scaled (float32), and its level of each categorical feature looked up (the one-hot column it sets).
It writes those beside the raw target, a Parquet column each. Every tuning trial reads them and only lays out
the present cells (features.FeatureEncoder.present_cells: the numbers and a 1 in each row's level column; the
other one-hot columns are missing, as a tree model's spec says) instead of encoding the raw columns again, each
pass over the rows. Serving still encodes raw columns with the same FeatureEncoder: a test holds the two to the
same bits.

Each file carries the digest of the spec it was encoded with, so a trial never pairs these rows with another run's
spec (which would save a model whose features.json describes columns it was not trained on).
"""

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse

from container import BATCH_ROWS, table_files
from features import FeatureEncoder, feature_names, target_values, with_absent_levels

# Preprocess's output directory of each split it encodes.
ENCODED_OUTPUTS = {"train": "encoded-train", "validation": "encoded-validation"}
TARGET_COLUMN = "target"
SPEC_DIGEST_KEY = b"feature_spec_sha256"
FEATURES_KEY = b"features"


def tree_spec(spec: dict) -> dict:
    """The spec the rows are encoded with: Preprocess's, with absent levels given to the trees as missing."""
    return with_absent_levels(spec, "missing")


def spec_digest(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


class Encoded(NamedTuple):
    """Rows encoded: their present cells, float32 (a SciPy CSR matrix, rows x features: the levels a row does not
    have are absent, which the trees take as missing), and the raw targets."""

    features: scipy.sparse.csr_matrix
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, rows: np.ndarray) -> "Encoded":
        return Encoded(self.features[rows], self.targets[rows])

    @classmethod
    def joined(cls, parts: list["Encoded"], width: int) -> "Encoded":
        if not parts:
            return cls(scipy.sparse.csr_matrix((0, width), dtype=np.float32), np.empty(0))
        return cls(scipy.sparse.vstack([part.features for part in parts], format="csr"),
                   np.concatenate([part.targets for part in parts]))


def _schema(spec: dict) -> pa.Schema:
    # Positional column names: a feature's name could be any text, even the target's.
    return pa.schema([*(pa.field(f"number{index}", pa.float32()) for index in range(len(spec["numeric"]))),
                      *(pa.field(f"level{index}", pa.int32()) for index in range(len(spec["categorical"]))),
                      pa.field(TARGET_COLUMN, pa.float64())],
                     metadata={SPEC_DIGEST_KEY: spec_digest(tree_spec(spec)).encode(),
                               FEATURES_KEY: json.dumps([*spec["numeric"], *spec["categorical"]]).encode()})


def write_encoded(stream, frame: pd.DataFrame, spec: dict) -> None:
    """The rows' encoding parts to Parquet, a batch at a time (an empty frame writes the columns only)."""
    schema, encoder = _schema(spec), FeatureEncoder(tree_spec(spec))
    with pq.ParquetWriter(stream, schema) as writer:
        for start in range(0, len(frame), BATCH_ROWS):
            batch = frame.iloc[start:start + BATCH_ROWS]
            scaled, levels = encoder.parts(batch)
            numbers = np.asfortranarray(scaled, dtype=np.float32)
            levels = np.asfortranarray(levels, dtype=np.int32)
            writer.write_table(pa.Table.from_arrays(
                [*(pa.array(numbers[:, index]) for index in range(numbers.shape[1])),
                 *(pa.array(levels[:, index]) for index in range(levels.shape[1])),
                 pa.array(target_values(batch, spec["target"]))], schema=schema))


class EncodedFiles:
    """The encoded rows under a directory (every *.parquet, in path order), read a batch at a time and checked
    against the feature spec the job was given."""

    def __init__(self, directory: Path, description: str, spec: dict, batch_rows: int | None = None):
        self.files = table_files(directory, description, ("*.parquet",), "Parquet",
                                 "give it Preprocess's encoded rows")
        self.encoder = FeatureEncoder(tree_spec(spec))
        self.width = len(feature_names(spec))
        self.batch_rows = batch_rows or BATCH_ROWS
        expected = spec_digest(tree_spec(spec)).encode()
        for path in self.files:
            metadata = pq.read_schema(path).metadata or {}
            if metadata.get(SPEC_DIGEST_KEY) != expected:
                raise ValueError(f"{path} ({description}) was not encoded with the features channel's feature spec; "
                                 "give the job the encoded rows and the spec of one Preprocess run")

    def __len__(self) -> int:
        return sum(pq.ParquetFile(path).metadata.num_rows for path in self.files)

    def __iter__(self) -> Iterator[Encoded]:
        for path in self.files:
            for batch in pq.ParquetFile(path).iter_batches(self.batch_rows):
                if batch.num_rows:  # a processing instance's share of no rows adds nothing
                    yield self._encoded(batch)

    def _encoded(self, batch: pa.RecordBatch) -> Encoded:
        numbers, levels = len(self.encoder.numeric), len(self.encoder.categorical)
        scaled = np.empty((batch.num_rows, numbers), dtype=np.float32)
        for index in range(numbers):
            scaled[:, index] = batch.column(index).to_numpy()
        positions = np.empty((batch.num_rows, levels), dtype=np.int64)
        for index in range(levels):
            positions[:, index] = batch.column(numbers + index).to_numpy()
        return Encoded(self.encoder.present_cells(scaled, positions), batch.column(TARGET_COLUMN).to_numpy())

    def whole(self) -> Encoded:
        return Encoded.joined(list(self), self.width)

    def targets(self) -> np.ndarray:
        parts = [pq.read_table(path, columns=[TARGET_COLUMN]).column(0).to_numpy() for path in self.files]
        return np.concatenate(parts) if parts else np.empty(0)
