"""`plan`: which steps the next execution takes from the step cache, and why the others run.

The prediction itself is `localengine.planning` (the engine's own cache-key function). This module
supplies the earlier runs it compares with: the local engine's step cache, or the deployed
pipeline's executions on SageMaker (each step's job, described as the service recorded it).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from localengine import LocalS3
from localengine.planning import PreviousRun, StepPlan, plan_execution, plan_local_execution

from pipelines.definition import BuiltDefinition
from pipelines.deploy import AwsClients, split_s3_uri

EXECUTIONS_LOOKED_AT = 10
_JOB_DESCRIPTIONS = {  # metadata key of ListPipelineExecutionSteps -> Describe* call and its name field
    "ProcessingJob": ("describe_processing_job", "ProcessingJobName"),
    "TrainingJob": ("describe_training_job", "TrainingJobName"),
    "TuningJob": ("describe_hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
}


def local_plan(built: BuiltDefinition, local_dir: Path, parameters: Mapping[str, str]) -> list[StepPlan]:
    return plan_local_execution(built.document, s3=LocalS3(local_dir / "s3"), work_dir=local_dir / "work",
                                parameters=parameters)


def cloud_plan(built: BuiltDefinition, clients: AwsClients, parameters: Mapping[str, str]) -> list[StepPlan]:
    history = CloudHistory(clients.sagemaker, built.settings.pipeline_name)
    return plan_execution(built.document, history, S3Reader(clients.s3), parameters=parameters)


class CloudHistory:
    """Successful step runs of the newest executions of the deployed pipeline, newest first."""

    def __init__(self, sagemaker, pipeline_name: str):
        self._sagemaker = sagemaker
        self._pipeline_name = pipeline_name
        self._runs: dict[str, list[PreviousRun]] | None = None

    def runs(self, step_name: str) -> list[PreviousRun]:
        if self._runs is None:
            self._runs = self._collect()
        return self._runs.get(step_name, [])

    def _collect(self) -> dict[str, list[PreviousRun]]:
        runs: dict[str, list[PreviousRun]] = {}
        seen_jobs: set[str] = set()
        for execution in self._executions():
            execution_id = execution["PipelineExecutionArn"].rsplit("/", 1)[-1]
            for step in self._steps(execution["PipelineExecutionArn"]):
                if step.get("StepStatus") != "Succeeded":
                    continue
                for metadata_key, (describe, name_field) in _JOB_DESCRIPTIONS.items():
                    job_arn = (step.get("Metadata") or {}).get(metadata_key, {}).get("Arn")
                    if job_arn and job_arn not in seen_jobs:  # a cache hit names the job it reused
                        seen_jobs.add(job_arn)
                        job = getattr(self._sagemaker, describe)(**{name_field: job_arn.rsplit("/", 1)[-1]})
                        runs.setdefault(step["StepName"], []).append(_previous_run(job, execution_id))
        for step_runs in runs.values():
            step_runs.sort(key=lambda run: run.created, reverse=True)
        return runs

    def _executions(self) -> list[dict]:
        response = self._sagemaker.list_pipeline_executions(
            PipelineName=self._pipeline_name, SortBy="CreationTime", SortOrder="Descending",
            MaxResults=EXECUTIONS_LOOKED_AT)
        return response["PipelineExecutionSummaries"]

    def _steps(self, execution_arn: str) -> list[dict]:
        paginator = self._sagemaker.get_paginator("list_pipeline_execution_steps")
        return [step for page in paginator.paginate(PipelineExecutionArn=execution_arn)
                for step in page["PipelineExecutionSteps"]]


def _previous_run(job: dict, execution_id: str) -> PreviousRun:
    job = {key: value for key, value in job.items() if key != "ResponseMetadata"}
    if "BestTrainingJob" in job:  # what TrainingJobSummaries[0] resolves to: the best trial
        job["TrainingJobSummaries"] = [job["BestTrainingJob"]]
    created = job.get("CreationTime") or datetime.now(timezone.utc)
    return PreviousRun(arguments=job, properties=job, created=created, execution=execution_id,
                       echoes_service_defaults=True)


class S3Reader:
    """Reads the property files of reused steps (a champion lookup's answer) from S3."""

    def __init__(self, s3):
        self._s3 = s3

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
