"""Training job (scikit-learn image, script mode): a Ridge regression candidate.

Chooses the target transform (log or none) by the held-out RMSE (the validation split, or on
small tables the shared cross-validation folds of resampling.py) and the regularisation by
leave-one-out cross-validation on the fitting rows (RidgeCV), then refits with those choices on
train + validation rows and saves coefficients and intercept as JSON next to the feature spec: no
pickle, so the model can be scored and served in the XGBoost image, whose serving code travels
beside it. Prints `validation-rmse: <target units>` last: that held-out RMSE (the saved model has
seen the validation rows).
"""

import argparse

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge, RidgeCV

from container import (
    ContractArgumentParser, add_training_arguments, failure_reporting, read_training_inputs,
    save_serving_code, write_json_atomic,
)
from features import (
    FEATURE_SPEC_FILE, encode_target, target_values, transform_features, usable_target_transforms,
    with_target_transform,
)
from inference import ServingModel, predict
from linear_model import LINEAR_MODEL_FILE, linear_model_json
from metrics import rmse, validation_metric_line
from resampling import fold_indices, pooled_rows, uses_cross_validation

ALPHAS = np.logspace(-3, 3, 13)


def fit_linear_model(rows: pd.DataFrame, spec: dict, alpha: float) -> dict:
    encoded_targets = encode_target(target_values(rows, spec["target"]), spec)
    ridge = Ridge(alpha=alpha).fit(transform_features(rows, spec), encoded_targets)
    return linear_model_json(ridge.coef_, ridge.intercept_, spec, encoded_targets)


def cross_validated_alpha(train: pd.DataFrame, spec: dict, alphas) -> float:
    """The regularisation with the lowest leave-one-out error on the training rows (RidgeCV's efficient form)."""
    search = RidgeCV(alphas=alphas).fit(transform_features(train, spec),
                                        encode_target(target_values(train, spec["target"]), spec))
    return float(search.alpha_)


def validation_rmse(model: dict, spec: dict, validation: pd.DataFrame) -> float:
    """Computed through the serving handlers, as the endpoint would predict."""
    return rmse(target_values(validation, spec["target"]), predict(validation, ServingModel(None, spec, model)))


def held_out_rmse(train: pd.DataFrame, validation: pd.DataFrame, spec: dict, alphas) -> float:
    """RMSE on held-out rows with alpha chosen on the fitting rows: the validation split, or out-of-fold."""
    if not uses_cross_validation(len(train) + len(validation)):
        alpha = cross_validated_alpha(train, spec, alphas)
        return validation_rmse(fit_linear_model(train, spec, alpha), spec, validation)
    rows = pooled_rows(train, validation)
    predictions = np.empty(len(rows))
    for fit_rows, held_out in fold_indices(len(rows)):
        fold_fit = rows.iloc[fit_rows]
        model = fit_linear_model(fold_fit, spec, cross_validated_alpha(fold_fit, spec, alphas))
        predictions[held_out] = predict(rows.iloc[held_out], ServingModel(None, spec, model))
    return rmse(target_values(rows, spec["target"]), predictions)


def choose_and_refit(train: pd.DataFrame, validation: pd.DataFrame, spec: dict,
                     alphas) -> tuple[dict, dict, float, str]:
    """The refit model, its spec, the chosen setting's held-out RMSE and a description of the choice."""
    trials = []
    for transform in usable_target_transforms(target_values(train, spec["target"])):
        candidate_spec = with_target_transform(spec, transform)
        trials.append((held_out_rmse(train, validation, candidate_spec, alphas), transform, candidate_spec))
    score, transform, chosen_spec = min(trials, key=lambda trial: trial[0])
    rows = pooled_rows(train, validation)
    alpha = cross_validated_alpha(rows, chosen_spec, alphas)
    return fit_linear_model(rows, chosen_spec, alpha), chosen_spec, score, \
        f"target transform {transform}, alpha {alpha:.4g}"


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("training", description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=None,
                        help="Ridge regularisation strength (default: chosen by leave-one-out cross-validation)")
    add_training_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("training"):
        train, validation, spec = read_training_inputs(arguments)
        alphas = ALPHAS if arguments.alpha is None else [arguments.alpha]
        model, model_spec, score, chosen = choose_and_refit(train, validation, spec, alphas)
        write_json_atomic(arguments.model_dir / LINEAR_MODEL_FILE, model)
        write_json_atomic(arguments.model_dir / FEATURE_SPEC_FILE, model_spec)
        save_serving_code(arguments.model_dir)
        print(f"chosen: {chosen}; refit on {len(train) + len(validation):,} train + validation rows")
        print(validation_metric_line(score))


if __name__ == "__main__":
    main()
