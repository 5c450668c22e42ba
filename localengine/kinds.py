"""The step types the engine runs, and what each exposes as properties."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .conditions import describe_conditions, evaluate_all
from .context import RunContext, StepOutput
from .errors import StepFailed
from .model_steps import MODEL_PROPERTIES, REGISTER_MODEL_PROPERTIES, run_model, run_register_model
from .parameters import format_value
from .processing import PROCESSING_PROPERTIES, check_processing, run_processing
from .spec import StepSpec
from .training import TRAINING_PROPERTIES, check_training, run_training
from .tuning import TUNING_PROPERTIES, check_tuning, run_tuning

StepRunner = Callable[[StepSpec, dict[str, Any], RunContext], StepOutput]


@dataclass(frozen=True)
class StepKind:
    """How to run one step type.

    ``exposes_arguments``: the request's own fields are properties too, as Describe* echoes them.
    """

    run: StepRunner
    extra_properties: frozenset[str] = frozenset()
    exposes_arguments: bool = True
    check: Callable[[StepSpec], None] = lambda spec: None

    def property_roots(self, spec: StepSpec) -> frozenset[str]:
        """Names a ``Steps.<name>.<root>...`` reference may start with."""
        return self.extra_properties | (frozenset(spec.arguments) if self.exposes_arguments else frozenset())


def _run_condition(spec: StepSpec, arguments: dict[str, Any], context: RunContext) -> StepOutput:
    conditions = arguments.get("Conditions") or []
    return StepOutput({"Outcome": evaluate_all(conditions)}, detail=describe_conditions(conditions))


def _run_fail(spec: StepSpec, arguments: dict[str, Any], context: RunContext) -> StepOutput:
    """A Fail step fails, and with it the execution, with its ``ErrorMessage``."""
    raise StepFailed(format_value(arguments.get("ErrorMessage")))


STEP_KINDS: dict[str, StepKind] = {
    "Processing": StepKind(run_processing, PROCESSING_PROPERTIES, check=check_processing),
    "Training": StepKind(run_training, TRAINING_PROPERTIES, check=check_training),
    "Tuning": StepKind(run_tuning, TUNING_PROPERTIES, check=check_tuning),
    "Model": StepKind(run_model, MODEL_PROPERTIES),
    "RegisterModel": StepKind(run_register_model, REGISTER_MODEL_PROPERTIES),
    "Condition": StepKind(_run_condition, frozenset({"Outcome"}), exposes_arguments=False),
    "Fail": StepKind(_run_fail, exposes_arguments=False),
}
