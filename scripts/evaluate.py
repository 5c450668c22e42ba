"""Processing job (XGBoost image): choose the better candidate on validation rows, score it on test rows.

Both candidates (the tuned XGBoost model and the linear baseline) are scored through
inference.py's model_fn/predict, the serving path itself. The one with the lower
validation RMSE, as its training job reported it (the saved models are refit on train +
validation rows, so only the training jobs can score the validation rows fairly), is chosen
(test rows play no part in choosing) and copied to the model output for registration. Writes evaluation.json in SageMaker's model-metrics format (the
chosen model's test metrics, every candidate beside them, readable figures for messages and
the data report's warnings, the quality gate's conditions in words) and predictions.csv, everything
in the target's own units, and the evaluation report (report/index.html and its plots) beside them.
"""

import argparse
import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from container import (
    MODEL_ARCHIVE, ContractArgumentParser, copy_file_atomic, failure_reporting, opt_ml_root, read_table_directory,
    read_text, write_csv_atomic, write_json_atomic,
)
from data_checks import DATA_REPORT_FILE, format_number
from evaluation_report import REPORT_DIR, REPORT_PAGE, gate_verdict, write_plots, write_report
from features import FEATURE_SPEC_FILE, target_values
from inference import BOOSTER_FILE, model_fn, predict
from linear_model import LINEAR_MODEL_FILE
from metrics import regression_metrics, rmse

CANDIDATES = ("xgboost", "baseline")
# CustomerMetadataProperties values allow letters, digits, spaces and _.:/=+-@ only.
_METADATA_UNSAFE = str.maketrans({character: " " for character in "'\",;()[]{}<>²%!?#&*|~^`$"})


def extract_model(archive: Path, destination: Path, required_files) -> Path:
    """Unpack a model.tar.gz and check it holds the files scoring needs."""
    if not archive.is_file():
        raise ValueError(f"model archive {archive} does not exist; provide the training job's model.tar.gz")
    try:
        with tarfile.open(archive) as bundle:
            bundle.extractall(destination, filter="data")  # refuses members that would land outside it
    except tarfile.TarError as error:
        raise ValueError(f"cannot extract {archive}: {error}; provide an intact model.tar.gz") from error
    absent = [name for name in required_files if not (destination / name).is_file()]
    if absent:
        raise ValueError(f"{archive} lacks {absent}; provide the model.tar.gz of the matching training job")
    return destination


def load_candidates(archives: dict[str, Path], scratch: Path) -> dict:
    """Each candidate's serving model, loaded from its model.tar.gz as the endpoint would."""
    models = {}
    for name, archive in archives.items():
        directory = extract_model(archive, scratch / name, (FEATURE_SPEC_FILE,))
        if not any((directory / model_file).is_file() for model_file in (BOOSTER_FILE, LINEAR_MODEL_FILE)):
            raise ValueError(f"{archive} holds neither {BOOSTER_FILE} nor {LINEAR_MODEL_FILE}; provide the "
                             "model.tar.gz of a training job of this pipeline")
        models[name] = model_fn(directory)
    targets = {model.spec["target"] for model in models.values()}
    if len(targets) > 1:
        raise ValueError(f"the candidates predict different targets ({', '.join(sorted(targets))}); "
                         "evaluate models trained on the same preprocessing output")
    return models


def choose_candidate(validation_rmse: dict[str, float]) -> tuple[str, str]:
    """The candidate with the lowest validation RMSE (ties go to the first listed), and why, in words."""
    chosen = min(validation_rmse, key=lambda name: (validation_rmse[name], list(validation_rmse).index(name)))
    others = [f"{name} {format_number(score)}" for name, score in validation_rmse.items() if name != chosen]
    return chosen, (f"lowest validation RMSE: {chosen} {format_number(validation_rmse[chosen])} against "
                    + ", ".join(others))


def _metadata_text(text: str) -> str:
    return " ".join(text.translate(_METADATA_UNSAFE).split())[:256] or "none"


