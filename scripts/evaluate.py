"""Processing job (XGBoost image): score both models on the raw test rows.

The XGBoost model is scored through inference.py's model_fn/predict_fn, the serving
path itself; the baseline through its JSON coefficients. Writes evaluation.json in
SageMaker's model-metrics format (with the baseline and the comparison beside it) and
predictions.csv, everything in the target's own units (dollars).
"""

import argparse
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from container import (
    ContractArgumentParser, failure_reporting, opt_ml_root, read_csv_directory, read_feature_spec,
    read_text, write_csv_atomic, write_json_atomic,
)
from features import FEATURE_SPEC_FILE, target_values
from inference import BOOSTER_FILE, model_fn, predict_fn
from linear_model import LINEAR_MODEL_FILE, linear_model_from_json, predict_linear
from metrics import regression_metrics


def extract_model(archive: Path, destination: Path, required_files) -> Path:
    """Unpack a model.tar.gz and check it holds the files scoring needs."""
    if not archive.is_file():
        raise ValueError(f"model archive {archive} does not exist; provide the training job's model.tar.gz")
    try:
        with tarfile.open(archive) as bundle:
            # The "data" filter refuses members that would land outside destination;
            # Python builds older than 3.11.4 lack it and extract as before.
            if hasattr(tarfile, "data_filter"):
                bundle.extractall(destination, filter="data")
            else:
                bundle.extractall(destination)
    except tarfile.TarError as error:
        raise ValueError(f"cannot extract {archive}: {error}; provide an intact model.tar.gz") from error
    absent = [name for name in required_files if not (destination / name).is_file()]
    if absent:
        raise ValueError(f"{archive} lacks {absent}; provide the model.tar.gz of the matching training job")
    return destination


def score_test_rows(test: pd.DataFrame, xgboost_dir: Path,
                    baseline_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Actual targets, XGBoost predictions and baseline predictions for the raw test rows."""
    serving_model = model_fn(xgboost_dir)
    baseline_spec = read_feature_spec(baseline_dir)
    target = serving_model.spec["target"]
    if baseline_spec["target"] != target:
        raise ValueError(
            f"the models predict different targets ({target!r} and {baseline_spec['target']!r}); "
            "evaluate models trained on the same preprocessing output"
        )
    baseline_model = linear_model_from_json(
        read_text(baseline_dir / LINEAR_MODEL_FILE, "baseline model"), baseline_spec)
    return (
        target_values(test, target),
        predict_fn(test, serving_model),
        predict_linear(baseline_model, baseline_spec, test),
    )


def evaluation_report(actual, xgboost_predictions, baseline_predictions, resamples: int, seed: int) -> dict:
    """Model metrics of the XGBoost model, of the baseline, and the relative RMSE improvement.

    Each standard_deviation is the bootstrap standard deviation of that metric over
    `resamples` seeded resamples of the test rows (see metrics.regression_metrics).
    """
    metrics = regression_metrics(actual, xgboost_predictions, resamples, seed)
    baseline_metrics = regression_metrics(actual, baseline_predictions, resamples, seed)
    return {
        "regression_metrics": metrics,
        "baseline": {"regression_metrics": baseline_metrics},
        "comparison": {
            "rmse_improvement_over_baseline": 1 - metrics["rmse"]["value"] / baseline_metrics["rmse"]["value"],
        },
    }


def predictions_table(actual, xgboost_predictions, baseline_predictions) -> pd.DataFrame:
    return pd.DataFrame({
        "row": np.arange(len(actual)),
        "actual": actual,
        "xgboost": xgboost_predictions,
        "baseline": baseline_predictions,
    })


def at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r} is below 2; a standard deviation needs two resamples")
    return value


def parse_arguments(argv=None) -> argparse.Namespace:
    inputs = opt_ml_root() / "processing" / "input"
    parser = ContractArgumentParser("processing", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-model", type=Path, default=inputs / "baseline" / "model.tar.gz")
    parser.add_argument("--xgboost-model", type=Path, default=inputs / "xgboost" / "model.tar.gz")
    parser.add_argument("--test-dir", type=Path, default=inputs / "test")
    parser.add_argument("--output-dir", type=Path, default=opt_ml_root() / "processing" / "evaluation")
    parser.add_argument("--bootstrap-resamples", type=at_least_two, default=200)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("processing"), tempfile.TemporaryDirectory() as scratch:
        test = read_csv_directory(arguments.test_dir, "test data")
        xgboost_dir = extract_model(arguments.xgboost_model, Path(scratch) / "xgboost",
                                    (BOOSTER_FILE, FEATURE_SPEC_FILE))
        baseline_dir = extract_model(arguments.baseline_model, Path(scratch) / "baseline",
                                     (LINEAR_MODEL_FILE, FEATURE_SPEC_FILE))
        actual, xgboost_predictions, baseline_predictions = score_test_rows(test, xgboost_dir, baseline_dir)
        report = evaluation_report(actual, xgboost_predictions, baseline_predictions,
                                   arguments.bootstrap_resamples, arguments.seed)
        write_csv_atomic(arguments.output_dir / "predictions.csv",
                         predictions_table(actual, xgboost_predictions, baseline_predictions))
        write_json_atomic(arguments.output_dir / "evaluation.json", report)
        print(f"test rmse: xgboost {report['regression_metrics']['rmse']['value']:.2f}, "
              f"baseline {report['baseline']['regression_metrics']['rmse']['value']:.2f}")


if __name__ == "__main__":
    main()
