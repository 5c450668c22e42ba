"""`validate` catches what the SageMaker API would reject and wiring the SDK does not check."""

from __future__ import annotations

import copy
import json

import pytest

from pipeline import main
from pipelines.definition import build_definition
from pipelines.settings import Settings
from pipelines.validate import multi_instance_warnings, validate_definition


@pytest.fixture(scope="module")
def document():
    return build_definition(Settings()).document


def broken(document, mutate) -> list[str]:
    doc = copy.deepcopy(document)
    mutate({step["Name"]: step for step in doc["Steps"]}, doc)
    return [str(problem) for problem in validate_definition(doc)]


def test_the_built_definition_is_valid(document):
    assert validate_definition(document) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda s, d: s["TrainBaseline"]["Arguments"]["ResourceConfig"].update(Colour="red"),
     'TrainBaseline: CreateTrainingJob: Unknown parameter in ResourceConfig: "Colour"'),
    (lambda s, d: s["Preprocess"]["Arguments"].pop("RoleArn"),
     'Preprocess: CreateProcessingJob: Missing required parameter in input: "RoleArn"'),
    (lambda s, d: s["TrainBaseline"]["Arguments"]["StoppingCondition"].update(MaxRuntimeInSeconds="1h"),
     "TrainBaseline: CreateTrainingJob: Invalid type for parameter StoppingCondition.MaxRuntimeInSeconds"),
    (lambda s, d: s["Evaluate"]["Arguments"]["AppSpecification"].update(ContainerArguments=[]),
     "Evaluate: CreateProcessingJob: Invalid length for parameter AppSpecification.ContainerArguments"),
    (lambda s, d: d["Parameters"].pop(next(i for i, p in enumerate(d["Parameters"]) if p["Name"] == "MaxRmse")),
     "QualityGate: Parameters.MaxRmse refers to an undeclared parameter"),
    (lambda s, d: s["Evaluate"]["Arguments"]["ProcessingInputs"][3]["S3Input"].update(
        S3Uri={"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['tset'].S3Output.S3Uri"}),
     "Evaluate: Steps.Preprocess.ProcessingOutputConfig.Outputs['tset'].S3Output.S3Uri: step Preprocess has no output named 'tset'"),
    (lambda s, d: s["Evaluate"].update(PropertyFiles=[]),
     "QualityGate: Steps.Evaluate.PropertyFiles.EvaluationReport: step Evaluate declares no property file 'EvaluationReport'"),
    (lambda s, d: s["TrainBaseline"]["Arguments"]["InputDataConfig"][0]["DataSource"]["S3DataSource"].update(
        S3Uri={"Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}),
     "TrainBaseline: Steps.Prepare.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri refers to unknown step 'Prepare'"),
    (lambda s, d: s["Preprocess"].update(DependsOn=["Evaluate"]),
     "dependency cycle: Preprocess -> "),
    (lambda s, d: s["Preprocess"].update(DependsOn=["Cleanup"]),
     "Preprocess: DependsOn names unknown step 'Cleanup'"),
])
def test_broken_definitions_are_reported(document, mutate, expected):
    problems = broken(document, mutate)
    assert any(expected in problem for problem in problems), problems


def test_cli_validate_exits_non_zero_with_a_readable_list(document, tmp_path, capsys):
    doc = copy.deepcopy(document)
    named = {step["Name"]: step for step in doc["Steps"]}
    named["TrainBaseline"]["Arguments"]["ResourceConfig"]["Colour"] = "red"
    named["Preprocess"]["Arguments"].pop("RoleArn")
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(doc))
    assert main(["validate", "--file", str(path)]) == 1
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("✘")]
    assert len(lines) == 2
    assert "2 problem(s)" in out.err


def test_cli_validate_accepts_the_built_definition(capsys):
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "definition valid" in out and "warning" not in out


def test_the_multi_instance_trials_read_their_own_shards(document):
    trials = {step["Name"]: step for step in document["Steps"]}["TuneXGBoost"]["Arguments"]["TrainingJobDefinition"]
    assert trials["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    distribution = {channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3DataDistributionType"]
                    for channel in trials["InputDataConfig"]}
    assert distribution == {"train": "ShardedByS3Key", "validation": "ShardedByS3Key", "features": "FullyReplicated"}
    assert multi_instance_warnings(document) == []


def test_the_preprocess_instances_read_their_own_share_of_the_input(document):
    """Each instance reads its share of the data; the code, which every instance runs whole, is no warning."""
    preprocess = {step["Name"]: step for step in document["Steps"]}["Preprocess"]["Arguments"]
    assert preprocess["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == {
        "Get": "Parameters.ProcessingInstanceCount"}
    assert {item["InputName"]: item["S3Input"]["S3DataDistributionType"] for item in preprocess["ProcessingInputs"]} \
        == {"code": "FullyReplicated", "data": "ShardedByS3Key"}
    doc = copy.deepcopy(document)
    data = {step["Name"]: step for step in doc["Steps"]}["Preprocess"]["Arguments"]["ProcessingInputs"][1]
    data["S3Input"]["S3DataDistributionType"] = "FullyReplicated"
    assert [problem.message for problem in multi_instance_warnings(doc)] == [
        "InstanceCount is the parameter ProcessingInstanceCount (default 1) and input data is FullyReplicated: with "
        "more than one instance every instance reads all of it (each row counted once per instance); make it "
        "ShardedByS3Key, in as many files as instances"]


def test_validate_warns_when_several_instances_would_each_read_all_the_data(document, tmp_path, capsys):
    doc = copy.deepcopy(document)
    named = {step["Name"]: step for step in doc["Steps"]}
    trials = named["TuneXGBoost"]["Arguments"]["TrainingJobDefinition"]
    trials["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "FullyReplicated"
    named["TrainBaseline"]["Arguments"]["ResourceConfig"]["InstanceCount"] = 3
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(doc))
    assert main(["validate", "--file", str(path)]) == 0  # valid, and probably not what was meant
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: TrainBaseline: InstanceCount is 3 and input train is FullyReplicated: with more than one instance "
        "every instance reads all of it (each row counted once per instance); make it ShardedByS3Key, in as many "
        "files as instances",
        "warning: TrainBaseline: InstanceCount is 3 and input validation is FullyReplicated: with more than one "
        "instance every instance reads all of it (each row counted once per instance); make it ShardedByS3Key, in "
        "as many files as instances",
        "warning: TuneXGBoost: InstanceCount is the parameter TrainingInstanceCount (default 1) and input train is "
        "FullyReplicated: with more than one instance every instance reads all of it (each row counted once per "
        "instance); make it ShardedByS3Key, in as many files as instances",
    ]


def test_cli_validate_rejects_a_file_that_is_not_json(tmp_path, capsys):
    path = tmp_path / "definition.json"
    path.write_text("{not json")
    assert main(["validate", "--file", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --file") and "is not JSON" in err[0]
