"""Script-mode training jobs whose code comes from a content-addressed bundle.

`SourceCode` would upload code to a timestamped key on every build and defeat step caching, so the
definition carries the script-mode contract the framework containers read instead:
`sagemaker_program` and `sagemaker_submit_directory` hyperparameters.
"""

from __future__ import annotations

from sagemaker.core.training.configs import (
    CheckpointConfig,
    Compute,
    MetricDefinition,
    Networking,
    OutputDataConfig,
    StoppingCondition,
    Tag,
)
from sagemaker.core.shapes import Channel, DataSource, S3DataSource
from sagemaker.train.model_trainer import ModelTrainer

from steps.context import MAX_JOB_SECONDS, StepContext

# `validation-rmse: 23456.7`, printed by both training scripts in target units.
VALIDATION_RMSE = MetricDefinition(name="validation-rmse", regex=r"validation-rmse: ([0-9.eE+-]+)")


# Where a job keeps what it needs to resume; SageMaker mirrors it to the CheckpointConfig's S3 URI.
CHECKPOINT_DIR = "/opt/ml/checkpoints"


def script_mode_trainer(
    ctx: StepContext, *, name: str, framework: str, script: str, instance_type, hyperparameters: dict,
    resumable: bool = False, instance_count=1,
) -> ModelTrainer:
    """A script-mode job; with spot training a ``resumable`` one gets a checkpoint location (its script resumes
    from it)."""
    settings, network = ctx.settings, ctx.network
    bundle = ctx.code(script)
    spot = settings.spot_training
    return ModelTrainer(
        sagemaker_session=ctx.session,
        role=settings.role_arn,
        training_image=ctx.image(framework),
        base_job_name=f"{settings.pipeline_name}-{name}",
        compute=Compute(
            instance_type=instance_type, instance_count=instance_count, volume_kms_key_id=settings.kms_key_id or None,
            enable_managed_spot_training=spot or None,
        ),
        checkpoint_config=CheckpointConfig(s3_uri=ctx.output_uri("checkpoints", name), local_path=CHECKPOINT_DIR)
        if spot and resumable else None,
        output_data_config=OutputDataConfig(
            s3_output_path=ctx.output_uri("models", name), kms_key_id=settings.kms_key_id or None
        ),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=MAX_JOB_SECONDS,
                                             max_wait_time_in_seconds=2 * MAX_JOB_SECONDS if spot else None),
        networking=Networking(**network, enable_inter_container_traffic_encryption=True) if network else None,
        hyperparameters={
            "sagemaker_program": script,
            "sagemaker_submit_directory": bundle.sourcedir_uri(settings.bucket, ctx.key_prefix),
            # The training toolkit downloads the submit directory with a client in this region.
            "sagemaker_region": settings.region,
            **hyperparameters,
        },
        tags=[Tag(key=key, value=value) for key, value in settings.tag_map.items()] or None,
    ).with_metric_definitions([VALIDATION_RMSE])


def training_channels(*, train, validation, features, sharded: bool = False) -> list[Channel]:
    """The splits and the feature spec. ``sharded``: each instance of a multi-instance job reads its own parts of
    the splits (ShardedByS3Key; on one instance that is all of them), and the whole spec."""
    splits = "ShardedByS3Key" if sharded else "FullyReplicated"
    return [_channel("train", train, "application/x-parquet", splits),
            _channel("validation", validation, "application/x-parquet", splits),
            _channel("features", features, "application/json", "FullyReplicated")]


# The content type SageMaker's built-in algorithms give a channel holding a model artefact (incremental training).
MODEL_CONTENT_TYPE = "application/x-sagemaker-model"


def model_channel(name: str, model_uri) -> Channel:
    """A model.tar.gz, whole on every instance."""
    return _channel(name, model_uri, MODEL_CONTENT_TYPE, "FullyReplicated")


def _channel(name: str, uri, content_type: str, distribution: str) -> Channel:
    return Channel(channel_name=name, content_type=content_type, input_mode="File", data_source=DataSource(
        s3_data_source=S3DataSource(
            s3_data_type="S3Prefix", s3_uri=uri, s3_data_distribution_type=distribution)))
