"""What a run reports: per-step results, events while it runs, and a final summary."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

StepStatus = Literal["Succeeded", "Failed", "Skipped", "NotStarted"]
ExecutionStatus = Literal["Succeeded", "Failed"]


@dataclass
class StepResult:
    """The outcome of one step.

    ``properties`` is what ``{"Get": "Steps.<name>...."}`` resolves against (the matching
    Describe* response). ``skip_reason`` says why a Skipped step did not run; NotStarted
    steps were never reached because the run failed first.
    """

    name: str
    step_type: str
    status: StepStatus = "NotStarted"
    duration_seconds: float = 0.0
    cache_hit: bool = False
    properties: dict[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None
    log_path: Path | None = None
    skip_reason: str | None = None
    detail: str | None = None  # what a Condition step compared, e.g. "25232.5 <= 40000.0"
    retried: list[str] = field(default_factory=list)  # why each attempt that a retry policy retried failed


@dataclass
class ExecutionResult:
    """The outcome of ``run_pipeline``; ``steps`` keeps the definition's order."""

    pipeline_name: str
    execution_id: str
    execution_arn: str
    status: ExecutionStatus
    steps: dict[str, StepResult]
    parameters: dict[str, Any]
    duration_seconds: float
    failed_step: str | None = None
    failure_reason: str | None = None
    fail_message: str | None = None  # ErrorMessage of the Fail step that ended the run
    registered_model_packages: list[dict[str, Any]] = field(default_factory=list)
    logs_dir: Path | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


@dataclass(frozen=True)
class StepEvent:
    """Sent to ``on_event``: ``started`` before a step runs, ``finished`` (with its result)
    after it succeeded or failed, ``skipped`` when a branch or a skipped dependency rules it out."""

    kind: Literal["started", "finished", "skipped"]
    step_name: str
    step_type: str
    result: StepResult | None = None


def readable_number(value: float) -> str:
    """A number as a person reads it: 25,636 rather than 25635.946427416227; 0.9201 rather than 0.92012..."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def print_event(event: StepEvent, stream: TextIO | None = None) -> None:
    """Print one line per event (more for a failure's reason), e.g. ``▶ Preprocess (Processing)``."""
    stream = stream or sys.stdout
    print(describe_event(event), file=stream, flush=True)


def describe_event(event: StepEvent) -> str:
    """The text ``print_event`` prints."""
    result = event.result
    if event.kind == "started":
        return f"▶ {event.step_name} ({event.step_type})"
    if event.kind == "skipped":
        return f"↷ {event.step_name} skipped ({result.skip_reason})"
    if result.status == "Failed":
        return f"✘ {event.step_name} failed after {format_duration(result.duration_seconds)}: {result.failure_reason}"
    notes = [note for note in ("cache hit" if result.cache_hit else "", _retry_note(result), _outcome_note(result))
             if note]
    suffix = f" ({', '.join(notes)})" if notes else ""
    return f"✔ {event.step_name} succeeded in {format_duration(result.duration_seconds)}{suffix}"


def _retry_note(result: StepResult) -> str:
    if not result.retried:
        return ""
    retries = len(result.retried)
    return f"after {retries} retr{'y' if retries == 1 else 'ies'}: {result.retried[-1]}"


def _outcome_note(result: StepResult) -> str:
    if result.step_type == "Condition":
        return f"{result.detail} → {result.properties.get('Outcome')}"
    return ""


_STATUS_MARKS = {"Succeeded": "✔", "Failed": "✘", "Skipped": "↷", "NotStarted": "·"}


def format_summary(result: ExecutionResult, *, with_failure: bool = True) -> str:
    """A multi-line report of the run: each step with its key facts, then the outcome (without the failure's
    reason when the caller ends with it)."""
    lines = [f"Execution {result.execution_id} of {result.pipeline_name}: {result.status} "
             f"in {format_duration(result.duration_seconds)}"]
    width = max((len(name) for name in result.steps), default=0)
    for step in result.steps.values():
        # The step that ended the run gives its reason once, below the table.
        details = "; ".join(_step_details(step, with_reason=step.name != result.failed_step))
        lines.append(f"  {_STATUS_MARKS[step.status]} {step.name:<{width}}  {step.step_type:<13} "
                     f"{step.status:<10} {details}".rstrip())
    for package in result.registered_model_packages:
        lines.append(f"Registered {package['ModelPackageGroupName']} version {package['ModelPackageVersion']} "
                     f"({package['ModelApprovalStatus']}): {package['ModelPackageArn']}")
    if with_failure and result.fail_message is not None:
        lines.append(f"Fail step {result.failed_step}: {result.fail_message}")
    elif with_failure and result.failure_reason:
        lines.append(f"Step {result.failed_step} failed: {result.failure_reason}")
    if result.logs_dir:
        lines.append(f"Logs: {result.logs_dir}")
    return "\n".join(lines)


def _step_details(step: StepResult, with_reason: bool = True) -> list[str]:
    details = []
    if step.status in ("Succeeded", "Failed"):
        details.append(format_duration(step.duration_seconds) + (" (cache hit)" if step.cache_hit else ""))
    if step.status == "Skipped":
        details.append(step.skip_reason or "")
    properties = step.properties
    if properties.get("FinalMetricDataList"):
        details.append("metrics " + ", ".join(f"{m['MetricName']}={readable_number(m['Value'])}"
                                              for m in properties["FinalMetricDataList"]))
    if "BestTrainingJob" in properties:
        details.append(_tuning_details(properties))
    if step.step_type == "Condition" and "Outcome" in properties:
        details.append(f"{step.detail} → {properties['Outcome']}")
    if "ModelPackageVersion" in properties:
        details.append(f"{properties['ModelPackageGroupName']} v{properties['ModelPackageVersion']} "
                       f"{properties['ModelApprovalStatus']}")
    if "ModelName" in properties and step.step_type == "Model":
        details.append(f"model {properties['ModelName']}")
    if with_reason and step.status == "Failed" and step.failure_reason:
        details.append(step.failure_reason.splitlines()[0])
    return details


def _tuning_details(properties: dict[str, Any]) -> str:
    best = properties["BestTrainingJob"]
    objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
    counters = properties["TrainingJobStatusCounters"]
    failed = counters["NonRetryableError"]
    trials = counters["Completed"] + failed
    tuned = ", ".join(f"{name}={_short(value)}" for name, value in sorted(best["TunedHyperParameters"].items()))
    return (f"best of {trials} trials" + (f" ({failed} failed)" if failed else "") +
            f": {objective['MetricName']}={readable_number(objective['Value'])} with {tuned} "
            f"({best['TrainingJobName']})")


def _short(value: str) -> str:
    """A tuned value with 4 significant digits when it is a number."""
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value
