"""Pipeline parameters: declared names, types, defaults and overrides.

Kept free of anything local so that the command that starts an execution on AWS can
validate its overrides with the same rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import ParameterError

ParameterValue = str | int | float | bool

_BOOLEAN_WORDS = {"true": True, "false": False}


def resolve_parameters(definition: Mapping[str, Any] | str,
                       overrides: Mapping[str, Any] | None = None) -> dict[str, ParameterValue]:
    """Return every declared parameter's typed value: the override if given, else the default.

    Override values are usually strings (as typed on a command line) and are coerced to
    the declared type: ``String``, ``Integer``, ``Float`` or ``Boolean`` (``true``/``false``).
    ``EnumValues``, when declared, restricts the value. Raises ``ParameterError`` with a
    one-line message for an unknown name, a value of the wrong type, a value outside
    ``EnumValues`` or a parameter that has no default and was not given.
    """
    overrides = dict(overrides or {})
    if isinstance(definition, str):
        definition = json.loads(definition)
    declared = list(definition.get("Parameters") or [])
    names = [parameter["Name"] for parameter in declared]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(unknown)}; declared: {', '.join(names) or '(none)'}")
    resolved = {}
    for parameter in declared:
        name = parameter["Name"]
        if name in overrides:
            raw = overrides[name]
        elif parameter.get("DefaultValue") is not None:
            raw = parameter["DefaultValue"]
        else:
            raise ParameterError(f"parameter {name} has no default value and must be given")
        resolved[name] = _coerce(name, parameter.get("Type", "String"), raw)
        _check_enum(name, resolved[name], parameter.get("EnumValues"))
    return resolved


def _coerce(name: str, declared_type: str, raw: Any) -> ParameterValue:
    text = raw if isinstance(raw, str) else format_value(raw)
    try:
        if declared_type == "String":
            return text
        if declared_type == "Integer":
            return int(text.strip())
        if declared_type == "Float":
            return _parse_float(text)
        if declared_type == "Boolean":
            return _BOOLEAN_WORDS[text.strip().lower()]
    except (ValueError, KeyError):
        raise ParameterError(f"parameter {name} is {declared_type}, got {text!r}") from None
    raise ParameterError(f"parameter {name} has unsupported type {declared_type!r}")


def _parse_float(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _check_enum(name: str, value: ParameterValue, enum_values: list[Any] | None) -> None:
    if enum_values and format_value(value) not in [format_value(v) for v in enum_values]:
        allowed = ", ".join(format_value(v) for v in enum_values)
        raise ParameterError(f"parameter {name} must be one of {allowed}, got {format_value(value)!r}")


def format_value(value: Any) -> str:
    """Render a resolved value as text the way the service does in strings and arguments."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
