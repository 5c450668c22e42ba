"""LocateInput: the input data's S3 URI, its object key decoded when an S3 event passed it."""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.context import StepContext
from steps.processing import processing_output, script_processing_step

LOCATION_FILE = "location.json"


def input_location_report() -> PropertyFile:
    return PropertyFile(name="InputLocation", output_name="location", path=LOCATION_FILE)


def locate_input_step(ctx: StepContext, *, input_bucket, input_key, key_encoding, instance_type,
                      report: PropertyFile) -> ProcessingStep:
    return script_processing_step(
        ctx, "LocateInput",
        framework="sklearn",
        script="locate_input.py",
        instance_type=instance_type,
        inputs=[],
        # Keyed by code and arguments (what the file says), so a cached run's file is never overwritten.
        outputs=[processing_output("location", Join(on="/", values=[
            ctx.output_uri("input", ctx.code("locate_input.py").digest[:16]), input_bucket, key_encoding, input_key]),
            "/opt/ml/processing/location")],
        arguments=["--bucket", input_bucket, "--key", input_key, "--key-encoding", key_encoding],
        description="The input data's S3 location; decodes the object key when an S3 event passed it "
        "URL-encoded (InputKeyEncoding=url), since an EventBridge rule cannot.",
        property_files=[report],
    )


def input_uri(step: ProcessingStep, report: PropertyFile) -> JsonGet:
    return JsonGet(step_name=step.name, property_file=report, json_path="uri")