def data_section(report: dict | None) -> dict:
    """The data report's warnings, carried to the model version (as text its metadata accepts)."""
    report = report or {}
    warnings = report.get("warnings", [])
    leaking = sorted({column for leak in report.get("leakage", []) for column in leak["columns"]})
    return {
        "warnings": warnings,
        "warning_count": str(len(warnings)),
        "suspected_leakage": _metadata_text(" ".join(leaking)) if leaking else "none",
    }


def evaluation_report(actual: np.ndarray, predictions: dict[str, np.ndarray], validation_rmse: dict[str, float],
                      data_report: dict | None, resamples: int, seed: int) -> dict:
    """Model metrics of the chosen candidate, every candidate's, the choice and the data warnings.

    Each standard_deviation is the bootstrap standard deviation of that metric over
    `resamples` seeded resamples of the test rows (see metrics.regression_metrics).
    """
    chosen, reason = choose_candidate(validation_rmse)
    candidates = {
        name: {"validation_rmse": validation_rmse[name],
               "regression_metrics": regression_metrics(actual, predictions[name], resamples, seed)}
        for name in predictions
    }
    metrics = candidates[chosen]["regression_metrics"]
    baseline_rmse = candidates["baseline"]["regression_metrics"]["rmse"]["value"]
    improvement = 1 - metrics["rmse"]["value"] / baseline_rmse if baseline_rmse else 0.0
    return {
        "regression_metrics": metrics,
        "chosen": {"candidate": chosen, "reason": reason},
        "candidates": candidates,
        "comparison": {"rmse_improvement_over_baseline": improvement},
        "readable": {
            "candidate": chosen,
            "rmse": format_number(metrics["rmse"]["value"]),
            "r2": f"{metrics['r2']['value']:.3f}",
            "baseline_rmse": format_number(baseline_rmse),
            "improvement_over_baseline": f"{improvement:.1%}",
        },
        "data": data_section(data_report),
    }


def champion_section(champion_dir: Path | None, name: str, scratch: Path, target: str, test: pd.DataFrame,
                     actual: np.ndarray, chosen_rmse: float, resamples: int, seed: int) -> tuple[dict, np.ndarray | None]:
    """The approved champion scored on the same test rows, or why it could not be; and its predictions."""
    archive = champion_dir / MODEL_ARCHIVE if champion_dir is not None else None
    if archive is None or not archive.is_file():
        return {"found": "no", "compared": "no", "name": "none", "worse_by": 0.0,
                "verdict": "no approved champion"}, None
    try:
        model = model_fn(extract_model(archive, scratch / "champion", (FEATURE_SPEC_FILE,)))
        if model.spec["target"] != target:
            raise ValueError(f"it predicts {model.spec['target']!r}, not {target!r}")
        predictions = predict(test, model)
    except ValueError as error:
        # A champion trained on other columns cannot score these rows: reported, not held against the new model.
        reason = " ".join(str(error).split())
        return {"found": "yes", "compared": "no", "name": name, "worse_by": 0.0, "reason": reason,
                "verdict": f"champion {name} cannot score these test rows ({reason})"}, None
    champion_rmse = rmse(actual, predictions)
    worse_by = chosen_rmse / champion_rmse - 1 if champion_rmse else 0.0
    return {
        "found": "yes", "compared": "yes", "name": name, "rmse": champion_rmse, "worse_by": worse_by,
        "regression_metrics": regression_metrics(actual, predictions, resamples, seed),
        "verdict": f"champion {name} test RMSE {format_number(champion_rmse)}, the new model "
                   f"{abs(worse_by):.1%} {'worse' if worse_by > 0 else 'better'}",
    }, predictions


