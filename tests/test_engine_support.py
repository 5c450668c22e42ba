"""Builders shared by the engine tests: tiny scripts, step dicts shaped like the SDK's output.

Named test_engine_*.py so it lives beside the tests; it holds no tests itself.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localengine import LocalS3, run_pipeline

REPO = Path(__file__).resolve().parent.parent

BUCKET = "s3://bkt"


@dataclass
class Env:
    """A local S3 and a work dir in a pytest tmp_path, plus a place for side files."""

    tmp: Path
    s3: LocalS3 = field(init=False)
    work_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.s3 = LocalS3(self.tmp / "s3")
        self.work_dir = self.tmp / "work"

    def script(self, name: str, code: str) -> str:
        """Upload a processing script; returns its S3 URI."""
        return self.s3.put_bytes(f"{BUCKET}/code/{name}", textwrap.dedent(code).encode())

    def sourcedir(self, files: dict[str, str], key: str = "code/sourcedir.tar.gz") -> str:
        """Upload a sourcedir.tar.gz holding ``files``; returns its S3 URI."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, code in files.items():
                data = textwrap.dedent(code).encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return self.s3.put_bytes(f"{BUCKET}/{key}", buffer.getvalue())

    def run(self, steps: list[dict[str, Any]], declared: list[dict[str, Any]] | None = None, **kwargs):
        """Run a definition of ``steps`` and ``declared`` parameters; kwargs go to run_pipeline."""
        return run_pipeline(definition(steps, declared), s3=self.s3, work_dir=self.work_dir, **kwargs)


def definition(steps: list[dict[str, Any]], parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"Version": "2020-12-01", "Metadata": {}, "Parameters": parameters or [],
            "PipelineExperimentConfig": {"ExperimentName": {"Get": "Execution.PipelineName"},
                                         "TrialName": {"Get": "Execution.PipelineExecutionId"}},
            "Steps": steps}


def parameter(name: str, kind: str, default: Any = None, **extra: Any) -> dict[str, Any]:
    declared = {"Name": name, "Type": kind, **extra}
    if default is not None:
        declared["DefaultValue"] = default
    return declared


