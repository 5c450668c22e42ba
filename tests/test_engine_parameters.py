import json

import pytest

from localengine import ParameterError, resolve_parameters
from test_engine_support import Env, get, model_step, parameter

DEFINITION = {"Parameters": [
    parameter("InputData", "String", "s3://bkt/in.csv"),
    parameter("Count", "Integer", 3),
    parameter("Threshold", "Float", 0.5),
    parameter("Strict", "Boolean", False),
    parameter("Approval", "String", "PendingManualApproval", EnumValues=["PendingManualApproval", "Approved"]),
]}


def test_defaults_are_typed():
    assert resolve_parameters(DEFINITION, {}) == {
        "InputData": "s3://bkt/in.csv", "Count": 3, "Threshold": 0.5, "Strict": False,
        "Approval": "PendingManualApproval"}


def test_overrides_are_coerced_to_the_declared_type():
    resolved = resolve_parameters(json.dumps(DEFINITION), {
        "Count": "7", "Threshold": "1e-3", "Strict": "TRUE", "Approval": "Approved", "InputData": "s3://x/y"})
    assert resolved == {"InputData": "s3://x/y", "Count": 7, "Threshold": 0.001, "Strict": True,
                        "Approval": "Approved"}
    assert type(resolved["Count"]) is int and type(resolved["Threshold"]) is float


@pytest.mark.parametrize("name, value", [
    ("Count", "abc"), ("Count", "2.5"), ("Threshold", "high"), ("Threshold", "nan"), ("Strict", "maybe"),
])
def test_a_value_of_the_wrong_type_is_rejected(name, value):
    with pytest.raises(ParameterError, match=f"parameter {name} is .*{value!r}"):
        resolve_parameters(DEFINITION, {name: value})


def test_unknown_names_are_rejected_with_the_declared_names():
    with pytest.raises(ParameterError) as error:
        resolve_parameters(DEFINITION, {"Cuont": "3"})
    message = str(error.value)
    assert "Cuont" in message and "InputData, Count, Threshold, Strict, Approval" in message
    assert "\n" not in message


def test_enum_values_restrict_the_value():
    with pytest.raises(ParameterError, match="Approval must be one of PendingManualApproval, Approved"):
        resolve_parameters(DEFINITION, {"Approval": "Rejected"})


def test_a_parameter_without_default_must_be_given():
    declared = {"Parameters": [parameter("Bucket", "String")]}
    with pytest.raises(ParameterError, match="Bucket has no default"):
        resolve_parameters(declared, {})
    assert resolve_parameters(declared, {"Bucket": "b"}) == {"Bucket": "b"}


def test_run_pipeline_uses_overrides_and_rejects_bad_ones_before_running(tmp_path):
    env = Env(tmp_path)
    steps = [model_step("M", get("Parameters.InputData"))]
    result = env.run(steps, DEFINITION["Parameters"], parameters={"InputData": "s3://bkt/other"})
    assert result.steps["M"].properties["PrimaryContainer"]["ModelDataUrl"] == "s3://bkt/other"
    assert result.parameters["Count"] == 3
    with pytest.raises(ParameterError, match="Count is Integer"):
        env.run(steps, DEFINITION["Parameters"], parameters={"Count": "many"})
