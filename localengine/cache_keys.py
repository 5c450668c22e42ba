"""A step's cache key, made of the request attributes SageMaker documents for its step type.

Source: the SageMaker Developer Guide, "Default cache key attributes by pipeline step type"
(pipelines-default-keys). Everything else in the request (instance types, output
configuration, stopping condition, role, tags, network settings) does not decide a cache hit:
changing only those reuses the earlier run, in the cloud and here alike. The step cache of the
engine and the ``plan`` prediction both use this module, so what one predicts the other does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .parameters import format_value

# Per step type: the attribute paths (top level, or one level into a child) that form the key.
CACHE_KEY_ATTRIBUTES: dict[str, tuple[tuple[str, ...], ...]] = {
    "Processing": (("AppSpecification",), ("Environment",), ("ProcessingInputs",)),
    "Training": (("AlgorithmSpecification",), ("CheckpointConfig",), ("DebugHookConfig",),
                 ("DebugRuleConfigurations",), ("Environment",), ("HyperParameters",),
                 ("InputDataConfig",)),
    "Tuning": (("HyperParameterTuningJobConfig",),
               ("TrainingJobDefinition", "AlgorithmSpecification"),
               ("TrainingJobDefinition", "HyperParameterRanges"),
               ("TrainingJobDefinition", "InputDataConfig"),
               ("TrainingJobDefinition", "StaticHyperParameters"),
               ("TrainingJobDefinition", "TuningObjective"),
               ("TrainingJobDefinitions",)),
}


def cacheable(step_type: str) -> bool:
    return step_type in CACHE_KEY_ATTRIBUTES


def cache_key_material(step_type: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The documented key attributes of a resolved request, by dotted name (absent ones left out).

    Numbers count as their text: a parameter resolved into an argument, an environment variable or
    a hyperparameter reaches the service as a string, and a Describe* call echoes it as one.
    """
    material = {}
    for path in CACHE_KEY_ATTRIBUTES[step_type]:
        value: Any = arguments
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None:
            material[".".join(path)] = _as_text(value)
    return material


def _as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_text(item) for item in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_value(value)
    return value


def cache_key(step_name: str, step_type: str, arguments: dict[str, Any]) -> str:
    """SHA-256 over the step's name, type and documented key attributes."""
    document = {"Name": step_name, "Type": step_type, "Key": cache_key_material(step_type, arguments)}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def changed_attributes(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf where two key materials differ: ``(path, before, after)``, lists by index, and
    lists of named entries (``InputName``, ``ChannelName``) by name."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for name in sorted(set(before) | set(after), key=str):
            changes += changed_attributes(before.get(name), after.get(name), _child(path, name))
        return changes
    if isinstance(before, list) and isinstance(after, list):
        named_before, named_after = _by_name(before), _by_name(after)
        if named_before is not None and named_after is not None:
            changes = []
            for name in [*named_before, *(n for n in named_after if n not in named_before)]:
                changes += changed_attributes(named_before.get(name), named_after.get(name), f"{path}['{name}']")
            return changes
        changes = []
        for index in range(max(len(before), len(after))):
            changes += changed_attributes(before[index] if index < len(before) else None,
                                          after[index] if index < len(after) else None, f"{path}[{index}]")
        return changes
    return [] if before == after else [(path, before, after)]


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _by_name(entries: list[Any]) -> dict[str, Any] | None:
    for field in ("InputName", "ChannelName", "Name"):
        if entries and all(isinstance(e, dict) and isinstance(e.get(field), str) for e in entries):
            names = [e[field] for e in entries]
            if len(set(names)) == len(names):
                return dict(zip(names, entries))
    return None
