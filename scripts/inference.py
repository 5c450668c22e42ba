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

import io
import json
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from features import FEATURE_SPEC_FILE, decode_target, read_raw_csv, spec_from_json, transform_features
from linear_model import LINEAR_MODEL_FILE, linear_model_from_json, predict_linear

if TYPE_CHECKING:
    import xgboost

BOOSTER_FILE = "xgboost-model.json"
CSV = "text/csv"
JSON = "application/json"


class ServingModel(NamedTuple):
    booster: xgboost.Booster | None
    spec: dict
    linear: dict | None = None  # the linear baseline's coefficients, when that candidate was chosen


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


def model_fn(model_dir) -> ServingModel:
    model_dir = Path(model_dir)
    spec = spec_from_json((model_dir / FEATURE_SPEC_FILE).read_text())
    if (model_dir / LINEAR_MODEL_FILE).is_file():
        return ServingModel(None, spec, linear_model_from_json((model_dir / LINEAR_MODEL_FILE).read_text(), spec))
    import xgboost  # here, not at the top: the baseline imports this module in the scikit-learn image

    booster = xgboost.Booster()
    booster.load_model(str(model_dir / BOOSTER_FILE))
    return ServingModel(booster, spec)


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


def read_rows(request_body, request_content_type) -> pd.DataFrame:
    """Raw rows from a CSV body with a header row, or from JSON records."""
    media_type = _media_type(request_content_type)
    if media_type not in (CSV, JSON):
        raise RejectedRequest(f"unsupported content type {request_content_type!r}; send {CSV} with a header row "
                              f"or {JSON} records", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    try:
        text = request_body.decode("utf-8") if isinstance(request_body, (bytes, bytearray)) else request_body
        rows = read_raw_csv(io.StringIO(text)) if media_type == CSV else \
            pd.DataFrame.from_records(_records(json.loads(text)))
    except (UnicodeDecodeError, json.JSONDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        kind = "CSV with a header row" if media_type == CSV else "JSON"
        raise RejectedRequest(f"the body is not valid {kind}: {' '.join(str(error).split())}") from None
    if rows.empty:
        raise RejectedRequest("the request holds no rows; send at least one record")
    return rows


def predict(data: pd.DataFrame, model: ServingModel) -> np.ndarray:
    """Predictions in the target's own units (dollars for house prices)."""
    if model.linear is not None:
        return predict_linear(model.linear, model.spec, data)
    import xgboost

    matrix = xgboost.DMatrix(transform_features(data, model.spec))
    return decode_target(model.booster.predict(matrix), model.spec)


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
