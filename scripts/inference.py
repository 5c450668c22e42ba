"""Serving handlers for the SageMaker XGBoost container: raw columns in, predictions out.

Requests carry raw feature columns; the feature spec stored in the model artefact turns
them into the matrix the model was trained on, so training and serving share one
transform. The model is either candidate the pipeline trains: an XGBoost booster
(xgboost-model.json) or the linear baseline (linear-model.json). Only the modules this
file imports travel with it (all sit in the artefact's code/).

A request the model cannot score is answered with a 4xx and one line, never a 500. The
XGBoost image's toolkit (sagemaker-containers: `_functions.error_wrapper` in
`_transformer.Transformer`) turns any exception a handler raises into a 500, so the handlers
do not raise for a bad request: `input_fn` and `predict_fn` hand a `RejectedRequest` on, and
`output_fn` answers with it. `read_rows`, `predict` and `write_predictions` are the same steps
for callers that want exceptions (Evaluate, tests).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import sys
from collections import Counter
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from features import FEATURE_SPEC_FILE, MISSING_VALUE_MARKERS, FeatureEncoder, decode_target, spec_from_json
from linear_model import LINEAR_MODEL_FILE, linear_model_from_json, predict_linear

if TYPE_CHECKING:
    import xgboost

BOOSTER_FILE = "xgboost-model.json"
# A CSV body longer than this is parsed by pandas (fast per row), a shorter one by the csv module (fast per call).
SMALL_BODY_BYTES = 64 * 1024
# Rows encoded at a time, so that many rows (Evaluate's test split, a large request) never become one float matrix:
# 1.5M rows of the 10M-row scale table would be 3.8 GB of it.
PREDICT_BATCH_ROWS = 50_000
CSV = "text/csv"
JSON = "application/json"


class ServingModel(NamedTuple):
    booster: xgboost.Booster | None
    spec: dict
    linear: dict | None = None  # the linear baseline's coefficients, when that candidate was chosen
    encoder: FeatureEncoder | None = None  # the spec prepared once, for a model that serves many requests


class RejectedRequest(ValueError):
    """A request the model cannot score, with the HTTP status that says why."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = int(status)

    def __call__(self, environ, start_response):
        """The answer, as a WSGI application: the container's Flask sends whatever output_fn returns."""
        body = f"{self}\n".encode("utf-8")
        start_response(f"{self.status} {HTTPStatus(self.status).phrase}",
                       [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]


def import_xgboost():
    """XGBoost, imported with scikit-learn hidden unless something imported it already. XGBoost imports
    scikit-learn (and with it much of SciPy) whenever it is installed, as it is in the XGBoost image, only for its
    scikit-learn estimators, which no script here uses: 1.6 s of a 6 s tuning trial on the sample, and of every
    endpoint's and Evaluate's start. Whatever imports scikit-learn afterwards gets it."""
    hidden = "sklearn" not in sys.modules
    if hidden:
        sys.modules["sklearn"] = None  # the import system's mark for a module that cannot be imported
    try:
        return importlib.import_module("xgboost")
    finally:
        if hidden:
            del sys.modules["sklearn"]


def model_fn(model_dir) -> ServingModel:
    model_dir = Path(model_dir)
    spec = spec_from_json((model_dir / FEATURE_SPEC_FILE).read_text())
    if (model_dir / LINEAR_MODEL_FILE).is_file():
        linear = linear_model_from_json((model_dir / LINEAR_MODEL_FILE).read_text(), spec)
        return ServingModel(None, spec, linear, FeatureEncoder(spec))
    # Imported here, not at the top: the baseline imports this module in the scikit-learn image.
    booster = import_xgboost().Booster()
    booster.load_model(str(model_dir / BOOSTER_FILE))
    return ServingModel(booster, spec, None, FeatureEncoder(spec))


def _media_type(content_type) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _records(payload) -> list:
    records = payload.get("instances") if isinstance(payload, dict) else payload
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise RejectedRequest(
            'JSON requests must be a list of records or {"instances": [records]}, '
            "each record an object of raw column names to values"
        )
    return records


def _csv_rows(text: str) -> pd.DataFrame:
    """The rows of a CSV body with a header row, every value as text and the missing markers as NaN: pandas'
    parser for a large body; the csv module for a small one, where pandas costs about 5 ms a call. Both
    skip blank lines, pad short rows and, as Preprocess reads its files, skip spaces after a delimiter."""
    lines = csv.reader(io.StringIO(text), skipinitialspace=True)
    header = next((row for row in lines if row), None)
    if header is None:
        raise RejectedRequest("the body is not valid CSV with a header row: it is empty")
    counts = Counter(header)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise RejectedRequest(f"the header names {', '.join(map(repr, duplicates))} more than once; name each "
                              "column once")
    if len(text) > SMALL_BODY_BYTES:
        try:
            return pd.read_csv(io.StringIO(text), dtype=object, keep_default_na=False,
                               na_values=list(MISSING_VALUE_MARKERS), skipinitialspace=True)
        except pd.errors.ParserError as error:
            raise RejectedRequest(f"the body is not valid CSV with a header row: {' '.join(str(error).split())}")
    rows = [row for row in lines if row]
    cells = np.full((len(rows), len(header)), np.nan, dtype=object)
    missing = set(MISSING_VALUE_MARKERS)
    for index, row in enumerate(rows):
        if len(row) > len(header):
            raise RejectedRequest(f"row {index + 1} has {len(row)} fields but the header {len(header)}; "
                                  "quote values that contain commas")
        cells[index, :len(row)] = [np.nan if value in missing else value for value in row]
    return pd.DataFrame(cells, columns=header, dtype=object)


def _json_rows(text: str) -> pd.DataFrame:
    records = _records(json.loads(text))
    columns = list(dict.fromkeys(name for record in records for name in record))
    cells = np.empty((len(records), len(columns)), dtype=object)
    for index, record in enumerate(records):
        cells[index] = [record.get(name) for name in columns]
    return pd.DataFrame(cells, columns=columns, dtype=object)


def read_rows(request_body, request_content_type) -> pd.DataFrame:
    """Raw rows from a CSV body with a header row, or from JSON records (values as sent)."""
    media_type = _media_type(request_content_type)
    if media_type not in (CSV, JSON):
        raise RejectedRequest(f"unsupported content type {request_content_type!r}; send {CSV} with a header row "
                              f"or {JSON} records", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    try:
        text = request_body.decode("utf-8") if isinstance(request_body, (bytes, bytearray)) else request_body
        rows = _csv_rows(text) if media_type == CSV else _json_rows(text)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        kind = "CSV with a header row" if media_type == CSV else "JSON"
        raise RejectedRequest(f"the body is not valid {kind}: {' '.join(str(error).split())}") from None
    if rows.empty:
        raise RejectedRequest("the request holds no rows; send at least one record")
    return rows


def predict(data: pd.DataFrame, model: ServingModel) -> np.ndarray:
    """Predictions in the target's own units (dollars for house prices), PREDICT_BATCH_ROWS rows at a time."""
    if len(data) > PREDICT_BATCH_ROWS:
        return np.concatenate([predict(data.iloc[start:start + PREDICT_BATCH_ROWS], model)
                               for start in range(0, len(data), PREDICT_BATCH_ROWS)])
    if model.linear is not None:
        return predict_linear(model.linear, model.spec, data)
    encoder = model.encoder or FeatureEncoder(model.spec)
    return decode_target(model.booster.inplace_predict(encoder(data)), model.spec)


def write_predictions(prediction, accept) -> tuple[str, str]:
    """(body, content type): JSON {"predictions": [...]}, or one CSV line per row."""
    media_type = _media_type(accept)
    values = [float(value) for value in prediction]
    # A client that states no preference gets JSON, the richer of the two formats.
    if media_type in (JSON, "", "*/*"):
        return json.dumps({"predictions": values}), JSON
    if media_type == CSV:
        return "".join(f"{value!r}\n" for value in values), CSV
    raise RejectedRequest(f"unsupported accept type {accept!r}; ask for {JSON} or {CSV}", HTTPStatus.NOT_ACCEPTABLE)


def input_fn(request_body, request_content_type):
    try:
        return read_rows(request_body, request_content_type)
    except RejectedRequest as rejected:
        return rejected


def predict_fn(data, model: ServingModel):
    if isinstance(data, RejectedRequest):
        return data
    try:
        return predict(data, model)
    except ValueError as error:  # a column absent, or a value that is no number: the request's fault
        return RejectedRequest(" ".join(str(error).split()))


def output_fn(prediction, accept):
    if isinstance(prediction, RejectedRequest):
        return prediction
    try:
        return write_predictions(prediction, accept)
    except RejectedRequest as rejected:
        return rejected
