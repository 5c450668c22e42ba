"""QualityGate: register the chosen candidate only if it is good enough on the test split."""

from __future__ import annotations

from sagemaker.core.workflow.conditions import (
    ConditionEquals, ConditionGreaterThanOrEqualTo, ConditionLessThanOrEqualTo, ConditionOr,
)
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.steps import ProcessingStep

CHOSEN_R2 = "regression_metrics.r2.value"
CHOSEN_RMSE = "regression_metrics.rmse.value"
CHAMPION_COMPARED = "champion.compared"
WORSE_THAN_CHAMPION = "champion.worse_by"


def _report_value(evaluation: ProcessingStep, report: PropertyFile, path: str) -> JsonGet:
    return JsonGet(step_name=evaluation.name, property_file=report, json_path=path)


def quality_gate_step(
    evaluation: ProcessingStep, report: PropertyFile, *, min_r2, max_rmse, champion_tolerance, if_passed: list
) -> ConditionStep:
    return ConditionStep(
        name="QualityGate",
        description="The chosen candidate's test R² at least MinR2, AND its test RMSE at most MaxRmse "
        "unless MaxRmse is 0, AND, when an approved champion was scored on the same rows, its RMSE at "
        "most ChampionTolerance above the champion's.",
        conditions=[
            ConditionGreaterThanOrEqualTo(left=_report_value(evaluation, report, CHOSEN_R2), right=min_r2),
            ConditionOr(conditions=[
                ConditionLessThanOrEqualTo(left=max_rmse, right=0.0),
                ConditionLessThanOrEqualTo(left=_report_value(evaluation, report, CHOSEN_RMSE), right=max_rmse),
            ]),
            ConditionOr(conditions=[
                ConditionEquals(left=_report_value(evaluation, report, CHAMPION_COMPARED), right="no"),
                ConditionLessThanOrEqualTo(
                    left=_report_value(evaluation, report, WORSE_THAN_CHAMPION), right=champion_tolerance),
            ]),
        ],
        if_steps=if_passed,
        else_steps=[gate_failed_step(evaluation, report, min_r2=min_r2, max_rmse=max_rmse,
                                     champion_tolerance=champion_tolerance)],
    )


def gate_failed_step(
    evaluation: ProcessingStep, report: PropertyFile, *, min_r2, max_rmse, champion_tolerance
) -> FailStep:
    def readable(name: str) -> JsonGet:
        return _report_value(evaluation, report, f"readable.{name}")

    return FailStep(
        name="QualityGateFailed",
        description="Stops the execution without registering a model when the quality gate fails.",
        error_message=Join(on="", values=[
            "Quality gate failed: the chosen candidate (", readable("candidate"), ") scored test R² ",
            readable("r2"), " (MinR2 ", min_r2, ") and test RMSE ", readable("rmse"),
            " (MaxRmse ", max_rmse, ", 0 = off); ", readable("champion"), " (ChampionTolerance ",
            champion_tolerance, "); baseline RMSE ", readable("baseline_rmse"), ". Nothing was registered: give "
            "the table rows or columns that predict the target better, or, if these figures are good enough, "
            "relax ", readable("gate_failed"), ".",
        ]),
    )
