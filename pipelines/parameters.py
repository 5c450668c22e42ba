"""The pipeline's parameters: what a data scientist can set when starting an execution.

SageMaker has no field for a parameter's description, so each one is documented here once and
shown in the pipeline's description (visible in Studio), `pipeline.py parameters` and the README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from pipelines.settings import Settings

SAMPLE_DATA_KEY = "data/ames_housing.csv"
APPROVAL_STATUSES = ["PendingManualApproval", "Approved", "Rejected"]


@dataclass(frozen=True)
class PipelineParameters:
    input_bucket: ParameterString
    input_key: ParameterString
    target_column: ParameterString
    id_columns: ParameterString
    processing_instance_type: ParameterString
    training_instance_type: ParameterString
    max_rmse: ParameterFloat
    min_improvement: ParameterFloat
    approval_status: ParameterString

    @classmethod
    def declare(cls, settings: Settings) -> PipelineParameters:
        # Imported here: checking parameter values must not pay for importing the SDK.
        from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString

        return cls(
            input_bucket=ParameterString("InputDataBucket", default_value=settings.bucket),
            input_key=ParameterString("InputDataKey", default_value=SAMPLE_DATA_KEY),
            target_column=ParameterString("TargetColumn", default_value="SalePrice"),
            id_columns=ParameterString("IdColumns", default_value="Order,PID"),
            processing_instance_type=ParameterString("ProcessingInstanceType", default_value="ml.m5.xlarge"),
            training_instance_type=ParameterString("TrainingInstanceType", default_value="ml.m5.xlarge"),
            max_rmse=ParameterFloat("MaxRmse", default_value=40000.0),
            min_improvement=ParameterFloat("MinImprovementOverBaseline", default_value=0.05),
            approval_status=ParameterString(
                "ModelApprovalStatus", default_value="PendingManualApproval", enum_values=APPROVAL_STATUSES
            ),
        )

    def all(self) -> list:
        return list(vars(self).values())


DESCRIPTIONS = {
    "InputDataBucket": "S3 bucket of the input data (an S3 trigger passes $.detail.bucket.name).",
    "InputDataKey": "Key of one CSV, or a prefix whose CSVs are all read (an S3 trigger passes $.detail.object.key).",
    "TargetColumn": "Column to predict; must be numeric.",
    "IdColumns": "Comma-separated columns that identify rows and are not features; empty for none.",
    "ProcessingInstanceType": "Instance type of the Preprocess and Evaluate jobs.",
    "TrainingInstanceType": "Instance type of the baseline training job and of every tuning trial.",
    "MaxRmse": "Quality gate: the tuned model's test RMSE (target units) must be at most this.",
    "MinImprovementOverBaseline": "Quality gate: fraction by which the tuned RMSE must beat the baseline's (0.05 = 5%).",
    "ModelApprovalStatus": "Approval status of the registered model version.",
}


def describe_parameters() -> str:
    return "\n".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items())


class ParameterValueError(ValueError):
    """A parameter value of the right type that the pipeline cannot use."""


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# What SageMaker cannot check when an execution starts; `start` and `run` check it first.
VALUE_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "InputDataBucket": (lambda v: bool(_BUCKET_NAME.match(v)), "must be an S3 bucket name"),
    "InputDataKey": (lambda v: bool(v.strip()) and not v.startswith("/"),
                     "must be an object key or prefix inside the bucket, without a leading /"),
    "TargetColumn": (lambda v: bool(v.strip()), "must name the column to predict"),
    "MaxRmse": (lambda v: v > 0, "must be greater than 0"),
    "MinImprovementOverBaseline": (lambda v: -1 < v < 1, "must be a fraction between -1 and 1 (0.05 = 5%)"),
}


def check_parameter_values(values: Mapping[str, object]) -> None:
    """Raise ParameterValueError naming the first typed value that breaks its rule."""
    for name, (is_valid, requirement) in VALUE_RULES.items():
        if name in values and not is_valid(values[name]):
            raise ParameterValueError(f"parameter {name}={values[name]!r} {requirement}")
