"""The parsed, validated shape of one pipeline step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .retries import RetryPolicy


@dataclass(frozen=True)
class Gate:
    """The step runs only if ``condition`` evaluates to ``outcome`` (True = IfSteps)."""

    condition: str
    outcome: bool


@dataclass(frozen=True)
class CachePolicy:
    """``CacheConfig`` of a step; ``expire_after`` None means entries never expire."""

    expire_after: timedelta | None


@dataclass
class StepSpec:
    """One step of the definition, with everything the scheduler needs to know about it.

    ``arguments`` are unresolved (still holding ``Get``/``Std:*`` expressions). For a
    Condition step they hold only ``Conditions``; its branches are ``if_steps``/``else_steps``.
    """

    name: str
    type: str
    arguments: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    gates: tuple[Gate, ...] = ()
    property_files: tuple[dict[str, Any], ...] = ()
    cache: CachePolicy | None = None
    retry_policies: tuple[RetryPolicy, ...] = ()
    if_steps: tuple[str, ...] = ()
    else_steps: tuple[str, ...] = ()
