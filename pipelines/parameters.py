"""The pipeline's parameters: what a data scientist can set when starting an execution.

SageMaker has no field for a parameter's description, so each one is documented here once and
shown in the pipeline's description (visible in Studio), `pipeline.py parameters` and the README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:  # the annotations only: checking parameter values must not pay for importing the SDK
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

from pipelines.settings import Settings

SAMPLE_DATA_KEY = "data/ames_housing.csv"
APPROVAL_STATUSES = ["PendingManualApproval", "Approved", "Rejected"]
KEY_ENCODINGS = ["none", "url"]


@dataclass(frozen=True)
class PipelineParameters:
    input_bucket: ParameterString
    input_key: ParameterString
    input_key_encoding: ParameterString
    target_column: ParameterString
    id_columns: ParameterString
    exclude_columns: ParameterString
    processing_instance_type: ParameterString
    processing_instance_count: ParameterInteger
    training_instance_type: ParameterString
    training_instance_count: ParameterInteger
    min_r2: ParameterFloat
    max_rmse: ParameterFloat
    champion_tolerance: ParameterFloat
    approval_status: ParameterString

    @classmethod
    def declare(cls, settings: Settings) -> PipelineParameters:
        # Imported here: checking parameter values must not pay for importing the SDK.
        from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

        return cls(
            input_bucket=ParameterString("InputDataBucket", default_value=settings.bucket),
            input_key=ParameterString("InputDataKey", default_value=SAMPLE_DATA_KEY),
            input_key_encoding=ParameterString("InputKeyEncoding", default_value="none", enum_values=KEY_ENCODINGS),
            target_column=ParameterString("TargetColumn", default_value="SalePrice"),
            id_columns=ParameterString("IdColumns", default_value=""),
            exclude_columns=ParameterString("ExcludeColumns", default_value=""),
            processing_instance_type=ParameterString("ProcessingInstanceType", default_value="ml.m5.xlarge"),
            processing_instance_count=ParameterInteger("ProcessingInstanceCount", default_value=1),
            training_instance_type=ParameterString("TrainingInstanceType", default_value="ml.m5.xlarge"),
            training_instance_count=ParameterInteger("TrainingInstanceCount", default_value=1),
            min_r2=ParameterFloat("MinR2", default_value=0.5),
            max_rmse=ParameterFloat("MaxRmse", default_value=0.0),
            champion_tolerance=ParameterFloat("ChampionTolerance", default_value=0.0),
            approval_status=ParameterString(
                "ModelApprovalStatus", default_value="PendingManualApproval", enum_values=APPROVAL_STATUSES
            ),
        )

    def all(self) -> list:
        return list(vars(self).values())


DESCRIPTIONS = {
    "InputDataBucket": "S3 bucket of the input data (an S3 trigger passes $.detail.bucket.name).",
    "InputDataKey": "Key of one CSV, or a prefix whose CSVs are all read (an S3 trigger passes $.detail.object.key).",
    "InputKeyEncoding": "none: InputDataKey is the key as S3 names it; url: it is URL-encoded as S3 events "
                        "carry it (the S3 trigger passes url), and LocateInput decodes it.",
    "TargetColumn": "Column to predict; must be numeric.",
    "IdColumns": "Comma-separated columns that identify rows and are not features; empty: id-like columns "
                 "(a different value in every row) are detected and left out; none: no column is.",
    "ExcludeColumns": "Comma-separated columns that must not be features, e.g. ones derived from the target.",
    "ProcessingInstanceType": "Instance type of the Preprocess and Evaluate jobs.",
    "ProcessingInstanceCount": "Instances of the Preprocess job; above 1, each reads its share of the input files "
                               "(give it at least as many files), and the first decides the columns and the feature "
                               "spec for all on up to a million of their rows.",
    "TrainingInstanceType": "Instance type of the baseline training job and of every tuning trial.",
    "TrainingInstanceCount": "Instances of every tuning trial; above 1, Preprocess writes the train and validation "
                             "splits in that many parts, each instance reads one, and XGBoost trains across them.",
    "MinR2": "Quality gate: the chosen model's R² on the test split must be at least this (scale-free).",
    "MaxRmse": "Quality gate: the chosen model's test RMSE (target units) must be at most this; 0 turns it off.",
    "ChampionTolerance": "Quality gate, when an approved version exists: how much higher (as a fraction, 0.02 = 2%) "
                         "the new model's test RMSE may be than that champion's on the same rows.",
    "ModelApprovalStatus": "Approval status of the registered model version.",
}


def describe_parameters() -> str:
    return "\n".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items())


class ParameterValueError(ValueError):
    """A parameter value of the right type that the pipeline cannot use."""


# The lists are part of the S3 key under which Preprocess writes (so a cached result is never
# overwritten by a run with other columns), and a key segment must fit a file name locally.
MAX_COLUMN_LIST_BYTES = 230
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# Each part is a file of its own, and a part per instance is only worth it on tables of many rows.
MAX_TRAINING_INSTANCES = 20
MAX_PROCESSING_INSTANCES = 20
# What SageMaker cannot check when an execution starts; `start` and `run` check it first.
VALUE_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "InputDataBucket": (lambda v: bool(_BUCKET_NAME.match(v)), "must be an S3 bucket name"),
    "InputDataKey": (lambda v: bool(v.strip()) and not v.startswith("/"),
                     "must be an object key or prefix inside the bucket, without a leading /"),
    "TargetColumn": (lambda v: bool(v.strip()) and len(v.encode()) <= MAX_COLUMN_LIST_BYTES,
                     f"must name the column to predict (at most {MAX_COLUMN_LIST_BYTES} bytes)"),
    "IdColumns": (lambda v: len(v.encode()) <= MAX_COLUMN_LIST_BYTES,
                  f"must list at most {MAX_COLUMN_LIST_BYTES} bytes of column names; name only the id columns"),
    "ExcludeColumns": (lambda v: len(v.encode()) <= MAX_COLUMN_LIST_BYTES,
                       f"must list at most {MAX_COLUMN_LIST_BYTES} bytes of column names; to keep only a few "
                       "columns, upload a file with just those"),
    "ProcessingInstanceCount": (lambda v: 1 <= v <= MAX_PROCESSING_INSTANCES,
                                f"must be from 1 to {MAX_PROCESSING_INSTANCES} instances of the Preprocess job"),
    "TrainingInstanceCount": (lambda v: 1 <= v <= MAX_TRAINING_INSTANCES,
                              f"must be from 1 to {MAX_TRAINING_INSTANCES} instances per tuning trial"),
    "MinR2": (lambda v: v <= 1, "must be at most 1 (R² of a perfect model)"),
    "MaxRmse": (lambda v: v >= 0, "must be 0 (off) or a positive RMSE in the target's units"),
    "ChampionTolerance": (lambda v: 0 <= v < 1, "must be a fraction from 0 up to 1 (0.02 = 2%)"),
}


def check_parameter_values(values: Mapping[str, object]) -> None:
    """Raise ParameterValueError naming the first typed value that breaks its rule."""
    for name, (is_valid, requirement) in VALUE_RULES.items():
        if name in values and not is_valid(values[name]):
            raise ParameterValueError(f"parameter {name}={values[name]!r} {requirement}")
