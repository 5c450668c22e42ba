"""The last mile on this machine: `serve` (SageMaker's serving contract and the Runtime API's route) and
`predict` (the local twin of Batch Transform), both on a version a real local run registered."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from localengine import LocalS3
from pipeline import main
from pipelines.definition import build_definition
from pipelines.local import local_registry, run_locally
from pipelines.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SMALL_BUDGET = Settings(tuning_max_jobs=2, tuning_max_parallel_jobs=2)
ENDPOINT = Settings().endpoint_name
LISTENING = re.compile(r"serving (.+) on (http://127\.0\.0\.1:\d+) ")


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A local run's registered version, its test rows and Evaluate's predictions for them."""
    local_dir = tmp_path_factory.mktemp("serving")
    result = run_locally(build_definition(SMALL_BUDGET), local_dir).result
    assert result.succeeded, result.failure_reason
    (package,) = local_registry(local_dir).list_packages(SMALL_BUDGET.model_package_group)
    s3 = LocalS3(local_dir / "s3")
    evaluation_dir = s3.path_for(package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]).parent
    evaluation = json.loads((evaluation_dir / "evaluation.json").read_text())
    predictions = pd.read_csv(evaluation_dir / "predictions.csv")[evaluation["chosen"]["candidate"]].to_numpy()
    test_uri = result.steps["Preprocess"].properties["ProcessingOutputConfig"]["Outputs"]
    test_dir = s3.path_for(next(o for o in test_uri if o["OutputName"] == "test")["S3Output"]["S3Uri"])
    test_file = local_dir / "test.csv"  # the test split as a client would send it
    pd.read_parquet(next(test_dir.glob("*.parquet"))).to_csv(test_file, index=False)
    return {"local_dir": local_dir, "test_file": test_file, "expected": predictions, "package": package}


