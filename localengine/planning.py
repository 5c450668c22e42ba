"""Which steps the next execution takes from the step cache, which run again, and why.

The prediction walks the definition in dependency order, the way an execution would: each
step's arguments are resolved with the next execution's parameters and with the properties of
the earlier runs its upstream steps will reuse; a job step is a hit when an earlier successful
run of it, younger than ``ExpireAfter``, has the same cache key attributes (``cache_keys``, the
very function the engine's cache uses). Where the key material would come from a step that runs
again (a new job name, new model artifacts, a rewritten property file) the step runs again too.

``history`` supplies the earlier runs: the engine's step cache for a local run, the deployed
pipeline's executions for the cloud (``pipelines.plan``). A step whose caching is off always
runs; steps after it are predicted assuming it answers as in its newest earlier run, and say so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from .cache_keys import cache_key_material, cacheable, changed_attributes
from .caching import StepCache, still_fresh
from .definition import PipelineGraph, load_definition, parse_definition
from .errors import EngineError
from .expressions import Resolver, iter_references, referenced_step
from .parameters import resolve_parameters
from .paths import PathError, lookup, parse_path

_VALUE_WIDTH = 72


@dataclass
class PreviousRun:
    """An earlier successful run of a job step: its resolved request and its Describe* properties."""

    arguments: dict[str, Any]
    properties: dict[str, Any]
    created: datetime
    execution: str
    # A Describe* response echoes defaults the service filled in (an input's distribution type, ...)
    # that the definition did not set; such fields are left out of the comparison.
    echoes_service_defaults: bool = False


class History(Protocol):
    def runs(self, step_name: str) -> list[PreviousRun]:
        """Earlier successful runs of the step, newest first."""


class PropertyFileReader(Protocol):
    def read_bytes(self, uri: str) -> bytes:
        """The object at ``uri`` (where a reused step wrote a property file)."""


@dataclass
class StepPlan:
    name: str
    step_type: str
    verdict: str  # "cached", "runs", or "not cached" (step types the service never caches)
    reasons: list[str] = field(default_factory=list)
    reused: PreviousRun | None = None
    assumes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "type": self.step_type, "verdict": self.verdict, "reasons": self.reasons,
                "assumes": self.assumes, "reuses": self.reused.execution if self.reused else None}


def plan_execution(definition: Mapping[str, Any] | str, history: History, reader: PropertyFileReader, *,
                   parameters: Mapping[str, Any] | None = None) -> list[StepPlan]:
    """One ``StepPlan`` per step, in dependency order, for an execution started with ``parameters``."""
    document = load_definition(definition)
    graph = parse_definition(document)
    return _Planner(graph, resolve_parameters(document, parameters), history, reader).plan()


def plan_local_execution(definition: Mapping[str, Any] | str, *, s3: PropertyFileReader, work_dir: Path | str,
                         parameters: Mapping[str, Any] | None = None) -> list[StepPlan]:
    """``plan_execution`` against the step cache of ``run_pipeline`` runs in ``work_dir``."""
    return plan_execution(definition, LocalHistory(Path(work_dir)), s3, parameters=parameters)


class LocalHistory:
    """Earlier runs as the engine's step cache recorded them (every successful job step)."""

    def __init__(self, work_dir: Path):
        self._cache = StepCache(work_dir / "cache")

    def runs(self, step_name: str) -> list[PreviousRun]:
        return [PreviousRun(entry.arguments, entry.properties, entry.created, entry.execution_id)
                for entry in self._cache.entries(step_name)]


