"""`plan` against the deployed pipeline: earlier runs come from SageMaker's executions and the jobs they
ran (ListPipelineExecutions, ListPipelineExecutionSteps, Describe*Job), stubbed with botocore's
Stubber in the service's own shapes (moto has no ListPipelineExecutionSteps)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import Stubber

from localengine.planning import plan_execution
from pipelines.plan import CloudHistory
from test_engine_support import BUCKET, definition, get, parameter, processing_step

PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/prices"
JOB_ARN = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/pipelines-abc123-prepare-x1"
DECLARED = [parameter("Rows", "Integer", 10), parameter("Size", "String", "ml.m5.large")]


def prepare_step() -> dict:
    step = processing_step("Prepare", f"{BUCKET}/code/prepare.py", outputs={"data": f"{BUCKET}/prepared"},
                           arguments=["--rows", get("Parameters.Rows")],
                           CacheConfig={"Enabled": True, "ExpireAfter": "30d"})
    step["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] = get("Parameters.Size")
    return step


def described_job(rows: str, created: datetime) -> dict:
    """DescribeProcessingJob as the service answers it: the request as resolved, plus the defaults it
    filled in and the job's own fields."""
    request = copy.deepcopy(prepare_step()["Arguments"])
    request["AppSpecification"]["ContainerArguments"] = ["--rows", rows]
    request["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.m5.large"
    for processing_input in request["ProcessingInputs"]:
        processing_input["AppManaged"] = False  # a default the definition never sets
    return {**request, "ProcessingJobName": JOB_ARN.rsplit("/", 1)[1], "ProcessingJobArn": JOB_ARN,
            "ProcessingJobStatus": "Completed", "CreationTime": created,
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400}}


@pytest.fixture
def sagemaker():
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber


def expect_history(stubber, created: datetime) -> None:
    execution = f"{PIPELINE_ARN}/execution/abc123"
    stubber.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [
        {"PipelineExecutionArn": execution, "StartTime": created, "PipelineExecutionStatus": "Succeeded"}]},
        {"PipelineName": "prices", "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 10})
    stubber.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        {"StepName": "Prepare", "StepStatus": "Succeeded", "StartTime": created,
         "Metadata": {"ProcessingJob": {"Arn": JOB_ARN}}}]}, {"PipelineExecutionArn": execution})
    stubber.add_response("describe_processing_job", described_job("10", created),
                         {"ProcessingJobName": JOB_ARN.rsplit("/", 1)[1]})


class NoFiles:
    def read_bytes(self, uri):
        raise AssertionError(f"no property file is read in this plan: {uri}")


@pytest.mark.parametrize("parameters, verdict, reasons", [
    ({}, "cached", ["same cache key attributes as in execution abc123"]),
    ({"Size": "ml.m5.4xlarge"}, "cached", ["same cache key attributes as in execution abc123"]),
    ({"Rows": "20"}, "runs", ["argument changed: AppSpecification.ContainerArguments[1]: 10 -> 20"]),
])
def test_the_deployed_pipelines_last_run_decides_the_prediction(sagemaker, parameters, verdict, reasons):
    client, stubber = sagemaker
    expect_history(stubber, datetime.now(timezone.utc) - timedelta(days=1))
    (plan,) = plan_execution(definition([prepare_step()], DECLARED), CloudHistory(client, "prices"), NoFiles(),
                             parameters=parameters)
    assert (plan.verdict, plan.reasons) == (verdict, reasons)
    stubber.assert_no_pending_responses()


def test_a_run_older_than_expire_after_is_not_reused(sagemaker):
    client, stubber = sagemaker
    expect_history(stubber, datetime.now(timezone.utc) - timedelta(days=31))
    (plan,) = plan_execution(definition([prepare_step()], DECLARED), CloudHistory(client, "prices"), NoFiles())
    assert plan.verdict == "runs"
    assert plan.reasons == ["its newest earlier run (execution abc123) is older than ExpireAfter"]