@pytest.fixture(scope="module")
def server(registered):
    """`pipeline.py serve` as a real process on a free port."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "pipeline.py"), "serve", "--local-dir", str(registered["local_dir"]),
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    line = process.stdout.readline()
    match = LISTENING.search(line)
    assert match, line + process.stderr.read() if process.poll() is not None else line
    yield {"url": match.group(2), "label": match.group(1), "process": process}
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def wait_until_ready(url: str) -> None:
    for _ in range(100):
        if requests.get(f"{url}/ping", timeout=2).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError("the model never finished loading")


def test_ping_answers_quickly_and_then_says_the_model_is_loaded(server):
    started = time.monotonic()
    first = requests.get(f"{server['url']}/ping", timeout=2)
    assert time.monotonic() - started < 2
    assert first.status_code in (200, 503)
    wait_until_ready(server["url"])
    assert server["label"] == "HousePriceModels v1 (PendingManualApproval)"


def test_csv_and_json_requests_get_evaluates_predictions(server, registered):
    wait_until_ready(server["url"])
    test = pd.read_csv(registered["test_file"], keep_default_na=False, dtype=str)
    csv_answer = requests.post(f"{server['url']}/invocations", data=registered["test_file"].read_bytes(),
                               headers={"Content-Type": "text/csv", "Accept": "text/csv"}, timeout=30)
    assert csv_answer.status_code == 200 and csv_answer.headers["Content-Type"].startswith("text/csv")
    from_csv = np.array([float(line) for line in csv_answer.text.splitlines()])
    assert np.allclose(from_csv, registered["expected"], rtol=1e-9, atol=0)
    # JSON records of raw text values, no Accept header: the container's default answer is JSON.
    records = test.drop(columns=["SalePrice"]).head(25).to_dict(orient="records")
    json_answer = requests.post(f"{server['url']}/invocations", json=records, timeout=30)
    assert json_answer.status_code == 200 and json_answer.headers["Content-Type"] == "application/json"
    assert np.allclose(json_answer.json()["predictions"], registered["expected"][:25], rtol=1e-9, atol=0)
    one_row = requests.post(f"{server['url']}/invocations", json={"instances": records[:1]},
                            headers={"Accept": "*/*"}, timeout=30)
    assert np.allclose(one_row.json()["predictions"], registered["expected"][:1], rtol=1e-9, atol=0)


@pytest.mark.parametrize("body, content_type, accept, status, message", [
    (b'[{"Lot Area": 1', "application/json", None, 400, "not valid JSON"),
    (b"<rows/>", "application/xml", None, 415, "unsupported content type 'application/xml'"),
    (b"Lot Area,Neighborhood\n8450,NAmes\n", "text/csv", None, 400, "Gr Liv Area"),
    (b"[]", "application/json", None, 400, "no rows"),
    (None, "text/csv", "application/x-protobuf", 406, "unsupported accept type"),
])
def test_bad_requests_get_a_4xx_with_the_handlers_one_line(server, registered, body, content_type, accept, status,
                                                           message):
    """None stands for the test rows: a request that only its Accept header spoils."""
    wait_until_ready(server["url"])
    body = registered["test_file"].read_bytes() if body is None else body
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    answer = requests.post(f"{server['url']}/invocations", data=body, headers=headers, timeout=30)
    assert answer.status_code == status
    assert message in answer.text and answer.text.count("\n") == 1 and "Traceback" not in answer.text


def test_a_body_over_6_mib_gets_413(server):
    answer = requests.post(f"{server['url']}/invocations", data=b"x" * (6 * 1024 * 1024 + 1),
                           headers={"Content-Type": "text/csv"}, timeout=30)
    assert answer.status_code == 413 and "6 MiB" in answer.text


def runtime_client(url: str):
    """The real boto3 SageMaker Runtime client, pointed at the local endpoint."""
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local",
                        config=Config(retries={"max_attempts": 1}))


def test_boto3_invoke_endpoint_works_unchanged_against_the_local_endpoint(server, registered):
    wait_until_ready(server["url"])
    runtime = runtime_client(server["url"])
    response = runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=registered["test_file"].read_bytes(),
                                       ContentType="text/csv", Accept="application/json",
                                       CustomAttributes="trace=1")
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "trace=1"
    predictions = json.loads(response["Body"].read())["predictions"]
    assert np.allclose(predictions, registered["expected"], rtol=1e-9, atol=0)
    with pytest.raises(ClientError) as bad_payload:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"<rows/>", ContentType="application/xml")
    error = bad_payload.value.response
    assert error["Error"]["Code"] == "ModelError" and error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 415
    assert "unsupported content type 'application/xml'" in error["OriginalMessage"]
    assert error["Error"]["Message"].startswith("Received client error (415) from primary with message")
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(EndpointName="another-endpoint", Body=b"[]", ContentType="application/json")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"
    assert "another-endpoint" in unknown.value.response["Error"]["Message"]


def test_predict_scores_a_file_in_chunks_as_the_endpoint_does(server, registered, tmp_path, capsys):
    output = tmp_path / "predictions.csv"
    assert main(["predict", "--local-dir", str(registered["local_dir"]), "--data", str(registered["test_file"]),
                 "-o", str(output), "--chunk-rows", "97"]) == 0
    scored = pd.read_csv(output)
    assert list(scored.columns) == ["prediction"]
    assert np.allclose(scored["prediction"], registered["expected"], rtol=1e-9, atol=0)
    endpoint = requests.post(f"{server['url']}/invocations", data=registered["test_file"].read_bytes(),
                             headers={"Content-Type": "text/csv", "Accept": "text/csv"}, timeout=30)
    assert scored["prediction"].tolist() == [float(line) for line in endpoint.text.splitlines()]
    rows = len(registered["expected"])
    assert f"scored {rows:,} rows of {registered['test_file']} with HousePriceModels v1" in capsys.readouterr().out


def test_predict_refuses_a_file_the_model_cannot_score_and_leaves_no_output(registered, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.read_csv(registered["test_file"], dtype=str, keep_default_na=False).drop(columns=["Gr Liv Area"]).to_csv(
        bad, index=False)
    output = tmp_path / "out.csv"
    assert main(["predict", "--local-dir", str(registered["local_dir"]), "--data", str(bad), "-o", str(output)]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: {re.escape(str(bad))} rows 1 to \d+: .*'Gr Liv Area'.*", last), last
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.csv"]


def test_serve_and_predict_name_a_missing_version_in_one_line(registered, tmp_path, capsys):
    assert main(["predict", "--local-dir", str(registered["local_dir"]), "--data", str(registered["test_file"]),
                 "--version", "7", "-o", str(tmp_path / "out.csv")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: group HousePriceModels has no version 7 under {registered['local_dir']}; it has versions 1 "
        "(`pipeline.py models`)")
    assert main(["serve", "--local-dir", str(tmp_path)]) == 1
    assert "no model versions in group HousePriceModels" in capsys.readouterr().err


def test_a_version_of_the_cloud_registry_is_served_from_s3(registered, tmp_path, aws_test_credentials):
    """serve/predict --model-package: the version's model data and serving code come from S3 (moto here)."""
    from moto import mock_aws

    from localengine.serving import transform_file
    from pipelines.serving import cloud_version

    local_s3 = LocalS3(registered["local_dir"] / "s3")
    container = dict(registered["package"]["InferenceSpecification"]["Containers"][0])
    with mock_aws():
        s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
        s3.create_bucket(Bucket="models-in-the-cloud")
        moved = {}
        for name, uri in (("model.tar.gz", container["ModelDataUrl"]),
                          ("sourcedir.tar.gz", container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"])):
            s3.upload_file(str(local_s3.path_for(uri)), "models-in-the-cloud", f"v1/{name}")
            moved[uri] = f"s3://models-in-the-cloud/v1/{name}"
        container["ModelDataUrl"] = moved[container["ModelDataUrl"]]
        container["Environment"] = {**container["Environment"], "SAGEMAKER_SUBMIT_DIRECTORY": moved[
            container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]]}
        sagemaker.create_model_package_group(ModelPackageGroupName="HousePriceModels")
        arn = sagemaker.create_model_package(
            ModelPackageGroupName="HousePriceModels", ModelApprovalStatus="Approved",
            InferenceSpecification={"Containers": [container], "SupportedContentTypes": ["text/csv"],
                                    "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]
        version = cloud_version(sagemaker, s3, arn)
        model = version.load(tmp_path / "serving")
    assert version.label == "HousePriceModels v1 (Approved)"
    transform_file(model, registered["test_file"], tmp_path / "scored.csv", chunk_rows=1000)
    assert np.allclose(pd.read_csv(tmp_path / "scored.csv")["prediction"], registered["expected"], rtol=1e-9, atol=0)


def test_a_taken_port_is_refused_in_one_line(registered, server, capsys):
    port = server["url"].rsplit(":", 1)[1]
    assert main(["serve", "--local-dir", str(registered["local_dir"]), "--port", port]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port "
        "(0 picks a free one) or --host")


def test_sigterm_stops_the_server_cleanly(registered):
    process = subprocess.Popen(
        [sys.executable, str(REPO / "pipeline.py"), "serve", "--local-dir", str(registered["local_dir"]),
         "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert LISTENING.search(process.stdout.readline())
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
