"""Condition types of a Condition step: checked before the run, evaluated on resolved values."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from .errors import EngineError, UnsupportedConstruct
from .parameters import format_value
from .results import readable_number

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}
SUPPORTED_CONDITIONS = (*_COMPARISONS, "In", "Not", "Or")
_SYMBOLS = {"Equals": "==", "GreaterThan": ">", "GreaterThanOrEqualTo": ">=", "LessThan": "<",
            "LessThanOrEqualTo": "<="}


def check_condition(condition: dict[str, Any], where: str) -> None:
    """Raise ``UnsupportedConstruct`` if ``condition`` (or a nested one) has an unknown type."""
    kind = condition.get("Type")
    if kind not in SUPPORTED_CONDITIONS:
        raise UnsupportedConstruct(f"condition type {kind!r} in {where}")
    for nested in _nested(condition):
        check_condition(nested, where)


def _nested(condition: dict[str, Any]) -> list[dict[str, Any]]:
    if condition["Type"] == "Not":
        return [condition["Condition"]]
    if condition["Type"] == "Or":
        return list(condition["Conditions"])
    return []


def evaluate_condition(condition: dict[str, Any]) -> bool:
    """Evaluate a condition whose expressions were already resolved to values."""
    kind = condition["Type"]
    if kind == "Not":
        return not evaluate_condition(condition["Condition"])
    if kind == "Or":
        return any(evaluate_condition(nested) for nested in condition["Conditions"])
    if kind == "In":
        query = condition["QueryValue"]
        return any(_compare("Equals", query, value) for value in condition["Values"])
    return _compare(kind, condition["LeftValue"], condition["RightValue"])


def evaluate_all(conditions: list[dict[str, Any]]) -> bool:
    """A Condition step's outcome: all of its conditions hold."""
    return all(evaluate_condition(condition) for condition in conditions)


def describe_conditions(conditions: list[dict[str, Any]]) -> str:
    """Resolved conditions as a person reads them, e.g. ``25232.5 <= 40000.0``."""
    return " and ".join(_describe(condition) for condition in conditions)


def _describe(condition: dict[str, Any]) -> str:
    kind = condition["Type"]
    if kind == "Not":
        return f"not ({_describe(condition['Condition'])})"
    if kind == "Or":
        return "(" + " or ".join(_describe(nested) for nested in condition["Conditions"]) + ")"
    if kind == "In":
        values = ", ".join(_show(value) for value in condition["Values"])
        return f"{_show(condition['QueryValue'])} in [{values}]"
    return f"{_show(condition['LeftValue'])} {_SYMBOLS[kind]} {_show(condition['RightValue'])}"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return readable_number(value)
    return repr(value) if isinstance(value, str) else format_value(value)


def _compare(kind: str, left: Any, right: Any) -> bool:
    left, right = _comparable(left, right)
    try:
        return _COMPARISONS[kind](left, right)
    except TypeError:
        raise EngineError(f"{kind} cannot compare {left!r} with {right!r}") from None


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Bring both sides to one type: numbers compare as numbers even when one side is
    text (a JsonGet of "0.5"), booleans compare by their text form."""
    if _is_number(left) and isinstance(right, str):
        return left, _as_number(right, left)
    if isinstance(left, str) and _is_number(right):
        return _as_number(left, right), right
    if isinstance(left, bool) or isinstance(right, bool):
        return format_value(left), format_value(right)
    return left, right


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_number(text: str, other: Any) -> Any:
    try:
        return float(text)
    except ValueError:
        raise EngineError(f"cannot compare text {text!r} with number {other!r}") from None
