"""Least-privilege IAM policies for the pipeline, scoped by the settings.

Principals: the execution role the pipeline and its jobs run as (and the models it serves); the
deployer (CI on the main branch) that uploads code, upserts the pipeline and starts executions; the
planner (CI on pull requests) that only reads what `diff` and `plan` need; the model deployer (a
reviewer or release job) that approves versions, deploys the endpoint and runs Batch Transform. CI reaches AWS through GitHub's OIDC
provider: `github_trust_policy` lets one repository's main branch (or its pull requests) assume a
role, with no stored keys. Resources are narrowed to this
pipeline's bucket prefix, model package group, log groups and container repositories; `*` stays
only where the service accepts nothing narrower (ECR's token, CloudWatch metrics, VPC network
interfaces, a KMS key named by its alias — then narrowed by a condition).
"""

from __future__ import annotations

from pipelines.settings import Settings
from steps.context import image_repositories

SAGEMAKER_JOB_ACTIONS = [
    "sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob",
    "sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob",
    "sagemaker:CreateHyperParameterTuningJob", "sagemaker:DescribeHyperParameterTuningJob",
    "sagemaker:StopHyperParameterTuningJob", "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    "sagemaker:AddTags",
]
VPC_ACTIONS = [
    "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
]


def _account(settings: Settings) -> str:
    return settings.role_arn.split(":")[4]


def _sagemaker_arn(settings: Settings, resource: str) -> str:
    return f"arn:aws:sagemaker:{settings.region}:{_account(settings)}:{resource}"


def _statement(sid: str, actions: list[str], resources: list[str], **extra) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def trust_policy() -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole",
    }]}


