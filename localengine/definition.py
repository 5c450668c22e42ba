"""Parsing and checking a pipeline definition before anything runs.

Everything the engine cannot execute is reported here, as ``UnsupportedConstruct``,
so a run never stops half way through for a reason that was visible up front.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .conditions import check_condition
from .errors import DefinitionError, UnsupportedConstruct
from .expressions import SUPPORTED_EXECUTION_VARIABLES, iter_references, referenced_step
from .kinds import STEP_KINDS
from .paths import PathError, parse_path
from .retries import parse_retry_policies
from .spec import CachePolicy, Gate, StepSpec

# ISO-8601 durations, and the short forms the service documents ("30d", "5y", "T16m", "30dT5h":
# page "Turn on step caching"): the leading P may be left out and units are case-insensitive.
_DURATION = re.compile(
    r"P?(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?", re.IGNORECASE)
_DAYS_PER_UNIT = {"years": 365, "months": 30, "weeks": 7, "days": 1}


@dataclass
class PipelineGraph:
    """The steps of a definition, in definition order (branch steps after their condition)."""

    steps: dict[str, StepSpec]
    parameter_names: tuple[str, ...]


def load_definition(definition: Mapping[str, Any] | str) -> dict[str, Any]:
    """The definition as a dict, from a dict or its JSON text."""
    if isinstance(definition, str):
        try:
            return json.loads(definition)
        except json.JSONDecodeError as error:
            raise DefinitionError(f"the definition is not valid JSON: {error}") from None
    return dict(definition)


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration such as ``P30D`` or ``PT1H30M``, or a short form such as ``30d`` or
    ``T16m`` (a month counts 30 days, a year 365)."""
    match = _DURATION.fullmatch(text or "")
    if not match or not any(match.groupdict().values()) or text.upper().endswith("T"):
        raise DefinitionError(f"ExpireAfter {text!r} is not a duration like P30D, PT1H, 30d or T16m")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    days = sum(parts.get(unit, 0) * factor for unit, factor in _DAYS_PER_UNIT.items())
    return timedelta(days=days, hours=parts.get("hours", 0), minutes=parts.get("minutes", 0),
                     seconds=parts.get("seconds", 0))


def parse_definition(definition: Mapping[str, Any] | str) -> PipelineGraph:
    """Parse and check a definition; raises ``DefinitionError`` or ``UnsupportedConstruct``."""
    document = load_definition(definition)
    raw_steps: dict[str, dict[str, Any]] = {}
    gates: dict[str, list[Gate]] = {}
    _collect_steps(document.get("Steps") or [], raw_steps, gates)
    steps = {name: _step_spec(raw, tuple(gates.get(name, ()))) for name, raw in raw_steps.items()}
    graph = PipelineGraph(steps, tuple(p["Name"] for p in document.get("Parameters") or []))
    for spec in steps.values():
        _check_step(spec, graph)
    _check_acyclic(graph)
    return graph


def _collect_steps(entries: list[Any], raw_steps: dict[str, dict[str, Any]],
                   gates: dict[str, list[Gate]], gate: Gate | None = None) -> None:
    """Gather steps from the top level and, recursively, from condition branches.

    A branch entry is the step's full definition (what the SDK emits) or just its name.
    """
    for entry in entries:
        name = entry if isinstance(entry, str) else entry.get("Name")
        if not name:
            raise DefinitionError(f"a step has no Name: {json.dumps(entry)[:200]}")
        if gate:
            gates.setdefault(name, []).append(gate)
        if isinstance(entry, dict) and set(entry) != {"Name"}:
            if name in raw_steps and raw_steps[name] != entry:
                raise DefinitionError(f"step name {name} is defined twice")
            raw_steps[name] = entry
            if entry.get("Type") == "Condition":
                arguments = entry.get("Arguments") or {}
                _collect_steps(arguments.get("IfSteps") or [], raw_steps, gates, Gate(name, True))
                _collect_steps(arguments.get("ElseSteps") or [], raw_steps, gates, Gate(name, False))


# The service's limit and pattern for a step name (PipelineExecutionStep.StepName).
_STEP_NAME = re.compile(r"[A-Za-z0-9\-_]{1,64}")


