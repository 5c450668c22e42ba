"""Serving handlers for the SageMaker XGBoost container: raw columns in, prices out.

Requests carry raw feature columns; the feature spec stored in the model artefact turns
them into the matrix the booster was trained on, so training and serving share one
transform. Only features.py travels with this file (both sit in the artefact's code/).
"""

import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import xgboost

from features import FEATURE_SPEC_FILE, decode_target, read_raw_csv, spec_from_json, transform_features

BOOSTER_FILE = "xgboost-model.json"
CSV = "text/csv"
JSON = "application/json"


class ServingModel(NamedTuple):
    booster: xgboost.Booster
    spec: dict


def model_fn(model_dir) -> ServingModel:
    booster = xgboost.Booster()
    booster.load_model(str(Path(model_dir) / BOOSTER_FILE))
    return ServingModel(booster, spec_from_json((Path(model_dir) / FEATURE_SPEC_FILE).read_text()))


def _media_type(content_type) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _records(payload) -> list:
    records = payload.get("instances") if isinstance(payload, dict) else payload
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise ValueError(
            'JSON requests must be a list of records or {"instances": [records]}, '
            "each record an object of raw column names to values"
        )
    return records


def input_fn(request_body, request_content_type) -> pd.DataFrame:
    """Raw rows from a CSV body with a header row, or from JSON records."""
    text = request_body.decode("utf-8") if isinstance(request_body, (bytes, bytearray)) else request_body
    media_type = _media_type(request_content_type)
    if media_type == CSV:
        rows = read_raw_csv(io.StringIO(text))
    elif media_type == JSON:
        rows = pd.DataFrame.from_records(_records(json.loads(text)))
    else:
        raise ValueError(
            f"unsupported content type {request_content_type!r}; send {CSV} with a header row or {JSON} records"
        )
    if rows.empty:
        raise ValueError("the request holds no rows; send at least one record")
    return rows


def predict_fn(data: pd.DataFrame, model: ServingModel) -> np.ndarray:
    """Predictions in the target's own units (dollars for house prices)."""
    matrix = xgboost.DMatrix(transform_features(data, model.spec))
    return decode_target(model.booster.predict(matrix), model.spec)


def output_fn(prediction, accept) -> str:
    media_type = _media_type(accept)
    values = [float(value) for value in prediction]
    # A client that states no preference gets JSON, the richer of the two formats.
    if media_type in (JSON, "", "*/*"):
        return json.dumps({"predictions": values})
    if media_type == CSV:
        return "".join(f"{value!r}\n" for value in values)
    raise ValueError(f"unsupported accept type {accept!r}; ask for {JSON} or {CSV}")