def execution_role_policy(settings: Settings) -> dict:
    bucket, prefix, group = settings.bucket, settings.pipeline_name, settings.model_package_group
    account, region = _account(settings), settings.region
    statements = [
        _statement("RunPipelineJobs", SAGEMAKER_JOB_ACTIONS, [
            _sagemaker_arn(settings, kind) for kind in
            ("processing-job/*", "training-job/*", "hyper-parameter-tuning-job/*")
        ]),
        _statement("RegisterModels", [
            "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage",
            "sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup", "sagemaker:AddTags",
        ], [*_named_arns(settings, "model-package-group", group), *_named_arns(settings, "model-package", f"{group}/*")]),
        _statement("ReadInputsAndCode", ["s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"]),
        _statement("WriteJobOutputs", ["s3:PutObject", "s3:AbortMultipartUpload"],
                   [f"arn:aws:s3:::{bucket}/{prefix}/*"]),
        _statement("ListPipelineBucket", ["s3:ListBucket", "s3:GetBucketLocation"], [f"arn:aws:s3:::{bucket}"]),
        _statement("PullFrameworkImages",
                   ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                   image_repositories(settings.region)),
        # FindChampion lists the group's approved versions; ListModelPackages takes no resource ARN.
        _statement("ListModelVersions", ["sagemaker:ListModelPackages"], ["*"]),
        _statement("EcrToken", ["ecr:GetAuthorizationToken"], ["*"]),
        _statement("JobLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                               "logs:DescribeLogStreams"],
                   [f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/*"]),
        _statement("JobMetrics", ["cloudwatch:PutMetricData"], ["*"],
                   Condition={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}),
        _statement("PassOwnRoleToJobs", ["iam:PassRole"], [settings.role_arn],
                   Condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
    ]
    if settings.kms_key_id:
        statements.append(_key_statement(settings, "UseEncryptionKey", [
            "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant",
        ]))
    if settings.subnets:
        statements.append(_statement("RunJobsInVpc", VPC_ACTIONS, ["*"]))
    return {"Version": "2012-10-17", "Statement": statements}


def _pipeline_arns(settings: Settings) -> list[str]:
    # SageMaker writes pipeline names in lower case in ARNs; both spellings keep the policy exact.
    return sorted({_sagemaker_arn(settings, f"pipeline/{name}")
                   for name in (settings.pipeline_name, settings.pipeline_name.lower())})


def planner_policy(settings: Settings) -> dict:
    """Read-only: what `validate`, `diff` and `plan` ask of AWS on a pull request."""
    pipelines = _pipeline_arns(settings)
    return {"Version": "2012-10-17", "Statement": [
        _statement("ReadPipelineAndExecutions", [
            "sagemaker:DescribePipeline", "sagemaker:ListPipelineExecutions",
            "sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutionSteps",
        ], [*pipelines, *(f"{arn}/execution/*" for arn in pipelines)]),
        _statement("DescribeStepJobs", [
            "sagemaker:DescribeProcessingJob", "sagemaker:DescribeTrainingJob",
            "sagemaker:DescribeHyperParameterTuningJob",
        ], [_sagemaker_arn(settings, kind) for kind in
            ("processing-job/*", "training-job/*", "hyper-parameter-tuning-job/*")]),
        # plan reads what reused steps wrote (a champion lookup's answer) under the pipeline's prefix.
        _statement("ReadStepOutputs", ["s3:GetObject"], [f"arn:aws:s3:::{settings.bucket}/{settings.pipeline_name}/*"]),
    ]}


GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


def github_trust_policy(settings: Settings, repository: str, *, branch: str | None = "main") -> dict:
    """Trust for GitHub Actions of one repository: its `branch` (deploy), or its pull requests (branch None)."""
    subject = f"repo:{repository}:ref:refs/heads/{branch}" if branch else f"repo:{repository}:pull_request"
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{_account(settings)}:oidc-provider/{GITHUB_OIDC_HOST}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                                       f"{GITHUB_OIDC_HOST}:sub": subject}},
    }]}


def deployer_policy(settings: Settings) -> dict:
    pipelines = _pipeline_arns(settings)
    statements = [
        _statement("UpsertAndStartPipeline", [
            "sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:DescribePipeline",
            "sagemaker:StartPipelineExecution", "sagemaker:DescribePipelineExecution",
            "sagemaker:ListPipelineExecutions", "sagemaker:ListPipelineExecutionSteps",
            "sagemaker:ListPipelineParametersForExecution", "sagemaker:AddTags", "sagemaker:ListTags",
            "sagemaker:DeleteTags",
        ], [*pipelines, *(f"{arn}/execution/*" for arn in pipelines)]),
        _statement("UploadCodeBundles", ["s3:PutObject", "s3:GetObject"],
                   [f"arn:aws:s3:::{settings.bucket}/{settings.pipeline_name}/code/*"]),
        _statement("PassExecutionRole", ["iam:PassRole"], [settings.role_arn],
                   Condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
    ]
    if settings.kms_key_id:
        statements.append(_key_statement(settings, "EncryptCodeBundles", ["kms:Encrypt", "kms:GenerateDataKey"]))
    return {"Version": "2012-10-17", "Statement": statements}


def _named_arns(settings: Settings, kind: str, name: str) -> list[str]:
    # SageMaker writes model, endpoint and job names in lower case in ARNs; both spellings keep it exact.
    return sorted({_sagemaker_arn(settings, f"{kind}/{spelling}") for spelling in (name, name.lower())})


def model_deployer_policy(settings: Settings) -> dict:
    """What a reviewer or release job needs for `approve/reject --cloud`, `deploy`, `transform` and
    `serve --model-package`: this group's versions, this endpoint, its models, configs and transform jobs."""
    group, endpoint = settings.model_package_group, settings.endpoint_name
    statements = [
        _statement("ReviewVersions", ["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"],
                   _named_arns(settings, "model-package", f"{group}/*")),
        # ListModelPackages (the newest approved version) takes no resource ARN.
        _statement("ListVersions", ["sagemaker:ListModelPackages"], ["*"]),
        _statement("CreateModelsAndConfigs", [
            "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:CreateEndpointConfig",
            "sagemaker:DescribeEndpointConfig", "sagemaker:AddTags",
        ], [*_named_arns(settings, "model", f"{group[:50]}-v*"),
            *_named_arns(settings, "endpoint-config", f"{endpoint[:52]}-*")]),
        _statement("CreateAndUpdateEndpoint", [
            "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:AddTags",
        ], _named_arns(settings, "endpoint", endpoint)),
        _statement("RunBatchTransform", ["sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob",
                                         "sagemaker:AddTags"],
                   _named_arns(settings, "transform-job", f"{group[:40]}-v*")),
        # serve --model-package reads the version's model data and serving code from the pipeline's prefix.
        _statement("ReadModelFiles", ["s3:GetObject"],
                   [f"arn:aws:s3:::{settings.bucket}/{settings.pipeline_name}/*"]),
        _statement("PassExecutionRole", ["iam:PassRole"], [settings.role_arn],
                   Condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
    ]
    if settings.kms_key_id:
        statements.append(_key_statement(settings, "EncryptEndpointsAndOutputs",
                                         ["kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt"]))
    return {"Version": "2012-10-17", "Statement": statements}


def _key_statement(settings: Settings, sid: str, actions: list[str]) -> dict:
    """KMS authorises against the key itself, so an alias becomes a condition on the key's aliases."""
    key = settings.kms_key_id
    if key.startswith("alias/"):
        return _statement(sid, actions, ["*"], Condition={"ForAnyValue:StringEquals": {"kms:ResourceAliases": key}})
    arn = key if key.startswith("arn:") else f"arn:aws:kms:{settings.region}:{_account(settings)}:key/{key}"
    return _statement(sid, actions, [arn])