def _step_spec(raw: dict[str, Any], gates: tuple[Gate, ...]) -> StepSpec:
    name, step_type = raw["Name"], raw.get("Type")
    if not _STEP_NAME.fullmatch(name):
        raise DefinitionError(f"step name {name!r}: ValidationException: a step name is 1 to 64 letters, digits, "
                              "hyphens or underscores (SageMaker refuses the definition)")
    arguments = dict(raw.get("Arguments") or {})
    branches: dict[str, tuple[str, ...]] = {}
    if step_type == "Condition":
        branches = {key: tuple(e if isinstance(e, str) else e["Name"] for e in arguments.pop(key, None) or [])
                    for key in ("IfSteps", "ElseSteps")}
    data_dependencies = [referenced_step(path) for path in iter_references(arguments, f"step {name}")]
    depends_on = [*(raw.get("DependsOn") or []), *filter(None, data_dependencies),
                  *(gate.condition for gate in gates)]
    return StepSpec(
        name=name, type=step_type, arguments=arguments,
        depends_on=tuple(dict.fromkeys(depends_on)), gates=gates,
        property_files=tuple(raw.get("PropertyFiles") or []),
        cache=_cache_policy(raw.get("CacheConfig")),
        retry_policies=parse_retry_policies(raw.get("RetryPolicies"), f"step {name}"),
        if_steps=branches.get("IfSteps", ()), else_steps=branches.get("ElseSteps", ()))


def _cache_policy(config: dict[str, Any] | None) -> CachePolicy | None:
    if not config or not config.get("Enabled"):
        return None
    expire_after = config.get("ExpireAfter")
    return CachePolicy(parse_duration(expire_after) if expire_after else None)


def _check_step(spec: StepSpec, graph: PipelineGraph) -> None:
    kind = STEP_KINDS.get(spec.type)
    if kind is None:
        raise UnsupportedConstruct(f"step type {spec.type!r} (step {spec.name}); "
                                   f"supported: {', '.join(STEP_KINDS)}")
    for dependency in spec.depends_on:
        if dependency not in graph.steps:
            raise DefinitionError(f"step {spec.name} depends on unknown step {dependency}")
        if dependency == spec.name:
            raise DefinitionError(f"step {spec.name} depends on itself")
    for path in iter_references(spec.arguments, f"step {spec.name}"):
        _check_reference(path, spec.name, graph)
    for name in (*spec.if_steps, *spec.else_steps):
        if name not in graph.steps:
            raise DefinitionError(f"condition step {spec.name} names unknown step {name}")
    if spec.type == "Condition":
        for condition in spec.arguments.get("Conditions") or []:
            check_condition(condition, f"step {spec.name}")
    kind.check(spec)


def _check_reference(path: str, step_name: str, graph: PipelineGraph) -> None:
    where = f"step {step_name}"
    root, _, rest = path.partition(".")
    if root == "Parameters":
        if rest not in graph.parameter_names:
            raise DefinitionError(f"{where} references undeclared parameter {rest}")
    elif root == "Execution":
        if rest not in SUPPORTED_EXECUTION_VARIABLES:
            raise UnsupportedConstruct(f"execution variable Execution.{rest} in {where}")
    elif root == "Steps":
        _check_property_reference(path, rest, where, graph)
    else:
        raise UnsupportedConstruct(f"reference {path!r} in {where}")


def _check_property_reference(path: str, rest: str, where: str, graph: PipelineGraph) -> None:
    target_name, _, property_path = rest.partition(".")
    target = graph.steps.get(target_name)
    if target is None:
        raise DefinitionError(f"{where} references unknown step {target_name} ({path})")
    try:
        segments = parse_path(property_path)
    except PathError as error:
        raise DefinitionError(f"{where}: property reference {path!r}: {error}") from None
    root = segments[0].value
    if root == "PropertyFiles":
        declared = [d["PropertyFileName"] for d in target.property_files]
        if len(segments) != 2 or segments[1].value not in declared:
            raise DefinitionError(f"{where} references {path}, but step {target_name} "
                                  f"declares property files: {', '.join(declared) or '(none)'}")
    elif root not in STEP_KINDS[target.type].property_roots(target):
        raise UnsupportedConstruct(f"property path {path} in {where}: a {target.type} step "
                                   f"exposes {', '.join(sorted(STEP_KINDS[target.type].property_roots(target)))}")


def _check_acyclic(graph: PipelineGraph) -> None:
    state: dict[str, str] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise DefinitionError(f"dependency cycle: {' -> '.join((*trail, name))}")
        state[name] = "visiting"
        for dependency in graph.steps[name].depends_on:
            visit(dependency, (*trail, name))
        state[name] = "done"

    for name in graph.steps:
        visit(name, ())
