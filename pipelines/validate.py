"""Offline checks of a pipeline definition, beyond what the SDK checks when it builds one.

- Each job step's `Arguments` is the request of its SageMaker API minus the job name; botocore's
  request shape checks required keys, unknown keys, types and minimums once pipeline expressions
  are replaced by placeholders of the type the shape expects.
- Every `Get` resolves to a declared parameter, execution variable, step, output or property file.
- The steps' data dependencies and `DependsOn` edges have no cycle.

And one warning, for a definition that is valid but probably not what was meant: a job that can run on more
than one instance while a data input is FullyReplicated, so that every instance reads all of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Iterator

import botocore.session
from botocore.validate import ParamValidator

# Step type -> (API operation, the job-name member the step omits and the service fills in).
STEP_OPERATIONS = {
    "Processing": ("CreateProcessingJob", "ProcessingJobName"),
    "Training": ("CreateTrainingJob", "TrainingJobName"),
    "Tuning": ("CreateHyperParameterTuningJob", "HyperParameterTuningJobName"),
    "Model": ("CreateModel", "ModelName"),
    "RegisterModel": ("CreateModelPackage", None),
}
EXPRESSION_KEYS = ("Get", "Std:Join", "Std:JsonGet")
EXECUTION_VARIABLES = {
    "PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn", "StartDateTime",
    "CurrentDateTime",
}
_PLACEHOLDERS = {"string": "placeholder", "integer": 1, "long": 1, "float": 1.0, "double": 1.0,
                 "boolean": True, "timestamp": "2020-01-01T00:00:00Z", "blob": b"", "list": [], "map": {}}
_STEP_REF = re.compile(r"^Steps\.([^.\[]+)(.*)$")
_OUTPUT_REF = re.compile(r"^\.ProcessingOutputConfig\.Outputs\['([^']+)'\]")


@dataclass(frozen=True)
class Problem:
    step: str
    message: str

    def __str__(self) -> str:
        return f"{self.step}: {self.message}"


def validate_definition(definition: str | dict) -> list[Problem]:
    doc = json.loads(definition) if isinstance(definition, str) else definition
    steps = dict(_all_steps(doc.get("Steps", [])))
    problems = [*_request_shape_problems(steps), *_reference_problems(doc, steps), *_cycle_problems(steps)]
    return problems


def _all_steps(steps: list[dict]) -> Iterator[tuple[str, dict]]:
    """Top-level steps and the steps nested in condition branches, by name."""
    for step in steps:
        yield step["Name"], step
        if step.get("Type") == "Condition":
            args = step.get("Arguments", {})
            yield from _all_steps(args.get("IfSteps", []) + args.get("ElseSteps", []))


def _request_shape_problems(steps: dict[str, dict]) -> Iterator[Problem]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    validator = ParamValidator()
    for name, step in steps.items():
        if step.get("Type") not in STEP_OPERATIONS:
            continue
        operation, job_name_member = STEP_OPERATIONS[step["Type"]]
        shape = model.operation_model(operation).input_shape
        request = _with_placeholders(step.get("Arguments", {}), shape)
        if job_name_member:
            request[job_name_member] = "placeholder"
        report = validator.validate(request, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                yield Problem(name, f"{operation}: {line.strip()}")


def _with_placeholders(value, shape):
    """`value` with each pipeline expression replaced by a value of the type `shape` expects."""
    if isinstance(value, dict) and any(key in value for key in EXPRESSION_KEYS):
        return _PLACEHOLDERS.get(shape.type_name, "placeholder") if shape is not None else "placeholder"
    if isinstance(value, dict) and shape is not None and shape.type_name == "structure":
        return {key: _with_placeholders(item, shape.members.get(key)) for key, item in value.items()}
    if isinstance(value, dict) and shape is not None and shape.type_name == "map":
        return {key: _with_placeholders(item, shape.value) for key, item in value.items()}
    if isinstance(value, list) and shape is not None and shape.type_name == "list":
        return [_with_placeholders(item, shape.member) for item in value]
    return value


def _expressions(value) -> Iterator[dict]:
    if isinstance(value, dict):
        if "Get" in value or "Std:JsonGet" in value:
            yield value
        for item in value.values():
            yield from _expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _expressions(item)


def _references(step: dict) -> Iterator[str]:
    """Every `Get` path in a step, including property files read by `Std:JsonGet`."""
    body = {key: item for key, item in step.items() if key not in ("IfSteps", "ElseSteps")}
    if step.get("Type") == "Condition":
        body["Arguments"] = {"Conditions": step.get("Arguments", {}).get("Conditions", [])}
    for expression in _expressions(body):
        if "Get" in expression:
            yield expression["Get"]


def _reference_problems(doc: dict, steps: dict[str, dict]) -> Iterator[Problem]:
    parameters = {parameter["Name"] for parameter in doc.get("Parameters", [])}
    for name, step in steps.items():
        for path in _references(step):
            problem = _reference_problem(path, parameters, steps)
            if problem:
                yield Problem(name, problem)
        for dependency in step.get("DependsOn", []):
            if dependency not in steps:
                yield Problem(name, f"DependsOn names unknown step {dependency!r}")


def _reference_problem(path: str, parameters: set[str], steps: dict[str, dict]) -> str | None:
    root, _, rest = path.partition(".")
    if root == "Parameters":
        return None if rest in parameters else f"{path} refers to an undeclared parameter"
    if root == "Execution":
        return None if rest in EXECUTION_VARIABLES else f"{path} is not an execution variable"
    match = _STEP_REF.match(path)
    if root != "Steps" or not match:
        return f"{path} is not a parameter, execution variable or step property"
    target, tail = match.groups()
    if target not in steps:
        return f"{path} refers to unknown step {target!r}"
    step = steps[target]
    if tail.startswith(".PropertyFiles."):
        declared = {item["PropertyFileName"] for item in step.get("PropertyFiles", [])}
        wanted = tail.removeprefix(".PropertyFiles.")
        return None if wanted in declared else f"{path}: step {target} declares no property file {wanted!r}"
    output = _OUTPUT_REF.match(tail)
    if output:
        outputs = step.get("Arguments", {}).get("ProcessingOutputConfig", {}).get("Outputs", [])
        if output.group(1) not in {item["OutputName"] for item in outputs}:
            return f"{path}: step {target} has no output named {output.group(1)!r}"
    return None


def _cycle_problems(steps: dict[str, dict]) -> Iterator[Problem]:
    graph = {name: set(step.get("DependsOn", [])) for name, step in steps.items()}
    for name, step in steps.items():
        for path in _references(step):
            match = _STEP_REF.match(path)
            if match and match.group(1) in steps:
                graph[name].add(match.group(1))
        if step.get("Type") == "Condition":
            args = step.get("Arguments", {})
            for child in args.get("IfSteps", []) + args.get("ElseSteps", []):
                graph[child["Name"]].add(name)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        yield Problem(error.args[1][0], "dependency cycle: " + " -> ".join(error.args[1]))


# Inputs every instance needs whole (a feature spec, a configuration); data comes in other content types.
DOCUMENT_CONTENT_TYPES = frozenset({"application/json", "application/x-sagemaker-model"})
CODE_INPUT = "code"  # the name steps/processing.py gives a processing job's code: every instance runs all of it


def multi_instance_warnings(definition: str | dict) -> list[Problem]:
    """Job steps whose instance count is above one, or a parameter that can be, with a FullyReplicated data
    input: every instance would read (and train on) all of it, each row counted once per instance."""
    doc = json.loads(definition) if isinstance(definition, str) else definition
    defaults = {parameter["Name"]: parameter.get("DefaultValue") for parameter in doc.get("Parameters", [])}
    warnings = []
    for name, step in _all_steps(doc.get("Steps", [])):
        count, channels = _instances_and_inputs(step)
        if count is None:
            continue
        if isinstance(count, dict):
            parameter = str(count.get("Get", "")).removeprefix("Parameters.")
            instances = f"InstanceCount is the parameter {parameter} (default {defaults.get(parameter)})"
        elif isinstance(count, int) and count > 1:
            instances = f"InstanceCount is {count}"
        else:
            continue
        for channel, distribution, content_type in channels:
            if distribution == "FullyReplicated" and content_type not in DOCUMENT_CONTENT_TYPES:
                warnings.append(Problem(name, f"{instances} and input {channel} is FullyReplicated: with more than "
                                              "one instance every instance reads all of it (each row counted once "
                                              "per instance); make it ShardedByS3Key, in as many files as "
                                              "instances"))
    return warnings


def _instances_and_inputs(step: dict) -> tuple[object, list[tuple[str, str, str | None]]]:
    """(instance count, [(input name, S3 distribution, content type)]) of a job step, or (None, [])."""
    arguments = step.get("Arguments") or {}
    if step.get("Type") == "Processing":
        count = ((arguments.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get("InstanceCount")
        return count, [(item.get("InputName"), item["S3Input"].get("S3DataDistributionType", "FullyReplicated"), None)
                       for item in arguments.get("ProcessingInputs") or []
                       if "S3Input" in item and item.get("InputName") != CODE_INPUT]
    if step.get("Type") in ("Training", "Tuning"):
        job = arguments.get("TrainingJobDefinition") or arguments
        return (job.get("ResourceConfig") or {}).get("InstanceCount"), [
            (channel.get("ChannelName"),
             ((channel.get("DataSource") or {}).get("S3DataSource") or {}).get("S3DataDistributionType",
                                                                               "FullyReplicated"),
             channel.get("ContentType"))
            for channel in job.get("InputDataConfig") or [] if "S3DataSource" in (channel.get("DataSource") or {})]
    return None, []
