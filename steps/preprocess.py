"""Preprocess: read and check the user's table, split it, fit the feature spec on the training split."""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join
from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.context import StepContext
from steps.processing import processing_input, processing_output, script_processing_step

# encoded-train and encoded-validation: those splits encoded by the feature spec, once for every tuning trial.
OUTPUTS = ("train", "validation", "test", "encoded-train", "encoded-validation", "features", "report")


def preprocess_step(
    ctx: StepContext, *, input_uri, input_bucket, input_key, target_column, id_columns, exclude_columns,
    instance_type, instance_count, training_instance_count,
) -> ProcessingStep:
    # Keyed by everything that shapes the output, so a cached result never points at files that a
    # later run with other inputs overwrote; "name=value" segments stay non-empty when a value is.
    output_root = Join(on="/", values=[
        ctx.output_uri("preprocess", ctx.code("preprocess.py").digest[:16]),
        input_bucket, input_key, Join(on="=", values=["target", target_column]),
        Join(on="=", values=["ids", id_columns]), Join(on="=", values=["exclude", exclude_columns]),
        Join(on="=", values=["shards", training_instance_count]),
        # Each instance names its own files: runs on other instance counts must not mix theirs in.
        Join(on="=", values=["instances", instance_count]),
    ])
    return script_processing_step(
        ctx, "Preprocess",
        framework="sklearn",
        script="preprocess.py",
        instance_type=instance_type,
        instance_count=instance_count,
        inputs=[processing_input("data", input_uri, "/opt/ml/processing/input/data", sharded=True)],
        outputs=[
            processing_output(name, Join(on="/", values=[output_root, name]), f"/opt/ml/processing/{name}")
            for name in OUTPUTS
        ],
        arguments=["--target-column", target_column, "--id-columns", id_columns,
                   "--exclude-columns", exclude_columns, "--input-uri", input_uri,
                   # A part of the train and validation splits per training instance.
                   "--shards", training_instance_count],
        description="Read every CSV under the input location, check it (data report), leave out id-like and "
        "unusable columns, split train/validation/test, fit the feature spec on the training split only and encode "
        "train and validation by it for the tuning trials.",
    )