def predictions_table(actual, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({"row": np.arange(len(actual)), "actual": actual, **predictions})


def read_data_report(directory: Path | None) -> dict | None:
    if directory is None or not (directory / DATA_REPORT_FILE).is_file():
        return None
    return json.loads(read_text(directory / DATA_REPORT_FILE, "data report"))


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
    for candidate in CANDIDATES:
        parser.add_argument(f"--{candidate}-validation-rmse", type=float, required=True,
                            help=f"the validation RMSE the {candidate} training job reported")
    parser.add_argument("--test-dir", type=Path, default=inputs / "test")
    parser.add_argument("--data-report-dir", type=Path, default=inputs / "report",
                        help="the data report of Preprocess, whose warnings are carried along (optional)")
    parser.add_argument("--output-dir", type=Path, default=opt_ml_root() / "processing" / "evaluation")
    parser.add_argument("--champion-dir", type=Path, default=inputs / "champion",
                        help="the approved champion's model.tar.gz, if there is one")
    parser.add_argument("--champion-name", default="none", help="how the champion is called in messages, e.g. v3")
    parser.add_argument("--model-output-dir", type=Path, default=opt_ml_root() / "processing" / "model",
                        help="where the chosen candidate's model.tar.gz is copied")
    parser.add_argument("--min-r2", type=float, required=True, help="the gate's MinR2, stated in the report")
    parser.add_argument("--max-rmse", type=float, required=True, help="the gate's MaxRmse (0 = off)")
    parser.add_argument("--champion-tolerance", type=float, required=True, help="the gate's ChampionTolerance")
    parser.add_argument("--bootstrap-resamples", type=at_least_two, default=200)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("processing"), tempfile.TemporaryDirectory() as scratch:
        test = read_table_directory(arguments.test_dir, "test data")
        archives = {"xgboost": arguments.xgboost_model, "baseline": arguments.baseline_model}
        models = load_candidates(archives, Path(scratch))
        target = next(iter(models.values())).spec["target"]
        validation_rmse = {name: getattr(arguments, f"{name}_validation_rmse") for name in CANDIDATES}
        actual = target_values(test, target)
        predictions = {name: predict(test, model) for name, model in models.items()}
        report = evaluation_report(actual, predictions, validation_rmse, read_data_report(arguments.data_report_dir),
                                   arguments.bootstrap_resamples, arguments.seed)
        report["champion"], champion_predictions = champion_section(
            arguments.champion_dir, arguments.champion_name, Path(scratch), target, test, actual,
            report["regression_metrics"]["rmse"]["value"], arguments.bootstrap_resamples, arguments.seed)
        report["readable"]["champion"] = report["champion"]["verdict"]
        if champion_predictions is not None:
            predictions = {**predictions, "champion": champion_predictions}
        report["gate"] = gate_verdict(report, arguments.min_r2, arguments.max_rmse, arguments.champion_tolerance)
        report["readable"]["gate_failed"] = report["gate"]["failed"]
        report["report"] = f"{REPORT_DIR}/{REPORT_PAGE}"
        tuned = models["xgboost"]
        captions = write_plots(arguments.output_dir / REPORT_DIR, actual, predictions, report["chosen"]["candidate"],
                               tuned.booster, tuned.spec, test, arguments.seed)
        write_report(arguments.output_dir / REPORT_DIR, report, captions, f"Evaluation: predicting {target}")
        write_csv_atomic(arguments.output_dir / "predictions.csv", predictions_table(actual, predictions))
        write_json_atomic(arguments.output_dir / "evaluation.json", report)
        copy_file_atomic(archives[report["chosen"]["candidate"]], arguments.model_output_dir / MODEL_ARCHIVE)
        readable = report["readable"]
        print(f"chosen: {report['chosen']['candidate']} ({report['chosen']['reason']})")
        print(f"test: RMSE {readable['rmse']}, R² {readable['r2']}; baseline RMSE {readable['baseline_rmse']}; "
              f"{readable['champion']}; quality gate {'passed' if report['gate']['passed'] else 'failed'}")


if __name__ == "__main__":
    main()
