"""The Studio notebook runs top to bottom against AWS as moto serves it, and its pipeline carries the
SageMaker project's tags."""

from __future__ import annotations

from pathlib import Path

import boto3
import nbformat
import pytest
from moto.server import ThreadedMotoServer
from nbclient import NotebookClient

PROJECT = Path(__file__).resolve().parent.parent
BUCKET = "studio-notebook-bucket"
ROLE = "arn:aws:iam::123456789012:role/HousePricePipeline"


@pytest.fixture
def moto_endpoint(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    environment = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "PIPELINE_BUCKET": BUCKET,
                   "PIPELINE_ROLE_ARN": ROLE, "SAGEMAKER_PROJECT_NAME": "house-prices",
                   "SAGEMAKER_PROJECT_ID": "p-abc123def456", "PIPELINE_TUNING_MAX_JOBS": "3"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def test_the_studio_notebook_runs_and_tags_the_pipeline_with_its_project(moto_endpoint):
    notebook = nbformat.read(PROJECT / "notebooks" / "studio.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(PROJECT / "notebooks")}}).execute()
    outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells
               if cell.cell_type == "code"]
    assert "tags {'sagemaker:project-name': 'house-prices', 'sagemaker:project-id': 'p-abc123def456'}" in outputs[0]
    assert "0 job step(s) from the cache" in outputs[3]
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_endpoint)
    pipeline = sagemaker.describe_pipeline(PipelineName="HousePricePipeline")
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=pipeline["PipelineArn"])["Tags"]}
    assert tags == {"sagemaker:project-name": "house-prices", "sagemaker:project-id": "p-abc123def456"}
    assert pipeline["PipelineDisplayName"] == "HousePricePipeline"
    assert pipeline["PipelineDescription"].startswith("Tabular regression: a CSV in S3")
    (execution,) = sagemaker.list_pipeline_executions(PipelineName="HousePricePipeline")["PipelineExecutionSummaries"]
    assert execution["PipelineExecutionArn"] in outputs[4]
    assert execution["PipelineExecutionArn"].rsplit("/", 1)[-1] in outputs[5]
