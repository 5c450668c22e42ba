"""Resolution of ``Get``, ``Std:Join`` and ``Std:JsonGet`` expressions in step arguments."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from .errors import EngineError, UnsupportedConstruct
from .parameters import format_value
from .paths import PathError, lookup, parse_path
from .s3 import LocalS3, join_s3_uri
from .spec import StepSpec

SUPPORTED_FUNCTIONS = ("Std:Join", "Std:JsonGet")
# TrainingJobName/ProcessingJobName are left out: they name the job being created,
# which would make a step's resolved arguments (its cache key) differ on every run.
SUPPORTED_EXECUTION_VARIABLES = (
    "PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn",
    "StartDateTime", "CurrentDateTime",
)


def is_expression(value: Any) -> bool:
    """Whether ``value`` is a ``{"Get": ...}`` or ``{"Std:...": ...}`` expression."""
    return isinstance(value, dict) and len(value) == 1 and (
        "Get" in value or next(iter(value)).startswith("Std:"))


def iter_references(value: Any, where: str) -> Iterator[str]:
    """Yield every ``Get`` path in ``value``, including those inside functions.

    Raises ``UnsupportedConstruct`` for a function the engine does not implement.
    """
    if is_expression(value):
        name, body = next(iter(value.items()))
        if name == "Get":
            yield body
            return
        if name not in SUPPORTED_FUNCTIONS:
            raise UnsupportedConstruct(f"function {name} in {where}")
        yield from iter_references(body, where)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_references(item, where)
    elif isinstance(value, list):
        for item in value:
            yield from iter_references(item, where)


def referenced_step(get_path: str) -> str | None:
    """The step name of a ``Steps.<name>...`` reference, else None."""
    root, _, rest = get_path.partition(".")
    return rest.partition(".")[0] if root == "Steps" else None


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, as the service renders date-time values."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Resolver:
    """Evaluates expressions against one execution's parameters, variables and step properties.

    ``step_properties`` is read at resolution time, so a step only ever sees the
    properties of steps that finished before it started (its dependencies).
    """

    def __init__(self, *, parameters: Mapping[str, Any], execution_variables: Mapping[str, Any],
                 step_properties: Mapping[str, dict[str, Any]], steps: Mapping[str, StepSpec],
                 s3: LocalS3, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self._parameters = parameters
        self._execution_variables = execution_variables
        self._step_properties = step_properties
        self._steps = steps
        self._s3 = s3
        self._clock = clock
        self._property_files: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def resolve(self, value: Any) -> Any:
        """Return ``value`` with every expression replaced by its value."""
        if is_expression(value):
            name, body = next(iter(value.items()))
            if name == "Get":
                return self._get(body)
            if name == "Std:Join":
                return self._join(body)
            return self._json_get(body)
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def _get(self, path: str) -> Any:
        root, _, rest = path.partition(".")
        if root == "Parameters":
            return self._parameters[rest]
        if root == "Execution":
            if rest == "CurrentDateTime":
                return format_timestamp(self._clock())
            return self._execution_variables[rest]
        step_name, _, property_path = rest.partition(".")
        try:
            return lookup(self._step_properties[step_name], parse_path(property_path))
        except PathError as error:
            raise EngineError(f"property {path} cannot be resolved: {error}") from None

    def _join(self, body: Mapping[str, Any]) -> str:
        values = self.resolve(body.get("Values") or [])
        return str(body.get("On", "")).join(format_value(value) for value in values)

    def _json_get(self, body: Mapping[str, Any]) -> Any:
        json_path = body["Path"]
        if "PropertyFile" in body:
            document, source = self._property_file(body["PropertyFile"]["Get"])
        else:
            source = self.resolve(body["S3Uri"])
            document = self._read_json(source)
        try:
            return lookup(document, parse_path(json_path))
        except PathError as error:
            raise EngineError(f"Std:JsonGet path {json_path!r} in {source}: {error}") from None

    def _property_file(self, get_path: str) -> tuple[Any, str]:
        _, step_name, _, file_name = get_path.split(".", 3)
        key = (step_name, file_name)
        with self._lock:
            if key not in self._property_files:
                self._property_files[key] = self._load_property_file(step_name, file_name)
            return self._property_files[key], f"property file {file_name} of step {step_name}"

    def _load_property_file(self, step_name: str, file_name: str) -> Any:
        declaration = next(d for d in self._steps[step_name].property_files
                           if d["PropertyFileName"] == file_name)
        output_uri = self._get(f"Steps.{step_name}.ProcessingOutputConfig"
                               f".Outputs['{declaration['OutputName']}'].S3Output.S3Uri")
        return self._read_json(join_s3_uri(output_uri, declaration["FilePath"]))

    def _read_json(self, uri: str) -> Any:
        try:
            return json.loads(self._s3.read_bytes(uri))
        except json.JSONDecodeError as error:
            raise EngineError(f"{uri} is not valid JSON: {error}") from None
