"""Exceptions raised by the local engine."""

from __future__ import annotations

import errno


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ParameterError(EngineError):
    """A pipeline parameter override is unknown, missing or of the wrong type."""


class DefinitionError(EngineError):
    """The definition is malformed (duplicate step, cycle, dangling reference...)."""


class UnsupportedConstruct(EngineError):
    """The definition uses something the local engine cannot execute.

    The message always names the construct: a step type, a function, a condition type,
    an execution variable or a property path, and where it was found.
    """


class StepFailed(EngineError):
    """A step failed; ``reason`` is what SageMaker would show as its FailureReason."""

    def __init__(self, reason: str, *, log_path: object | None = None):
        super().__init__(reason)
        self.reason = reason
        self.log_path = log_path


class Cancelled(EngineError):
    """The run was interrupted before this job could start or finish."""


class TransientFault(EngineError):
    """A fault that the service would report under one of the retry policies' exception types
    (``exception_type``, e.g. ``SageMaker.RESOURCE_LIMIT``): a step's ``RetryPolicies`` may retry it."""

    def __init__(self, exception_type: str, message: str):
        super().__init__(message)
        self.exception_type = exception_type


class DiskFull(EngineError):
    """A write failed because its filesystem is full (or the quota is spent); the write left nothing."""


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, DiskFull) or (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT))