def processing_step(name: str, code_uri: str, *, inputs: dict[str, Any] | None = None,
                    outputs: dict[str, Any] | None = None, arguments: list[Any] | None = None,
                    environment: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A Processing step as ScriptProcessor.run emits it: the code is an input named ``code``."""
    processing_inputs = [{"InputName": input_name, "S3Input": {
        "S3Uri": uri, "LocalPath": f"/opt/ml/processing/input/{input_name}", "S3DataType": "S3Prefix",
        "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}}
        for input_name, uri in (inputs or {}).items()]
    processing_inputs.append({"InputName": "code", "S3Input": {
        "S3Uri": code_uri, "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix",
        "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}})
    app = {"ImageUri": "local/sklearn:1", "ContainerEntrypoint": [
        "python3", f"/opt/ml/processing/input/code/{code_uri.rsplit('/', 1)[-1]}"]}
    if arguments:
        app["ContainerArguments"] = arguments
    step_arguments = {
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                  "VolumeSizeInGB": 30}},
        "AppSpecification": app, "RoleArn": "arn:aws:iam::123456789012:role/r",
        "ProcessingInputs": processing_inputs,
        "ProcessingOutputConfig": {"Outputs": [
            {"OutputName": output_name, "S3Output": {"S3Uri": uri, "LocalPath": f"/opt/ml/processing/{output_name}",
                                                     "S3UploadMode": "EndOfJob"}}
            for output_name, uri in (outputs or {}).items()]},
    }
    if environment:
        step_arguments["Environment"] = environment
    return {"Name": name, "Type": "Processing", "Arguments": step_arguments, **extra}


def training_request(sourcedir_uri: str, *, channels: dict[str, Any] | None = None,
                     hyperparameters: dict[str, str] | None = None, output_path: str = f"{BUCKET}/models",
                     metric_definitions: list[dict[str, str]] | None = None,
                     max_runtime: int = 600, program: str = "train.py") -> dict[str, Any]:
    """A CreateTrainingJob request in script mode, values JSON-encoded as the SDK stores them."""
    return {
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "local/xgboost:1",
                                   "MetricDefinitions": metric_definitions or []},
        "HyperParameters": {**(hyperparameters or {}), "sagemaker_program": json.dumps(program),
                            "sagemaker_submit_directory": json.dumps(sourcedir_uri)},
        "InputDataConfig": [{"ChannelName": channel, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}},
            "InputMode": "File"} for channel, uri in (channels or {}).items()],
        "OutputDataConfig": {"S3OutputPath": output_path, "CompressionType": "GZIP"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def training_step(name: str, sourcedir_uri: str, **kwargs: Any) -> dict[str, Any]:
    extra = {key: kwargs.pop(key) for key in ("DependsOn", "CacheConfig") if key in kwargs}
    return {"Name": name, "Type": "Training", "Arguments": training_request(sourcedir_uri, **kwargs), **extra}


def model_step(name: str, model_data_url: Any, **extra: Any) -> dict[str, Any]:
    """A Model step (CreateModel); its properties echo its resolved arguments, which makes it
    a cheap probe of expression resolution."""
    return {"Name": name, "Type": "Model", "Arguments": {
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
        "PrimaryContainer": {"Image": "local/xgboost:1", "Environment": {}, "ModelDataUrl": model_data_url}},
        **extra}


def condition_step(name: str, conditions: list[dict[str, Any]], if_steps=(), else_steps=(), **extra) -> dict[str, Any]:
    return {"Name": name, "Type": "Condition", "Arguments": {
        "Conditions": conditions, "IfSteps": list(if_steps), "ElseSteps": list(else_steps)}, **extra}


def fail_step(name: str, message: Any) -> dict[str, Any]:
    return {"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": message}}


def register_step(name: str, group: str, model_data_url: Any, approval: Any = "PendingManualApproval",
                  metrics_uri: str = f"{BUCKET}/eval/evaluation.json") -> dict[str, Any]:
    """A RegisterModel step as ModelStep(register(...)) emits it (a CreateModelPackage request)."""
    return {"Name": name, "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": group,
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}},
                         "Bias": {}, "Explainability": {}},
        "InferenceSpecification": {"Containers": [{"Image": "local/xgboost:1", "ModelDataUrl": model_data_url}],
                                   "SupportedContentTypes": ["text/csv"],
                                   "SupportedResponseMIMETypes": ["text/csv"]},
        "ModelApprovalStatus": approval, "SkipModelValidation": "None"}}


def get(path: str) -> dict[str, str]:
    return {"Get": path}


def join(on: str, *values: Any) -> dict[str, Any]:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def json_get(step: str, property_file: str, path: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": get(f"Steps.{step}.PropertyFiles.{property_file}"), "Path": path}}


class EventLog(list):
    """An ``on_event`` handler that keeps ``(kind, step)`` pairs in order."""

    def __call__(self, event) -> None:
        self.append((event.kind, event.step_name))


def prepared_sample(root: Path, *preprocess_arguments: str) -> Path:
    """The Ames sample through the real Preprocess script: its outputs (splits, encoded splits, features, report)."""
    import preprocess  # scripts/ is on sys.path in the tests that use this

    (root / "input").mkdir(parents=True)
    (root / "input" / "ames.csv").write_bytes((REPO / "data" / "ames_housing.csv").read_bytes())
    preprocess.main(["--target-column", "SalePrice", "--input-dir", str(root / "input"),
                     "--output-dir", str(root / "out"), *preprocess_arguments])
    return root / "out"


def xgboost_training_steps(env: Env, prepared: Path, hyperparameters: dict[str, str]) -> list[dict[str, Any]]:
    """Training steps on Preprocess's outputs, staged in the local S3: the real train_xgboost.py as one tuning trial
    ("Select": it chooses a round count and saves that choice), then the real refit_xgboost.py on its choice ("Train":
    the model), each with the same channels and threads."""
    from steps.code_bundle import CodeBundle

    channels = {}
    # A trial reads the train and validation rows Preprocess encoded, and so does the refit.
    for channel, output in (("train", "encoded-train"), ("validation", "encoded-validation"), ("features", "features")):
        env.s3.publish([(prepared / output, f"{BUCKET}/prepared/{output}")])
        channels[channel] = f"{BUCKET}/prepared/{output}"
    selection = get("Steps.Select.ModelArtifacts.S3ModelArtifacts")
    threads = {key: value for key, value in hyperparameters.items() if key == "nthread"}
    steps = []
    for name, script, step_channels, step_hyperparameters in (
            ("Select", "train_xgboost.py", channels, hyperparameters),
            ("Train", "refit_xgboost.py", {**channels, "selection": selection}, threads)):
        source = env.s3.put_bytes(f"{BUCKET}/code/{name}/sourcedir.tar.gz",
                                  CodeBundle.for_script(script).sourcedir_tarball)
        steps.append(training_step(name, source, channels=step_channels, hyperparameters=step_hyperparameters,
                                   output_path=f"{BUCKET}/models/{name}", program=script))
    return steps

