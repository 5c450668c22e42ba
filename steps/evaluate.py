"""Evaluate: choose the better candidate on the validation split and score it on the held-out test split."""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.context import StepContext
from steps.processing import processing_input, processing_output, script_processing_step

EVALUATION_FILE = "evaluation.json"
REPORT_PAGE = "report/index.html"
MODEL_ARCHIVE = "model.tar.gz"
DATA_REPORT_FILE = "data-report.json"


def evaluation_report() -> PropertyFile:
    return PropertyFile(name="EvaluationReport", output_name="evaluation", path=EVALUATION_FILE)


def evaluation_step(
    ctx: StepContext, *, baseline_model, baseline_job_name, baseline_validation_rmse, xgboost_model,
    xgboost_job_name, xgboost_validation_rmse, splits: dict, champion_model, champion_name, instance_type,
    report: PropertyFile, min_r2, max_rmse, champion_tolerance,
) -> ProcessingStep:
    # Keyed by the two training jobs and the champion: the same models always map to the same report.
    output_root = Join(on="/", values=[ctx.output_uri("evaluation"), baseline_job_name, xgboost_job_name,
                                       Join(on="=", values=["champion", champion_name])])
    inputs = "/opt/ml/processing/input"
    return script_processing_step(
        ctx, "Evaluate",
        framework="xgboost",
        script="evaluate.py",
        instance_type=instance_type,
        inputs=[
            processing_input("baseline", baseline_model, f"{inputs}/baseline"),
            processing_input("xgboost", xgboost_model, f"{inputs}/xgboost"),
            *(processing_input(name, splits[name], f"{inputs}/{name}") for name in ("test", "report")),
            processing_input("champion", champion_model, f"{inputs}/champion"),
        ],
        outputs=[
            processing_output(name, Join(on="/", values=[output_root, name]), f"/opt/ml/processing/{name}")
            for name in ("evaluation", "model")
        ],
        # Join makes text of the numbers: container arguments are strings. The gate's thresholds are
        # stated in the report (and so part of Evaluate's cache key).
        arguments=["--champion-name", champion_name,
                   *(argument for flag, value in (
                       ("--baseline-validation-rmse", baseline_validation_rmse),
                       ("--xgboost-validation-rmse", xgboost_validation_rmse),
                       ("--min-r2", min_r2), ("--max-rmse", max_rmse), ("--champion-tolerance", champion_tolerance))
                     for argument in (flag, Join(on="", values=[value])))],
        description="Choose the candidate (tuned XGBoost or the baseline) with the lower validation RMSE (as "
        "their training jobs reported it); "
        "RMSE, MAE and R² (with bootstrap standard deviations) of every candidate, and of the approved "
        "champion, on the same test rows, scored through the serving code; the evaluation report (HTML and plots) "
        "with the quality gate's conditions.",
        property_files=[report],
    )


def _output_file(step: ProcessingStep, output: str, name: str) -> Join:
    return Join(on="/", values=[step.properties.ProcessingOutputConfig.Outputs[output].S3Output.S3Uri, name])


def evaluation_file_uri(step: ProcessingStep) -> Join:
    return _output_file(step, "evaluation", EVALUATION_FILE)


def evaluation_page_uri(step: ProcessingStep) -> Join:
    """The evaluation report's HTML page (its plots beside it)."""
    return _output_file(step, "evaluation", REPORT_PAGE)


def chosen_model_uri(step: ProcessingStep) -> Join:
    """The chosen candidate's model.tar.gz, as Evaluate copied it."""
    return _output_file(step, "model", MODEL_ARCHIVE)


def data_report_uri(preprocess: ProcessingStep) -> Join:
    return _output_file(preprocess, "report", DATA_REPORT_FILE)