class _Planner:
    def __init__(self, graph: PipelineGraph, parameters: dict[str, Any], history: History,
                 reader: PropertyFileReader):
        self._graph = graph
        self._history = history
        self._properties: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, StepPlan] = {}
        self._from_earlier_runs: set[str] = set()  # steps whose properties come from an earlier run
        self._assumed: set[str] = set()  # uncached steps: they run, their answers are assumed unchanged
        # Execution variables differ in every execution: a placeholder that matches no earlier run.
        variables = {name: f"<next execution's {name}>" for name in
                     ("PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "PipelineArn",
                      "StartDateTime")}
        self._resolver = Resolver(parameters=parameters, execution_variables=variables,
                                  step_properties=self._properties, steps=graph.steps, s3=reader,
                                  clock=lambda: datetime(1, 1, 1, tzinfo=timezone.utc))

    def plan(self) -> list[StepPlan]:
        for name in self._dependency_order():
            self._plans[name] = self._plan_step(name)
        return list(self._plans.values())

    def _dependency_order(self) -> list[str]:
        order: list[str] = []

        def visit(name: str) -> None:
            if name not in order:
                for dependency in self._graph.steps[name].depends_on:
                    visit(dependency)
                order.append(name)

        for name in self._graph.steps:
            visit(name)
        return order

    def _plan_step(self, name: str) -> StepPlan:
        spec = self._graph.steps[name]
        plan = StepPlan(name, spec.type, "not cached")
        if not cacheable(spec.type):
            plan.reasons = [f"a {spec.type} step is never cached"]
            return plan
        plan.assumes = sorted({a for d in spec.depends_on for a in self._plans[d].assumes})
        runs = self._history.runs(name)
        if spec.cache is None:
            plan.verdict, plan.reasons = "runs", ["caching is off for this step"]
            if runs:  # its property files are assumed to say what they said last time
                self._properties[name] = runs[0].properties
                self._assumed.add(name)
                plan.assumes = sorted({*plan.assumes, f"{name} answers as in execution {runs[0].execution}"})
            return plan
        plan.verdict = "runs"
        blocked = self._produced_by_rerun(spec.arguments)
        if blocked:
            plan.reasons = blocked
            self._properties[name] = spec.arguments
            return plan
        arguments = self._resolve(spec.arguments)
        material = cache_key_material(spec.type, arguments)
        current = [run for run in runs if still_fresh(run.created, spec.cache.expire_after)]
        for run in current:
            if _earlier_material(spec.type, run, material) == material:
                plan.verdict, plan.reused = "cached", run
                plan.reasons = [f"same cache key attributes as in execution {run.execution}"]
                self._properties[name] = run.properties
                self._from_earlier_runs.add(name)
                return plan
        self._properties[name] = arguments
        if not runs:
            plan.reasons = ["no earlier successful run of this step"]
        elif not current:
            plan.reasons = [f"its newest earlier run (execution {runs[0].execution}) is older than ExpireAfter"]
        else:
            before = _earlier_material(spec.type, current[0], material)
            plan.reasons = [_describe_change(path, old, new) for path, old, new in changed_attributes(before, material)]
        return plan

    def _produced_by_rerun(self, arguments: dict[str, Any]) -> list[str]:
        """Why the arguments cannot match an earlier run: they take what a re-running step produces anew."""
        reasons = []
        for path in dict.fromkeys(iter_references(arguments, "plan")):
            upstream = referenced_step(path)
            if upstream is None or upstream in self._from_earlier_runs:
                continue
            property_path = path.split(".", 2)[2]
            if upstream not in self._properties:
                reasons.append(f"takes {path}, known only once {upstream} has run")
            elif property_path.startswith("PropertyFiles."):
                if upstream not in self._assumed:
                    reasons.append(f"reads a property file that {upstream} writes again")
            elif upstream in self._assumed:
                reasons.append(f"takes {path}, which {upstream} produces anew (it runs every time)")
            else:
                try:  # what a job echoes of its own request is known before it runs
                    lookup(self._properties[upstream], parse_path(property_path))
                except PathError:
                    reasons.append(f"takes {path}, which {upstream} produces anew when it runs again")
        return reasons

    def _resolve(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._resolver.resolve(arguments)
        except EngineError as error:
            raise EngineError(f"plan: {error}") from None


def _earlier_material(step_type: str, run: PreviousRun, material: dict[str, Any]) -> dict[str, Any]:
    earlier = cache_key_material(step_type, run.arguments)
    return _comparable(earlier, material) if run.echoes_service_defaults else earlier


def _comparable(before: Any, after: Any) -> Any:
    """``before`` without the fields ``after`` leaves out."""
    if isinstance(before, dict) and isinstance(after, dict):
        return {key: _comparable(value, after[key]) for key, value in before.items() if key in after}
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [_comparable(old, new) for old, new in zip(before, after)]
    return before


def _describe_change(path: str, before: Any, after: Any) -> str:
    return f"{_kind_of_change(path)} changed: {path}: {_short(before)} -> {_short(after)}"


def _kind_of_change(path: str) -> str:
    if "sagemaker_submit_directory" in path or "sagemaker_program" in path or "['code']" in path \
            or "ContainerEntrypoint" in path:
        return "code"
    if "ImageUri" in path or "TrainingImage" in path:
        return "image"
    if path.startswith(("ProcessingInputs", "InputDataConfig", "TrainingJobDefinition.InputDataConfig")):
        return "input"
    if "Environment" in path:
        return "environment"
    return "argument"


def _short(value: Any) -> str:
    text = "(absent)" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) <= _VALUE_WIDTH:
        return text
    half = (_VALUE_WIDTH - 1) // 2  # the ends of a long URI are where two of them differ
    return f"{text[:half]}…{text[-half:]}"


def format_plan(plans: list[StepPlan]) -> list[str]:
    """The plan as people read it: one line per step, its reasons indented below."""
    marks = {"cached": "✔ cached", "runs": "▶ runs  ", "not cached": "· always"}
    lines = []
    for plan in plans:
        reuse = f" (reuses execution {plan.reused.execution})" if plan.reused else ""
        lines.append(f"{marks[plan.verdict]} {plan.name} ({plan.step_type}){reuse}")
        if plan.verdict != "cached":
            lines += [f"    {reason}" for reason in plan.reasons]
        lines += [f"    assumes {assumption}" for assumption in plan.assumes]
    cached = sum(plan.verdict == "cached" for plan in plans)
    runs = sum(plan.verdict == "runs" for plan in plans)
    lines.append(f"{cached} job step(s) from the cache, {runs} to run")
    return lines
