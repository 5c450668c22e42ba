"""Training job (scikit-learn image, script mode): a Ridge regression baseline.

Fits Ridge on the transformed training features and the encoded target, then saves
coefficients and intercept as JSON next to the feature spec: no pickle, so the model
can be scored and served in the XGBoost image, whose serving code travels beside it (the
baseline is a candidate for registration). Prints `validation-rmse: <target units>` last.
"""

import argparse

import pandas as pd
from sklearn.linear_model import Ridge

from container import (
    ContractArgumentParser, add_training_arguments, failure_reporting, read_training_inputs,
    save_serving_code, write_json_atomic,
)
from features import FEATURE_SPEC_FILE, encode_target, target_values, transform_features
from inference import ServingModel, predict_fn
from linear_model import LINEAR_MODEL_FILE, linear_model_json
from metrics import rmse, validation_metric_line


def fit_linear_model(train: pd.DataFrame, spec: dict, alpha: float) -> dict:
    encoded_targets = encode_target(target_values(train, spec["target"]), spec)
    ridge = Ridge(alpha=alpha).fit(transform_features(train, spec), encoded_targets)
    return linear_model_json(ridge.coef_, ridge.intercept_, spec, encoded_targets)


def validation_rmse(model: dict, spec: dict, validation: pd.DataFrame) -> float:
    """Computed through the serving handlers, as the endpoint would predict."""
    return rmse(target_values(validation, spec["target"]), predict_fn(validation, ServingModel(None, spec, model)))


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("training", description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=1.0, help="Ridge regularisation strength")
    add_training_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("training"):
        train, validation, spec = read_training_inputs(arguments)
        model = fit_linear_model(train, spec, arguments.alpha)
        score = validation_rmse(model, spec, validation)
        write_json_atomic(arguments.model_dir / LINEAR_MODEL_FILE, model)
        write_json_atomic(arguments.model_dir / FEATURE_SPEC_FILE, spec)
        save_serving_code(arguments.model_dir)
        print(validation_metric_line(score))


if __name__ == "__main__":
    main()
