"""Regression metrics in the target's own units (dollars), with numpy only so every image has them."""

import numpy as np

VALIDATION_METRIC_NAME = "validation-rmse"


def rmse(actual, predicted) -> float:
    return float(np.sqrt(np.mean((np.asarray(actual) - np.asarray(predicted)) ** 2)))


def mae(actual, predicted) -> float:
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(predicted))))


def r2(actual, predicted) -> float:
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    residual = float(np.sum((actual - predicted) ** 2))
    total = float(np.sum((actual - actual.mean()) ** 2))
    if total == 0:
        # As scikit-learn does for a constant target: perfect or nothing, never NaN in a report.
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


REGRESSION_METRICS = {"rmse": rmse, "mae": mae, "r2": r2}


def regression_metrics(actual, predicted, resamples: int, seed: int) -> dict:
    """SageMaker model-metrics entries: each metric's value on all rows, and as
    standard_deviation the standard deviation of that metric over `resamples` bootstrap
    resamples of the rows (drawn with numpy's default_rng(seed), the same draws for
    every metric and every model scored with the same seed)."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    # One resample drawn and gathered at a time, every metric computed on it: all the draws at once took 2.4 GB
    # on 1.5M test rows. The generator gives the same draws either way.
    rng, resampled = np.random.default_rng(seed), {name: [] for name in REGRESSION_METRICS}
    for _ in range(resamples):
        rows = rng.integers(0, len(actual), size=len(actual))
        drawn_actual, drawn_predicted = actual[rows], predicted[rows]
        for name, metric in REGRESSION_METRICS.items():
            resampled[name].append(metric(drawn_actual, drawn_predicted))
    return {name: {"value": metric(actual, predicted), "standard_deviation": float(np.std(resampled[name], ddof=1))}
            for name, metric in REGRESSION_METRICS.items()}


def validation_metric_line(value: float) -> str:
    """The line the MetricDefinitions regex `validation-rmse: ([0-9\\.]+)` reads: plain decimal notation."""
    return f"{VALIDATION_METRIC_NAME}: {value:.6f}"
