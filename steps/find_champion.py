"""FindChampion: look up the model version approved for production, for Evaluate to compare against."""

from __future__ import annotations

from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.context import StepContext
from steps.processing import processing_output, script_processing_step

CHAMPION_FILE = "champion.json"


def champion_report() -> PropertyFile:
    return PropertyFile(name="ChampionReport", output_name="champion", path=CHAMPION_FILE)


def find_champion_step(ctx: StepContext, *, instance_type, report: PropertyFile) -> ProcessingStep:
    # Never cached, so its answer may live under the execution; the marker's place and content never change,
    # which keeps Evaluate's input (and so its cache key) the same whenever there is no champion.
    marker_uri = ctx.output_uri("champion", "none")
    return script_processing_step(
        ctx, "FindChampion",
        framework="sklearn",
        script="find_champion.py",
        instance_type=instance_type,
        inputs=[],
        outputs=[
            processing_output("champion", Join(on="/", values=[
                ctx.output_uri("champion", "lookups"), ExecutionVariables.PIPELINE_EXECUTION_ID]),
                "/opt/ml/processing/champion"),
            processing_output("marker", marker_uri, "/opt/ml/processing/marker"),
        ],
        arguments=["--model-package-group", ctx.settings.model_package_group, "--marker-uri", marker_uri],
        description="Ask the Model Registry for the newest Approved version of the model package group: the "
        "champion a new model must not be worse than.",
        property_files=[report],
        reads_live_state=True,
    )


def champion_value(step: ProcessingStep, report: PropertyFile, path: str) -> JsonGet:
    return JsonGet(step_name=step.name, property_file=report, json_path=path)
