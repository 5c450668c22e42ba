"""Training job (scikit-learn image, script mode): a Ridge regression candidate.

Chooses the target transform (log or none) by the held-out RMSE (the validation split, or on
small tables the shared cross-validation folds of resampling.py) and the regularisation by
leave-one-out cross-validation on the fitting rows (RidgeCV's criterion), then refits with those
choices on train + validation rows and saves coefficients and intercept as JSON next to the feature
spec: no pickle, so the model can be scored and served in the XGBoost image, whose serving code travels
beside it. Prints `validation-rmse: <target units>` last: that held-out RMSE (the saved model has
seen the validation rows).

Ridge is solved from sums over the rows, encoded a batch at a time (features x features numbers), so the
job never holds the encoded matrix: scikit-learn's Ridge and RidgeCV need it whole, and RidgeCV its SVD
beside it, about five float64 copies of a 1M-row table (over 10 GB). The same coefficients and the same
leave-one-out errors (tested against scikit-learn).
"""

import argparse
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd

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
BATCH_ROWS = 50_000  # rows encoded at a time


def _encoded_batches(rows: pd.DataFrame, spec: dict) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows.iloc[start:start + BATCH_ROWS]
        yield transform_features(batch, spec), encode_target(target_values(batch, spec["target"]), spec)


class Moments(NamedTuple):
    """What Ridge with an unpenalised intercept needs of the encoded rows: their count and means, the centred
    cross-products of the features and of features and target, and the targets' range."""
    rows: int
    feature_means: np.ndarray
    target_mean: float
    features_cross: np.ndarray
    target_cross: np.ndarray
    target_range: tuple[float, float]

    @classmethod
    def of(cls, rows: pd.DataFrame, spec: dict) -> "Moments":
        count, low, high = 0, np.inf, -np.inf
        feature_sums = target_sum = features_cross = target_cross = 0.0
        for features, targets in _encoded_batches(rows, spec):
            count += len(targets)
            feature_sums, target_sum = feature_sums + features.sum(axis=0), target_sum + targets.sum()
            features_cross = features_cross + features.T @ features
            target_cross = target_cross + features.T @ targets
            low, high = min(low, targets.min()), max(high, targets.max())
        feature_means, target_mean = feature_sums / count, target_sum / count
        return cls(count, feature_means, float(target_mean),
                   features_cross - count * np.outer(feature_means, feature_means),
                   target_cross - count * feature_means * target_mean, (float(low), float(high)))


def cross_validated_fit(rows: pd.DataFrame, spec: dict, alphas) -> tuple[dict, float]:
    """Ridge on the rows with the alpha of the lowest leave-one-out error, and that alpha: one pass over the rows
    for the sums, one for the errors."""
    moments = Moments.of(rows, spec)
    alpha = float(alphas[0]) if len(alphas) == 1 else \
        float(np.asarray(alphas)[np.argmin(leave_one_out_errors(moments, rows, spec, alphas))])
    return fit_linear_model(moments, spec, alpha), alpha


def fit_linear_model(moments: Moments, spec: dict, alpha: float) -> dict:
    penalised = moments.features_cross + alpha * np.eye(len(moments.feature_means))
    coefficients = np.linalg.solve(penalised, moments.target_cross)
    intercept = moments.target_mean - moments.feature_means @ coefficients
    return linear_model_json(coefficients, intercept, spec, np.array(moments.target_range))


def leave_one_out_errors(moments: Moments, rows: pd.DataFrame, spec: dict, alphas) -> np.ndarray:
    """The mean squared leave-one-out error of each alpha on the rows (whose moments are given), as RidgeCV
    computes it: on the eigenvectors of the centred cross-products, a row's leave-one-out residual is its
    residual over one minus its leverage (the intercept's share of which is 1 / rows)."""
    eigenvalues, eigenvectors = np.linalg.eigh(moments.features_cross)
    shrinkage = 1.0 / (eigenvalues[:, None] + np.asarray(alphas, dtype=float)[None, :])  # eigenvalue x alpha
    projected_target = eigenvectors.T @ moments.target_cross
    squared_errors = np.zeros(len(alphas))
    for features, targets in _encoded_batches(rows, spec):
        projected = (features - moments.feature_means) @ eigenvectors
        fitted = projected @ (projected_target[:, None] * shrinkage)
        leverage = projected ** 2 @ shrinkage + 1.0 / moments.rows
        residuals = (targets - moments.target_mean)[:, None] - fitted
        squared_errors += ((residuals / (1.0 - leverage)) ** 2).sum(axis=0)
    return squared_errors / moments.rows


def validation_rmse(model: dict, spec: dict, validation: pd.DataFrame) -> float:
    """Computed through the serving handlers, as the endpoint would predict."""
    return rmse(target_values(validation, spec["target"]), predict(validation, ServingModel(None, spec, model)))


def held_out_rmse(train: pd.DataFrame, validation: pd.DataFrame, spec: dict, alphas) -> float:
    """RMSE on held-out rows with alpha chosen on the fitting rows: the validation split, or out-of-fold."""
    if not uses_cross_validation(len(train) + len(validation)):
        return validation_rmse(cross_validated_fit(train, spec, alphas)[0], spec, validation)
    rows = pooled_rows(train, validation)
    predictions = np.empty(len(rows))
    for fit_rows, held_out in fold_indices(len(rows)):
        fold_fit = rows.iloc[fit_rows]
        model, _ = cross_validated_fit(fold_fit, spec, alphas)
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
    model, alpha = cross_validated_fit(pooled_rows(train, validation), chosen_spec, alphas)
    return model, chosen_spec, score, f"target transform {transform}, alpha {alpha:.4g}"


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
