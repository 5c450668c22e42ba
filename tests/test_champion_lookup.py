"""Finding the champion: find_champion.py against moto (the cloud's API shape) and against the local
engine's registry API (the same script, unchanged, as a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localengine import LocalModelRegistry
from localengine.registry_api import RegistryApi

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPTS_DIR))

import find_champion  # noqa: E402

GROUP = "HousePriceModels"
MARKER = "s3://bucket/HousePricePipeline/champion/none"


def package_request(model_data_url: str, status: str) -> dict:
    return {"ModelPackageGroupName": GROUP, "ModelApprovalStatus": status,
            "InferenceSpecification": {"Containers": [{"Image": "xgboost:3.2-0", "ModelDataUrl": model_data_url}],
                                       "SupportedContentTypes": ["text/csv"],
                                       "SupportedResponseMIMETypes": ["application/json"]}}


def test_champion_is_the_newest_approved_version_in_sagemakers_api_shape():
    with mock_aws():
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        assert find_champion.champion_record(find_champion.newest_approved(sagemaker, GROUP), MARKER) == {
            "found": "no", "name": "none", "arn": "", "model_data_url": MARKER}
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        for version, status in enumerate(["Approved", "Approved", "PendingManualApproval", "Rejected"], start=1):
            sagemaker.create_model_package(**package_request(f"s3://bucket/m{version}/model.tar.gz", status))
            time.sleep(0.01)  # distinct creation times
        record = find_champion.champion_record(find_champion.newest_approved(sagemaker, GROUP), MARKER)
    assert record["found"] == "yes" and record["name"] == "v2"
    assert record["model_data_url"] == "s3://bucket/m2/model.tar.gz"
    assert record["arn"].endswith("/2")


@pytest.fixture
def registry(tmp_path) -> LocalModelRegistry:
    registry = LocalModelRegistry(tmp_path / "registry")
    for version, status in enumerate(["Approved", "Approved", "PendingManualApproval"], start=1):
        registry.register(package_request(f"s3://bucket/m{version}/model.tar.gz", status))
    return registry


def test_the_local_registry_api_answers_boto3_as_sagemaker_does(registry):
    with RegistryApi(registry) as api:
        sagemaker = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=api.endpoint_url,
                                 aws_access_key_id="local", aws_secret_access_key="local")
        listed = sagemaker.list_model_packages(ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved",
                                               SortBy="CreationTime", SortOrder="Descending")
        assert [p["ModelPackageVersion"] for p in listed["ModelPackageSummaryList"]] == [2, 1]
        assert listed["ModelPackageSummaryList"][0]["CreationTime"].year >= 2026  # parsed as a timestamp
        described = sagemaker.describe_model_package(ModelPackageName=listed["ModelPackageSummaryList"][0]["ModelPackageArn"])
        assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://bucket/m2/model.tar.gz"
        assert sagemaker.list_model_packages(ModelPackageGroupName="Nobody")["ModelPackageSummaryList"] == []
        with pytest.raises(ClientError, match="does not exist"):
            sagemaker.describe_model_package(ModelPackageName=f"{GROUP}/9")
        with pytest.raises(ClientError, match="not served by the local registry API"):
            sagemaker.delete_model_package(ModelPackageName=f"{GROUP}/1")


def test_find_champion_runs_unchanged_against_the_local_registry_without_the_callers_credentials(registry, tmp_path):
    registry.update_approval(f"{GROUP}/3", "Approved")
    caller = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIAREALCALLERKEY", "AWS_SECRET_ACCESS_KEY": "secret",
              "AWS_SESSION_TOKEN": "token", "AWS_PROFILE": "production"}
    with RegistryApi(registry) as api:
        environment = api.job_environment(caller)
        assert "AWS_SESSION_TOKEN" not in environment and "AWS_PROFILE" not in environment
        assert environment["AWS_ACCESS_KEY_ID"] == "local"
        completed = subprocess.run(
            [sys.executable, str(SCRIPTS_DIR / "find_champion.py"), "--model-package-group", GROUP,
             "--marker-uri", MARKER, "--output-dir", str(tmp_path / "champion"), "--marker-dir", str(tmp_path / "marker")],
            env={**environment, "SM_OPT_ML": str(tmp_path / "opt_ml")}, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    record = json.loads((tmp_path / "champion" / "champion.json").read_text())
    assert (record["found"], record["name"], record["model_data_url"]) == ("yes", "v3", "s3://bucket/m3/model.tar.gz")
    assert (tmp_path / "marker" / "no-champion.txt").is_file()
