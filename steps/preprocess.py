"""Preprocess: clean the raw CSVs, split them, and fit the feature spec on the training split."""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join
from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.context import StepContext
from steps.processing import processing_input, processing_output, script_processing_step

SPLITS = ("train", "validation", "test", "features")


def preprocess_step(
    ctx: StepContext, *, input_bucket, input_key, target_column, drop_columns, instance_type
) -> ProcessingStep:
    # Bucket and key arrive separately so an S3 event can pass each as a whole JSON path.
    input_uri = Join(on="", values=["s3://", input_bucket, "/", input_key])
    # Keyed by everything that shapes the output, so a cached result never points at files that a
    # later run with other inputs overwrote.
    output_root = Join(on="/", values=[
        ctx.output_uri("preprocess", ctx.code("preprocess.py").digest[:16]),
        input_bucket, input_key, "target", target_column, "drop", drop_columns,
    ])
    return script_processing_step(
        ctx, "Preprocess",
        framework="sklearn",
        script="preprocess.py",
        instance_type=instance_type,
        inputs=[processing_input("data", input_uri, "/opt/ml/processing/input/data")],
        outputs=[
            processing_output(split, Join(on="/", values=[output_root, split]), f"/opt/ml/processing/{split}")
            for split in SPLITS
        ],
        arguments=["--target-column", target_column, "--drop-columns", drop_columns],
        description="Read every CSV under the input location, drop id columns, split train/validation/test "
        "and fit the feature spec on the training split only.",
    )
