"""Evaluate: score the baseline and the best tuned model on the held-out test split."""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.context import StepContext
from steps.processing import processing_input, processing_output, script_processing_step

EVALUATION_FILE = "evaluation.json"


def evaluation_report() -> PropertyFile:
    return PropertyFile(name="EvaluationReport", output_name="evaluation", path=EVALUATION_FILE)


def evaluation_step(
    ctx: StepContext, *, baseline_model, baseline_job_name, xgboost_model, xgboost_job_name, test,
    instance_type, report: PropertyFile,
) -> ProcessingStep:
    # Keyed by the two training jobs: the same models always map to the same report.
    output_uri = Join(on="/", values=[ctx.output_uri("evaluation"), baseline_job_name, xgboost_job_name])
    return script_processing_step(
        ctx, "Evaluate",
        framework="xgboost",
        script="evaluate.py",
        instance_type=instance_type,
        inputs=[
            processing_input("baseline", baseline_model, "/opt/ml/processing/input/baseline"),
            processing_input("xgboost", xgboost_model, "/opt/ml/processing/input/xgboost"),
            processing_input("test", test, "/opt/ml/processing/input/test"),
        ],
        outputs=[processing_output("evaluation", output_uri, "/opt/ml/processing/evaluation")],
        arguments=[],
        description="RMSE, MAE and R² (with bootstrap standard deviations) of both models on the test split, "
        "scored through the serving code.",
        property_files=[report],
    )


def evaluation_file_uri(step: ProcessingStep) -> Join:
    output = step.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri
    return Join(on="/", values=[output, EVALUATION_FILE])
