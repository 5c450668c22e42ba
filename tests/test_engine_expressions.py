"""Expressions, execution variables, conditions, branches and ordering, probed with steps
that need no process (Model, Condition, Fail, RegisterModel)."""

import re

import pytest

from localengine import DefinitionError
from test_engine_support import (Env, EventLog, condition_step, fail_step, get, join, model_step,
                                  parameter)

PARAMETERS = [parameter("Name", "String", "abc"), parameter("Count", "Integer", 3),
              parameter("Rate", "Float", 0.25), parameter("Flag", "Boolean", True)]


def model_data(result, step):
    return result.steps[step].properties["PrimaryContainer"]["ModelDataUrl"]


def test_join_renders_each_parameter_type(tmp_path):
    result = Env(tmp_path).run([model_step("M", join("/", "s3:/", get("Parameters.Name"), get("Parameters.Count"),
                                                     get("Parameters.Rate"), get("Parameters.Flag")))], PARAMETERS)
    assert model_data(result, "M") == "s3://abc/3/0.25/true"


def test_execution_variables(tmp_path):
    result = Env(tmp_path).run([model_step("M", join("|", *(get(f"Execution.{name}") for name in (
        "PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "StartDateTime", "CurrentDateTime"))))],
        pipeline_name="HousePrices")
    execution_id, execution_arn, name, start, current = model_data(result, "M").split("|")
    assert execution_id == result.execution_id and re.fullmatch(r"[a-z0-9]{12}", execution_id)
    assert execution_arn == result.execution_arn and execution_arn.endswith(f"/execution/{execution_id}")
    assert name == "HousePrices"
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(iso, start) and re.fullmatch(iso, current) and current >= start


def test_property_reference_to_another_step(tmp_path):
    result = Env(tmp_path).run([
        model_step("First", "s3://bkt/m.tar.gz"),
        model_step("Second", join("", get("Steps.First.ModelName"), "/",
                                  get("Steps.First.PrimaryContainer.ModelDataUrl"))),
    ])
    first = result.steps["First"].properties["ModelName"]
    assert first.startswith(f"pipelines-{result.execution_id}-First-")
    assert model_data(result, "Second") == f"{first}/s3://bkt/m.tar.gz"
    assert (tmp_path / "work" / "models" / f"{first}.json").is_file()


def test_json_get_on_an_s3_uri(tmp_path):
    env = Env(tmp_path)
    env.s3.put_bytes("s3://bkt/abc/doc.json", b'{"a": {"b": [1, {"c": "deep"}]}}')
    uri = join("/", "s3://bkt", get("Parameters.Name"), "doc.json")
    result = env.run([model_step("M", {"Std:JsonGet": {"S3Uri": uri, "Path": "a.b[1].c"}}),
                      model_step("Missing", {"Std:JsonGet": {"S3Uri": uri, "Path": "a.x"}})], PARAMETERS)
    assert model_data(result, "M") == "deep"
    assert "Std:JsonGet path 'a.x' in s3://bkt/abc/doc.json: nothing at a.x" in result.steps["Missing"].failure_reason


def comparison(kind, left, right):
    return {"Type": kind, "LeftValue": left, "RightValue": right}


CONDITIONS = {
    "EqualsTrue": comparison("Equals", get("Parameters.Count"), 3),
    "EqualsFalse": comparison("Equals", get("Parameters.Name"), "abd"),
    "EqualsBooleanTrue": comparison("Equals", get("Parameters.Flag"), True),
    "GreaterThanTrue": comparison("GreaterThan", get("Parameters.Rate"), 0.2),
    "GreaterThanFalse": comparison("GreaterThan", get("Parameters.Rate"), 0.25),
    "GreaterThanOrEqualToTrue": comparison("GreaterThanOrEqualTo", get("Parameters.Rate"), 0.25),
    "LessThanTrue": comparison("LessThan", get("Parameters.Count"), 4),
    "LessThanFalse": comparison("LessThan", get("Parameters.Count"), 3),
    "LessThanOrEqualToTrue": comparison("LessThanOrEqualTo", get("Parameters.Count"), 3),
    "LessThanOrEqualToFalse": comparison("LessThanOrEqualTo", get("Parameters.Count"), 2),
    "NumberAsTextTrue": comparison("LessThan", "0.1", get("Parameters.Rate")),
    "InTrue": {"Type": "In", "QueryValue": get("Parameters.Name"), "Values": ["x", "abc"]},
    "InFalse": {"Type": "In", "QueryValue": get("Parameters.Count"), "Values": [1, 2]},
    "NotTrue": {"Type": "Not", "Condition": {"Type": "In", "QueryValue": get("Parameters.Name"), "Values": ["x"]}},
    "NotFalse": {"Type": "Not", "Condition": comparison("Equals", get("Parameters.Count"), 3)},
    "OrTrue": {"Type": "Or", "Conditions": [comparison("Equals", 1, 2), comparison("Equals", 2, 2)]},
    "OrFalse": {"Type": "Or", "Conditions": [comparison("Equals", 1, 2), comparison("Equals", 2, 3)]},
}


def test_every_condition_type(tmp_path):
    steps = [condition_step(name, [condition]) for name, condition in CONDITIONS.items()]
    result = Env(tmp_path).run(steps, PARAMETERS)
    outcomes = {name: result.steps[name].properties["Outcome"] for name in CONDITIONS}
    assert outcomes == {name: name.endswith("True") for name in CONDITIONS}
    details = {name: result.steps[name].detail for name in ("NotTrue", "OrFalse", "InTrue", "GreaterThanFalse")}
    assert details == {"NotTrue": "not ('abc' in ['x'])", "OrFalse": "(1 == 2 or 2 == 3)",
                       "InTrue": "'abc' in ['x', 'abc']", "GreaterThanFalse": "0.25 > 0.25"}


def test_several_conditions_must_all_hold(tmp_path):
    result = Env(tmp_path).run([condition_step("Both", [CONDITIONS["EqualsTrue"], CONDITIONS["InFalse"]])],
                               PARAMETERS)
    assert result.steps["Both"].properties["Outcome"] is False


def test_only_the_taken_branch_runs_and_dependents_of_skipped_steps_are_skipped(tmp_path):
    events = EventLog()
    result = Env(tmp_path).run([
        condition_step("Check", [comparison("GreaterThan", get("Parameters.Count"), 5)],
                       if_steps=[model_step("Big", "s3://bkt/big")], else_steps=[model_step("Small", "s3://bkt/small")]),
        model_step("AfterBig", get("Steps.Big.ModelName")),
        model_step("AfterSmall", get("Steps.Small.ModelName")),
    ], PARAMETERS, on_event=events)
    statuses = {name: step.status for name, step in result.steps.items()}
    assert statuses == {"Check": "Succeeded", "Big": "Skipped", "Small": "Succeeded",
                        "AfterBig": "Skipped", "AfterSmall": "Succeeded"}
    assert result.status == "Succeeded"
    assert "Check evaluated to False" in result.steps["Big"].skip_reason
    assert "Big" in result.steps["AfterBig"].skip_reason
    assert ("skipped", "Big") in events and ("started", "Big") not in events


def test_a_branch_may_name_a_top_level_step(tmp_path):
    result = Env(tmp_path).run([
        model_step("Gated", "s3://bkt/m"),
        condition_step("Check", [comparison("Equals", get("Parameters.Count"), 4)], if_steps=["Gated"]),
    ], PARAMETERS)
    assert result.steps["Gated"].status == "Skipped" and result.steps["Check"].status == "Succeeded"


def test_depends_on_orders_steps_without_data_references(tmp_path):
    events = EventLog()
    Env(tmp_path).run([model_step("Later", "s3://bkt/a", DependsOn=["Sooner"]),
                       model_step("Sooner", "s3://bkt/b")], on_event=events)
    assert events.index(("finished", "Sooner")) < events.index(("started", "Later"))


def test_fail_step_message_is_an_expression_and_ends_the_run(tmp_path):
    events = EventLog()
    result = Env(tmp_path).run([
        condition_step("Check", [comparison("LessThan", get("Parameters.Rate"), 0.1)],
                       else_steps=[fail_step("Stop", join(" ", "rate", get("Parameters.Rate"), "is above", 0.1))]),
        model_step("AfterStop", "s3://bkt/m", DependsOn=["Stop"]),
    ], PARAMETERS, on_event=events)
    assert result.status == "Failed"
    assert result.fail_message == "rate 0.25 is above 0.1"
    assert result.failed_step == "Stop" and result.steps["Stop"].status == "Failed"
    assert result.steps["AfterStop"].status == "NotStarted"
    assert ("started", "AfterStop") not in events


def test_a_missing_property_fails_the_step_that_needs_it(tmp_path):
    result = Env(tmp_path).run([model_step("A", "s3://bkt/m"),
                                model_step("B", get("Steps.A.PrimaryContainer.Missing"))])
    assert result.steps["B"].status == "Failed"
    assert "Steps.A.PrimaryContainer.Missing" in result.steps["B"].failure_reason


@pytest.mark.parametrize("steps, message", [
    ([model_step("A", get("Parameters.Nope"))], "undeclared parameter Nope"),
    ([model_step("A", get("Steps.Ghost.ModelName"))], "unknown step Ghost"),
    ([model_step("A", "x", DependsOn=["B"]), model_step("B", "y", DependsOn=["A"])], "dependency cycle"),
    ([model_step("A", "x"), model_step("A", "y")], "defined twice"),
])
def test_malformed_definitions_are_rejected_before_running(tmp_path, steps, message):
    events = EventLog()
    with pytest.raises(DefinitionError, match=message):
        Env(tmp_path).run(steps, on_event=events)
    assert events == []


def test_job_names_respect_the_length_limit(tmp_path):
    long_name = "Step_" + "x" * 59  # the longest step name the service accepts (64)
    result = Env(tmp_path).run([model_step(long_name, "s3://bkt/m")])
    name = result.steps[long_name].properties["ModelName"]
    assert len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name)
    assert name.startswith(f"pipelines-{result.execution_id}-Step-xxx")
