"""Deployment settings: where the pipeline lives and how its jobs run.

Each setting comes from a CLI flag, else an environment variable, else a default that is safe for
building and validating a definition offline. Nothing here is a secret; credentials come from the
usual AWS credential chain at upsert/start time and never from these settings.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Mapping

# Shown in offline builds only; `upsert` and `start` refuse to send it to AWS.
PLACEHOLDER_ROLE_ARN = "arn:aws:iam::000000000000:role/set-PIPELINE_ROLE_ARN"

_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_PIPELINE_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class SettingsError(ValueError):
    """A setting has a value AWS would reject; the message names the flag and variable."""


def _setting(env: str, default, help: str, also_env: tuple[str, ...] = ()):
    return field(default=default, metadata={"env": env, "also_env": also_env, "help": help})


@dataclass(frozen=True)
class Settings:
    region: str = _setting(
        "AWS_REGION", "us-east-1", "AWS region of the pipeline and its jobs (also read from AWS_DEFAULT_REGION)",
        also_env=("AWS_DEFAULT_REGION",),
    )
    bucket: str = _setting(
        "PIPELINE_BUCKET", "house-price-pipeline-artifacts",
        "S3 bucket for code bundles, job outputs and the default input data",
    )
    role_arn: str = _setting(
        "PIPELINE_ROLE_ARN", PLACEHOLDER_ROLE_ARN,
        "IAM role the pipeline and its jobs run as (required for upsert/start)",
    )
    pipeline_name: str = _setting("PIPELINE_NAME", "HousePricePipeline", "name of the SageMaker pipeline")
    model_package_group: str = _setting(
        "MODEL_PACKAGE_GROUP", "HousePriceModels", "Model Registry group that approved candidates join"
    )
    tags: str = _setting(
        "PIPELINE_TAGS", "", "comma-separated Key=Value tags for the pipeline and its jobs"
    )
    cache_expire_after: str = _setting(
        "PIPELINE_CACHE_EXPIRE_AFTER", "P30D", "ISO-8601 duration a cached step result stays reusable"
    )
    tuning_max_jobs: int = _setting(
        "PIPELINE_TUNING_MAX_JOBS", 12, "XGBoost tuning trials (a build-time setting: SageMaker takes no parameter here)"
    )
    tuning_max_parallel_jobs: int = _setting(
        "PIPELINE_TUNING_MAX_PARALLEL_JOBS", 3, "tuning trials that run at the same time (at most tuning_max_jobs)"
    )
    kms_key_id: str = _setting(
        "PIPELINE_KMS_KEY_ID", "", "KMS key for job volumes and outputs (empty: S3/EBS default encryption)"
    )
    network_isolation: bool = _setting(
        "PIPELINE_NETWORK_ISOLATION", False, "run every job without network access"
    )
    spot_training: bool = _setting(
        "PIPELINE_SPOT_TRAINING", False,
        "managed spot training for the training and tuning jobs (they may wait up to twice their runtime limit "
        "for capacity; the XGBoost trials checkpoint and resume after an interruption)",
    )
    warm_pool_seconds: int = _setting(
        "PIPELINE_WARM_POOL_SECONDS", 0,
        "KeepAlivePeriodInSeconds of the tuning trials' instances, so the next trial starts on a warm one "
        "(0 to 3600; 0: none; not with spot training)",
    )
    subnets: str = _setting("PIPELINE_SUBNETS", "", "comma-separated VPC subnet ids for every job")
    security_group_ids: str = _setting(
        "PIPELINE_SECURITY_GROUP_IDS", "", "comma-separated security group ids for every job"
    )
    # SageMaker Projects sets these in its CodeBuild environment and in Studio; the tags they become
    # are how Studio lists the pipeline, its jobs and its model versions under the project.
    project_name: str = _setting(
        "SAGEMAKER_PROJECT_NAME", "", "SageMaker project the pipeline belongs to (tag sagemaker:project-name)"
    )
    project_id: str = _setting(
        "SAGEMAKER_PROJECT_ID", "", "id of that SageMaker project (tag sagemaker:project-id)"
    )

    required_tags: str = _setting(
        "PIPELINE_REQUIRED_TAGS", "", "comma-separated tag keys every job must carry (`validate --policy`, upsert)",
    )
    allowed_instance_types: str = _setting(
        "PIPELINE_ALLOWED_INSTANCE_TYPES", "",
        "comma-separated instance types jobs and the endpoint may use (`validate --policy`); empty: any",
    )
    local_retention_days: int = _setting(
        "PIPELINE_LOCAL_RETENTION_DAYS", 14,
        "days a local run's logs and failed jobs' sandboxes are kept (`run` removes older ones; `clean`)",
    )
    endpoint_name: str = _setting(
        "ENDPOINT_NAME", "house-price-endpoint",
        "SageMaker endpoint that `deploy` creates or updates (and the name `serve` answers to)",
    )
    endpoint_instance_type: str = _setting(
        "ENDPOINT_INSTANCE_TYPE", "", "instance type of the endpoint; empty: serverless (pay per request)",
    )
    endpoint_instance_count: int = _setting(
        "ENDPOINT_INSTANCE_COUNT", 1, "instances behind an instance-backed endpoint",
    )
    serverless_memory_mb: int = _setting(
        "SERVERLESS_MEMORY_MB", 2048, "memory of a serverless endpoint: 1024 to 6144 MB in steps of 1024",
    )
    serverless_max_concurrency: int = _setting(
        "SERVERLESS_MAX_CONCURRENCY", 5, "concurrent invocations a serverless endpoint serves (1 to 200)",
    )

    def __post_init__(self):
        self._check(_BUCKET.match(self.bucket), "bucket", "must be a valid S3 bucket name")
        self._check(_PIPELINE_NAME.match(self.pipeline_name), "pipeline_name", "must be letters, digits and hyphens")
        self._check(_PIPELINE_NAME.match(self.model_package_group), "model_package_group", "must be letters, digits and hyphens")
        self._check(_ROLE_ARN.match(self.role_arn), "role_arn", "must look like arn:aws:iam::<account>:role/<name>")
        self._check(bool(self.subnets) == bool(self.security_group_ids), "subnets",
                    "and security group ids must be given together")
        self._check(isinstance(self.tuning_max_jobs, int) and 1 <= self.tuning_max_jobs <= 500,
                    "tuning_max_jobs", "must be a whole number from 1 to 500")
        self._check(isinstance(self.tuning_max_parallel_jobs, int) and 1 <= self.tuning_max_parallel_jobs <= 100,
                    "tuning_max_parallel_jobs", "must be a whole number from 1 to 100")
        self._check(all(key for key, _ in self._tag_pairs()), "tags", "must be comma-separated Key=Value pairs")
        self._check(isinstance(self.warm_pool_seconds, int) and 0 <= self.warm_pool_seconds <= 3600,
                    "warm_pool_seconds", "must be a whole number of seconds from 0 to 3600 (the service's limit)")
        self._check(not (self.spot_training and self.warm_pool_seconds), "warm_pool_seconds",
                    "must be 0 with spot training: SageMaker keeps no spot instances warm")
        self._check(isinstance(self.local_retention_days, int) and self.local_retention_days >= 0,
                    "local_retention_days", "must be a whole number of days, 0 or more")
        self._check(_ENDPOINT_NAME.match(self.endpoint_name), "endpoint_name",
                    "must be letters, digits and hyphens, at most 63")
        self._check(isinstance(self.endpoint_instance_count, int) and 1 <= self.endpoint_instance_count <= 100,
                    "endpoint_instance_count", "must be a whole number from 1 to 100")
        self._check(self.serverless_memory_mb in range(1024, 6145, 1024), "serverless_memory_mb",
                    "must be 1024, 2048, 3072, 4096, 5120 or 6144")
        self._check(isinstance(self.serverless_max_concurrency, int) and 1 <= self.serverless_max_concurrency <= 200,
                    "serverless_max_concurrency", "must be a whole number from 1 to 200")
        self._check(bool(self.project_name) == bool(self.project_id), "project_name",
                    "and the project id must be given together (SageMaker Projects sets both)")

    def _check(self, ok, name: str, problem: str) -> None:
        if not ok:
            meta = {f.name: f.metadata for f in fields(self)}[name]
            raise SettingsError(
                f"setting {name}={getattr(self, name)!r} {problem} "
                f"(flag --{name.replace('_', '-')}, environment variable {meta['env']})"
            )

    @property
    def tag_map(self) -> dict[str, str]:
        project = {"sagemaker:project-name": self.project_name,
                   "sagemaker:project-id": self.project_id} if self.project_name else {}
        return {**dict(self._tag_pairs()), **project}

    def _tag_pairs(self) -> list[tuple[str, str]]:
        """(key, value) per tag; a pair without `=` or with an empty key yields an empty key."""
        pairs = [item.strip().partition("=") for item in self.tags.split(",") if item.strip()]
        return [(key.strip() if separator else "", value.strip()) for key, separator, value in pairs]

    @property
    def required_tag_keys(self) -> list[str]:
        return _split(self.required_tags)

    @property
    def allowed_instance_type_list(self) -> list[str]:
        return _split(self.allowed_instance_types)

    @property
    def vpc_config(self) -> dict[str, list[str]] | None:
        if not self.subnets:
            return None
        return {
            "Subnets": _split(self.subnets),
            "SecurityGroupIds": _split(self.security_group_ids),
        }

    @property
    def has_real_role(self) -> bool:
        return self.role_arn != PLACEHOLDER_ROLE_ARN

    @classmethod
    def resolve(cls, flags: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Flag value if given, else the environment variable, else the default."""
        flags = flags or {}
        environ = os.environ if environ is None else environ
        values = {}
        for spec in fields(cls):
            from_env = [environ[name] for name in (spec.metadata["env"], *spec.metadata["also_env"]) if name in environ]
            if flags.get(spec.name) is not None:
                values[spec.name] = _typed(flags[spec.name], spec.default)
            elif from_env:
                values[spec.name] = _typed(from_env[0], spec.default)
        return cls(**values)

    @classmethod
    def documented(cls) -> list[tuple[str, str, object, str]]:
        """(flag, environment variable, default, help) for each setting, for --help and the README."""
        return [
            (f"--{spec.name.replace('_', '-')}", spec.metadata["env"], spec.default, spec.metadata["help"])
            for spec in fields(cls)
        ]


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _typed(raw, default):
    """A flag or environment value as the type of the setting's default; a bad number is kept to be reported."""
    if not isinstance(raw, str) or isinstance(default, str):
        return raw
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    try:
        return int(raw)
    except ValueError:
        return raw
