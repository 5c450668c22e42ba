"""The pipeline's parameters: what a data scientist can set when starting an execution.

SageMaker has no field for a parameter's description, so each one is documented here once and
shown in the pipeline's description (visible in Studio), `pipeline.py parameters` and the README.
"""

from __future__ import annotations

from dataclasses import dataclass

from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString

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
