"""What every step factory shares: settings, the offline pipeline session, images, cache, retries."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

import boto3
from sagemaker.core import image_uris
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.mlops.workflow.retry import (
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)
from sagemaker.mlops.workflow.steps import CacheConfig

from steps.code_bundle import SCRIPTS_DIR, CodeBundle

# The framework containers the scripts target; local pins in setup.cfg match them.
FRAMEWORK_VERSIONS = {"sklearn": "1.9-0", "xgboost": "3.2-0"}
# Every job's runtime limit: the sample takes minutes; a runaway job should not bill for a day.
MAX_JOB_SECONDS = 3600


@lru_cache(maxsize=None)  # every step asks; each lookup reloads botocore's endpoint data (about 0.1 s)
def framework_image(framework: str, region: str) -> str:
    return image_uris.retrieve(
        framework=framework, region=region, version=FRAMEWORK_VERSIONS[framework], instance_type="ml.m5.xlarge"
    )


class StepSettings(Protocol):
    """What the step factories read of the deployment settings (`pipelines.settings.Settings` has it);
    steps import nothing from `pipelines`, which builds on them."""

    region: str
    bucket: str
    role_arn: str
    pipeline_name: str
    model_package_group: str
    cache_expire_after: str
    kms_key_id: str
    network_isolation: bool
    subnets: str
    spot_training: bool
    warm_pool_seconds: int

    @property
    def tag_map(self) -> dict[str, str]: ...

    @property
    def vpc_config(self) -> dict[str, list[str]] | None: ...


def image_repositories(region: str) -> list[str]:
    """ECR repository ARNs of the framework images the jobs pull."""
    arns = []
    for framework in FRAMEWORK_VERSIONS:
        registry, _, repository = framework_image(framework, region).partition("/")
        account, region = registry.split(".")[0], registry.split(".")[3]
        arns.append(f"arn:aws:ecr:{region}:{account}:repository/{repository.split(':')[0]}")
    return arns


@dataclass(frozen=True)
class StepContext:
    settings: StepSettings
    scripts_dir: Path = SCRIPTS_DIR
    bundles: dict[str, CodeBundle] = field(default_factory=dict)  # every bundle the steps reference

    @cached_property
    def session(self) -> PipelineSession:
        # An explicit bucket keeps the SDK from calling ListBuckets/CreateBucket at build time.
        boto_session = boto3.Session(region_name=self.settings.region)
        session = PipelineSession(boto_session=boto_session, default_bucket=self.settings.bucket)
        # default_bucket() would still check the bucket through S3 (ModelBuilder.register calls it
        # even with no code to upload); the bucket is a setting, so mark it as resolved.
        session._default_bucket = self.settings.bucket
        return session

    @property
    def key_prefix(self) -> str:
        return self.settings.pipeline_name

    def output_uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.settings.bucket}", self.key_prefix, *parts])

    def image(self, framework: str) -> str:
        return framework_image(framework, self.settings.region)

    def code(self, entry_point: str) -> CodeBundle:
        if entry_point not in self.bundles:
            self.bundles[entry_point] = CodeBundle.for_script(entry_point, self.scripts_dir)
        return self.bundles[entry_point]

    @property
    def network(self) -> dict | None:
        """Isolation and VPC arguments shared by every job, or None for SageMaker's default networking."""
        settings = self.settings
        if not (settings.network_isolation or settings.subnets):
            return None
        vpc = settings.vpc_config or {}
        return {
            "enable_network_isolation": settings.network_isolation,
            "subnets": vpc.get("Subnets"),
            "security_group_ids": vpc.get("SecurityGroupIds"),
        }

    @property
    def cache_config(self) -> CacheConfig:
        return CacheConfig(enable_caching=True, expire_after=self.settings.cache_expire_after)

    @property
    def job_retry_policies(self) -> list:
        """Retry what is transient (throttling, capacity, service faults); never a script's own failure."""
        return [
            StepRetryPolicy(
                exception_types=[StepExceptionTypeEnum.THROTTLING, StepExceptionTypeEnum.SERVICE_FAULT],
                interval_seconds=10, backoff_rate=2.0, max_attempts=5,
            ),
            SageMakerJobStepRetryPolicy(
                exception_types=[
                    SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                    SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
                    SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                ],
                interval_seconds=60, backoff_rate=2.0, max_attempts=3,
            ),
        ]
