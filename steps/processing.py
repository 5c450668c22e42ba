"""A processing job that runs one container script from its content-addressed code bundle."""

from __future__ import annotations

from sagemaker.core.network import NetworkConfig
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.context import MAX_JOB_SECONDS, StepContext

CODE_DIR = "/opt/ml/processing/input/code"


def processing_input(name: str, s3_uri, local_path: str, *, sharded: bool = False) -> ProcessingInput:
    """sharded: with several instances, each gets its share of the objects (on one instance, all of them)."""
    return ProcessingInput(
        input_name=name,
        s3_input=ProcessingS3Input(
            s3_uri=s3_uri, local_path=local_path, s3_data_type="S3Prefix", s3_input_mode="File",
            s3_data_distribution_type="ShardedByS3Key" if sharded else "FullyReplicated",
        ),
    )


def processing_output(name: str, s3_uri, local_path: str) -> ProcessingOutput:
    return ProcessingOutput(
        output_name=name,
        s3_output=ProcessingS3Output(s3_uri=s3_uri, local_path=local_path, s3_upload_mode="EndOfJob"),
    )


def script_processing_step(
    ctx: StepContext,
    name: str,
    *,
    framework: str,
    script: str,
    instance_type,
    instance_count=1,
    inputs: list[ProcessingInput],
    outputs: list[ProcessingOutput],
    arguments: list,
    description: str,
    property_files: list | None = None,
    reads_live_state: bool = False,
) -> ProcessingStep:
    """reads_live_state: the job asks an AWS API about the present (e.g. the model registry), so its
    answer can change while its arguments do not: it is never cached and keeps network access
    (VPC settings still apply) even when jobs are network-isolated."""
    settings, network = ctx.settings, ctx.network
    if reads_live_state and network:
        network = {**network, "enable_network_isolation": False}
    bundle = ctx.code(script)
    processor = Processor(
        role=settings.role_arn,
        image_uri=ctx.image(framework),
        instance_count=instance_count,
        instance_type=instance_type,
        entrypoint=["python3", f"{CODE_DIR}/{script}"],
        volume_kms_key=settings.kms_key_id or None,
        output_kms_key=settings.kms_key_id or None,
        max_runtime_in_seconds=MAX_JOB_SECONDS,
        base_job_name=f"{settings.pipeline_name}-{name}",
        sagemaker_session=ctx.session,
        tags=settings.tag_map or None,
        network_config=NetworkConfig(**network, encrypt_inter_container_traffic=True) if network else None,
    )
    code_input = processing_input("code", bundle.files_uri(settings.bucket, ctx.key_prefix), CODE_DIR)
    # An empty argument list is an invalid request (ContainerArguments has a minimum length of 1).
    step_args = processor.run(inputs=[code_input, *inputs], outputs=outputs, arguments=arguments or None)
    return ProcessingStep(
        name=name,
        step_args=step_args,
        description=description,
        property_files=property_files,
        cache_config=None if reads_live_state else ctx.cache_config,
        retry_policies=ctx.job_retry_policies,
    )
