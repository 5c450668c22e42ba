"""QualityGate: register the tuned model only if it is good in absolute terms and beats the baseline."""

from __future__ import annotations

from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo, ConditionLessThanOrEqualTo
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.steps import ProcessingStep

TUNED_RMSE = "regression_metrics.rmse.value"
BASELINE_RMSE = "baseline.regression_metrics.rmse.value"
IMPROVEMENT = "comparison.rmse_improvement_over_baseline"


def _metric(evaluation: ProcessingStep, report: PropertyFile, path: str) -> JsonGet:
    return JsonGet(step_name=evaluation.name, property_file=report, json_path=path)


def quality_gate_step(
    evaluation: ProcessingStep, report: PropertyFile, *, max_rmse, min_improvement, if_passed: list
) -> ConditionStep:
    return ConditionStep(
        name="QualityGate",
        description="Tuned RMSE at most MaxRmse AND at least MinImprovementOverBaseline better than the baseline.",
        conditions=[
            ConditionLessThanOrEqualTo(left=_metric(evaluation, report, TUNED_RMSE), right=max_rmse),
            ConditionGreaterThanOrEqualTo(left=_metric(evaluation, report, IMPROVEMENT), right=min_improvement),
        ],
        if_steps=if_passed,
        else_steps=[gate_failed_step(evaluation, report, max_rmse=max_rmse, min_improvement=min_improvement)],
    )


def gate_failed_step(evaluation: ProcessingStep, report: PropertyFile, *, max_rmse, min_improvement) -> FailStep:
    return FailStep(
        name="QualityGateFailed",
        description="Stops the execution without registering a model when the quality gate fails.",
        error_message=Join(on="", values=[
            "Quality gate failed: tuned RMSE ", _metric(evaluation, report, TUNED_RMSE),
            " (must be <= MaxRmse ", max_rmse, "), baseline RMSE ", _metric(evaluation, report, BASELINE_RMSE),
            ", improvement over baseline ", _metric(evaluation, report, IMPROVEMENT),
            " (must be >= MinImprovementOverBaseline ", min_improvement, ").",
        ]),
    )
