"""Settings precedence and checks, and the offline CLI commands."""

from __future__ import annotations

import json

import pytest

from pipeline import main
from pipelines.settings import PLACEHOLDER_ROLE_ARN, Settings, SettingsError


def test_flag_beats_environment_beats_default():
    environ = {"PIPELINE_BUCKET": "from-env-bucket", "PIPELINE_NAME": "EnvPipeline",
               "PIPELINE_NETWORK_ISOLATION": "true", "PIPELINE_TUNING_MAX_JOBS": "6"}
    settings = Settings.resolve({"bucket": "from-flag-bucket", "region": None}, environ)
    assert settings.bucket == "from-flag-bucket"
    assert settings.pipeline_name == "EnvPipeline"
    assert settings.network_isolation is True
    assert settings.tuning_max_jobs == 6
    assert settings.region == "us-east-1"
    assert settings.role_arn == PLACEHOLDER_ROLE_ARN and not settings.has_real_role


@pytest.mark.parametrize("values, named", [
    ({"bucket": "Not_A_Bucket"}, "bucket"),
    ({"role_arn": "my-role"}, "role_arn"),
    ({"pipeline_name": "has spaces"}, "pipeline_name"),
    ({"tags": "team=ml,broken"}, "tags"),
    ({"subnets": "subnet-1"}, "subnets"),
    ({"tuning_max_jobs": 0}, "tuning_max_jobs"),
])
def test_bad_settings_name_the_flag_and_the_variable(values, named):
    with pytest.raises(SettingsError) as raised:
        Settings(**values)
    message = str(raised.value)
    assert f"--{named.replace('_', '-')}" in message
    assert dict((f[2:].replace("-", "_"), e) for f, e, _, _ in Settings.documented())[named] in message


def test_region_falls_back_to_aws_default_region():
    assert Settings.resolve({}, {"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    assert Settings.resolve({}, {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-central-1"}).region == "eu-central-1"


def test_tags_and_vpc_settings_parse():
    settings = Settings(tags="team=ml, cost-centre=42", subnets="subnet-1,subnet-2", security_group_ids="sg-1")
    assert settings.tag_map == {"team": "ml", "cost-centre": "42"}
    assert settings.vpc_config == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}


def test_definition_command_writes_the_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIPELINE_NAME", "FromEnvironment")
    target = tmp_path / "definition.json"
    assert main(["definition", "-o", str(target), "--tags", "team=ml"]) == 0
    assert "wrote" in capsys.readouterr().out
    document = json.loads(target.read_text())
    preprocess = next(step for step in document["Steps"] if step["Name"] == "Preprocess")["Arguments"]
    assert preprocess["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]["Std:Join"]["Values"][0][
        "Std:Join"]["Values"][0].startswith("s3://house-price-pipeline-artifacts/FromEnvironment/preprocess/")
    for step in document["Steps"]:
        if step["Type"] in {"Processing", "Training", "Tuning"}:
            assert {"Key": "team", "Value": "ml"} in step["Arguments"]["Tags"], step["Name"]


def test_parameters_command_describes_every_declared_parameter(capsys):
    assert main(["parameters"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 14
    assert any(line.startswith("MinR2 (Float, default 0.5): Quality gate") for line in lines)
    assert any(line.startswith("TrainingInstanceCount (Integer, default 1): Instances of every tuning trial")
               for line in lines)
    assert any(line.startswith("ProcessingInstanceCount (Integer, default 1): Instances of the Preprocess job")
               for line in lines)


def test_a_bad_setting_is_one_line_and_a_non_zero_exit(capsys):
    assert main(["definition", "--bucket", "UPPER"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: setting bucket='UPPER'")


def test_a_sagemaker_project_tags_the_pipelines_jobs(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SAGEMAKER_PROJECT_NAME", "house-prices")
    monkeypatch.setenv("SAGEMAKER_PROJECT_ID", "p-abc123def456")
    target = tmp_path / "definition.json"
    assert main(["definition", "-o", str(target)]) == 0
    for step in json.loads(target.read_text())["Steps"]:
        if step["Type"] in {"Processing", "Training", "Tuning"}:
            assert {"Key": "sagemaker:project-name", "Value": "house-prices"} in step["Arguments"]["Tags"], step["Name"]
            assert {"Key": "sagemaker:project-id", "Value": "p-abc123def456"} in step["Arguments"]["Tags"], step["Name"]
    monkeypatch.delenv("SAGEMAKER_PROJECT_ID")
    assert main(["definition"]) == 1
    assert "must be given together" in capsys.readouterr().err
