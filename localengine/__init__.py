"""Run Amazon SageMaker Pipelines definitions on this machine.

``run_pipeline`` executes the JSON document that CreatePipeline receives: parameters,
execution variables, property references, ``Std:Join``/``Std:JsonGet``, conditions,
Processing/Training/Tuning jobs as local subprocesses, Model and RegisterModel steps
(into a local model registry), Fail steps and step caching. ``LocalS3`` stands in for
S3. See README.md in this package for the container contract and the limitations.
"""

from .errors import DefinitionError, EngineError, ParameterError, StepFailed, UnsupportedConstruct
from .executor import run_pipeline
from .parameters import resolve_parameters
from .registry import LocalModelRegistry
from .results import ExecutionResult, StepEvent, StepResult, describe_event, format_summary, print_event
from .s3 import LocalS3

__all__ = [
    "DefinitionError", "EngineError", "ExecutionResult", "LocalModelRegistry", "LocalS3",
    "ParameterError", "StepEvent", "StepFailed", "StepResult", "UnsupportedConstruct",
    "describe_event", "format_summary", "print_event", "resolve_parameters", "run_pipeline",
]
