"""The baseline's fitted linear model as JSON, scored with numpy only.

The baseline is fitted in the scikit-learn image but evaluated in the XGBoost image, whose
scikit-learn is older: plain coefficients travel safely where a pickle would not.
"""

import json

import numpy as np
import pandas as pd

from features import decode_target, feature_names, transform_features

LINEAR_MODEL_FILE = "linear-model.json"


def linear_model_json(coefficients, intercept: float, spec: dict, encoded_targets: np.ndarray) -> dict:
    return {
        "feature_names": feature_names(spec),
        "coefficients": [float(value) for value in coefficients],
        "intercept": float(intercept),
        "encoded_target_range": [float(np.min(encoded_targets)), float(np.max(encoded_targets))],
    }


def linear_model_from_json(text: str, spec: dict) -> dict:
    """Parse a stored linear model, refusing one whose features differ from the spec's."""
    model = json.loads(text)
    names = feature_names(spec)
    if model.get("feature_names") != names or len(model.get("coefficients", ())) != len(names):
        raise ValueError("the linear model does not match its feature spec; retrain it with train_baseline.py")
    return model


def predict_linear(model: dict, spec: dict, frame: pd.DataFrame) -> np.ndarray:
    """Predictions for raw rows, in the target's own units.

    A linear model extrapolates without bound, and on a log-encoded target one unusual row (Ames has
    a 5,600 sq ft partial sale) becomes a prediction in the millions that alone decides the
    baseline's RMSE. Clipping to the target range seen in training keeps the yardstick meaningful.
    """
    encoded = transform_features(frame, spec) @ np.asarray(model["coefficients"]) + model["intercept"]
    low, high = model["encoded_target_range"]
    return decode_target(np.clip(encoded, low, high), spec)
