"""Training job (scikit-learn image, script mode): a Ridge regression candidate.

Chooses the target transform (log or none) by the held-out RMSE (the validation split, or on
small tables the shared cross-validation folds of resampling.py) and the regularisation by
leave-one-out cross-validation on the fitting rows (RidgeCV's criterion), then refits with those
choices on train + validation rows and saves coefficients and intercept as JSON next to the feature
spec: no pickle, so the model can be scored and served in the XGBoost image, whose serving code travels
beside it. Prints `validation-rmse: <target units>` last: that held-out RMSE (the saved model has
seen the validation rows).

Ridge is solved from sums over the rows, encoded a batch at a time (features x features numbers), so the
job never holds the encoded matrix, nor, above the tables small enough to cross-validate, the rows themselves
(they are read a batch at a time for each pass): scikit-learn's Ridge and RidgeCV need it whole, and RidgeCV its SVD
beside it, about five float64 copies of a 1M-row table (over 10 GB). The same coefficients and the same
leave-one-out errors (tested against scikit-learn). Both target transforms are fitted from the same passes:
they share the features, whose sums and projections are the costly part.
"""

import argparse
import itertools
from collections.abc import Iterator, Sequence
from typing import NamedTuple, Union

import numpy as np
import pandas as pd

from container import (
    ContractArgumentParser, TableBatches, add_training_arguments, failure_reporting, save_serving_code,
    training_inputs, write_json_atomic,
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


# Rows: a frame in memory (tables small enough to cross-validate), or tables read a batch at a time (a list of
# TableBatches), which are never held whole.
Rows = Union[pd.DataFrame, Sequence[TableBatches]]


def _frames(rows: Rows, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    if isinstance(rows, pd.DataFrame):
        return iter([rows])
    return itertools.chain.from_iterable(table.batches(columns) for table in rows)


def _row_count(rows: Rows) -> int:
    return len(rows) if isinstance(rows, pd.DataFrame) else sum(len(table) for table in rows)


def _pooled(train: Rows, validation: Rows) -> Rows:
    return pooled_rows(train, validation) if isinstance(train, pd.DataFrame) else [*train, *validation]


def _target_values(rows: Rows, target: str) -> np.ndarray:
    return np.concatenate([target_values(frame, target) for frame in _frames(rows, [target])])


def _encoded_batches(rows: Rows, specs: list[dict]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The rows encoded a batch at a time: the features (the same for every spec: they differ in the target's
    transform only) and a column of encoded targets per spec."""
    for frame in _frames(rows):
        for start in range(0, len(frame), BATCH_ROWS):
            batch = frame.iloc[start:start + BATCH_ROWS]
            values = target_values(batch, specs[0]["target"])
            yield transform_features(batch, specs[0]), np.column_stack([encode_target(values, spec) for spec in specs])


class Moments(NamedTuple):
    """What Ridge with an unpenalised intercept needs of the encoded rows: their count and means, the centred
    cross-products of the features and of features and targets, and the targets' ranges; a target column (and
    range) per target transform, as the features are shared."""
    rows: int
    feature_means: np.ndarray
    target_means: np.ndarray
    features_cross: np.ndarray
    target_cross: np.ndarray
    target_ranges: np.ndarray

    @classmethod
    def of(cls, rows: Rows, specs: list[dict]) -> "Moments":
        count, low, high = 0, np.inf, -np.inf
        feature_sums = target_sums = features_cross = target_cross = 0.0
        for features, targets in _encoded_batches(rows, specs):
            count += len(targets)
            feature_sums, target_sums = feature_sums + features.sum(axis=0), target_sums + targets.sum(axis=0)
            features_cross = features_cross + features.T @ features
            target_cross = target_cross + features.T @ targets
            low, high = np.minimum(low, targets.min(axis=0)), np.maximum(high, targets.max(axis=0))
        feature_means, target_means = feature_sums / count, target_sums / count
        return cls(count, feature_means, target_means,
                   features_cross - count * np.outer(feature_means, feature_means),
                   target_cross - count * np.outer(feature_means, target_means), np.column_stack([low, high]))

    def target_column(self, column: int) -> "Moments":
        """The moments with one spec's target only."""
        return self._replace(target_means=self.target_means[column:column + 1],
                             target_cross=self.target_cross[:, column:column + 1],
                             target_ranges=self.target_ranges[column:column + 1])

    def merged(self, other: "Moments") -> "Moments":
        """The moments of both sets of rows together, from theirs (the centred sums of two sets combine with the
        product of their mean differences, Chan, Golub and LeVeque's pairwise update)."""
        rows = self.rows + other.rows
        feature_shift, target_shift = other.feature_means - self.feature_means, other.target_means - self.target_means
        weight = self.rows * other.rows / rows
        return Moments(rows, self.feature_means + feature_shift * other.rows / rows,
                       self.target_means + target_shift * other.rows / rows,
                       self.features_cross + other.features_cross + weight * np.outer(feature_shift, feature_shift),
                       self.target_cross + other.target_cross + weight * np.outer(feature_shift, target_shift),
                       np.column_stack([np.minimum(self.target_ranges[:, 0], other.target_ranges[:, 0]),
                                        np.maximum(self.target_ranges[:, 1], other.target_ranges[:, 1])]))


def cross_validated_fits(rows: Rows, specs: list[dict], alphas,
                         moments: Moments | None = None) -> list[tuple[dict, float]]:
    """For each spec (target transform), Ridge on the rows with the alpha of the lowest leave-one-out error, and
    that alpha: one pass over the rows for the sums (unless their ``moments`` are given), one for the errors,
    whatever the number of specs."""
    moments = Moments.of(rows, specs) if moments is None else moments
    chosen = [float(alphas[0])] * len(specs) if len(alphas) == 1 else \
        [float(np.asarray(alphas)[np.argmin(errors)]) for errors in leave_one_out_errors(moments, rows, specs, alphas)]
    return [(fit_linear_model(moments, spec, alpha, column), alpha)
            for column, (spec, alpha) in enumerate(zip(specs, chosen))]


def fit_linear_model(moments: Moments, spec: dict, alpha: float, column: int = 0) -> dict:
    """Ridge on the moments' target ``column`` (the one encoded as ``spec`` says)."""
    penalised = moments.features_cross + alpha * np.eye(len(moments.feature_means))
    coefficients = np.linalg.solve(penalised, moments.target_cross[:, column])
    intercept = moments.target_means[column] - moments.feature_means @ coefficients
    return linear_model_json(coefficients, intercept, spec, moments.target_ranges[column])


def leave_one_out_errors(moments: Moments, rows: Rows, specs: list[dict], alphas) -> np.ndarray:
    """The mean squared leave-one-out error of each alpha (columns) for each spec's target (rows) on the rows
    (whose moments are given), as RidgeCV computes it: on the eigenvectors of the centred cross-products, a row's
    leave-one-out residual is its residual over one minus its leverage (the intercept's share of which is
    1 / rows). The projections and leverages, the costly part, serve every target."""
    eigenvalues, eigenvectors = np.linalg.eigh(moments.features_cross)
    shrinkage = 1.0 / (eigenvalues[:, None] + np.asarray(alphas, dtype=float)[None, :])  # eigenvalue x alpha
    projected_targets = eigenvectors.T @ moments.target_cross
    squared_errors = np.zeros((len(specs), len(alphas)))
    for features, targets in _encoded_batches(rows, specs):
        projected = (features - moments.feature_means) @ eigenvectors
        leverage = projected ** 2 @ shrinkage + 1.0 / moments.rows
        for column in range(len(specs)):
            fitted = projected @ (projected_targets[:, column, None] * shrinkage)
            residuals = (targets[:, column] - moments.target_means[column])[:, None] - fitted
            squared_errors[column] += ((residuals / (1.0 - leverage)) ** 2).sum(axis=0)
    return squared_errors / moments.rows


def validation_rmse(model: dict, spec: dict, validation: Rows) -> float:
    """Computed through the serving handlers, as the endpoint would predict, a batch of rows at a time."""
    serving, squared_error, count = ServingModel(None, spec, model), 0.0, 0
    for frame in _frames(validation):
        errors = target_values(frame, spec["target"]) - predict(frame, serving)
        squared_error, count = squared_error + float(np.sum(errors ** 2)), count + len(frame)
    return float(np.sqrt(squared_error / count))


def held_out_rmses(train: Rows, validation: Rows, specs: list[dict], alphas,
                   train_moments: Moments | None = None) -> list[float]:
    """For each spec, the RMSE on held-out rows with alpha chosen on the fitting rows: the validation split (from the
    train rows' ``train_moments`` when given), or out-of-fold."""
    if not _cross_validates(train, validation):
        return [validation_rmse(model, spec, validation)
                for spec, (model, _) in zip(specs, cross_validated_fits(train, specs, alphas, train_moments))]
    rows = pooled_rows(train, validation)
    predictions = np.empty((len(specs), len(rows)))
    for fit_rows, held_out in fold_indices(len(rows)):
        for column, (spec, (model, _)) in enumerate(zip(specs, cross_validated_fits(rows.iloc[fit_rows], specs,
                                                                                     alphas))):
            predictions[column, held_out] = predict(rows.iloc[held_out], ServingModel(None, spec, model))
    actual = target_values(rows, specs[0]["target"])
    return [rmse(actual, predicted) for predicted in predictions]


def _cross_validates(train: Rows, validation: Rows) -> bool:
    return uses_cross_validation(_row_count(train) + _row_count(validation))


def choose_and_refit(train: Rows, validation: Rows, spec: dict, alphas) -> tuple[dict, dict, float, str]:
    """The refit model, its spec, the chosen setting's held-out RMSE and a description of the choice. With a
    validation split, the refit's sums are the train rows' (summed to choose) merged with the validation rows':
    a pass over the train rows fewer."""
    transforms = usable_target_transforms(_target_values(train, spec["target"]))
    specs = [with_target_transform(spec, transform) for transform in transforms]
    train_moments = None if _cross_validates(train, validation) else Moments.of(train, specs)
    score, column = min((score, column) for column, score
                        in enumerate(held_out_rmses(train, validation, specs, alphas, train_moments)))
    chosen_spec = specs[column]
    pooled_moments = None if train_moments is None else \
        train_moments.target_column(column).merged(Moments.of(validation, [chosen_spec]))
    [(model, alpha)] = cross_validated_fits(_pooled(train, validation), [chosen_spec], alphas, pooled_moments)
    return model, chosen_spec, score, f"target transform {transforms[column]}, alpha {alpha:.4g}"


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("training", description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=None,
                        help="Ridge regularisation strength (default: chosen by leave-one-out cross-validation)")
    add_training_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("training"):
        train, validation, spec = training_inputs(arguments)
        row_count = len(train) + len(validation)
        # Cross-validation pools and folds the rows, so a table small enough for it is held whole.
        train, validation = (train.frame(), validation.frame()) if uses_cross_validation(row_count) \
            else ([train], [validation])
        alphas = ALPHAS if arguments.alpha is None else [arguments.alpha]
        model, model_spec, score, chosen = choose_and_refit(train, validation, spec, alphas)
        write_json_atomic(arguments.model_dir / LINEAR_MODEL_FILE, model)
        write_json_atomic(arguments.model_dir / FEATURE_SPEC_FILE, model_spec)
        save_serving_code(arguments.model_dir)
        print(f"chosen: {chosen}; refit on {row_count:,} train + validation rows")
        print(validation_metric_line(score))


if __name__ == "__main__":
    main()
