"""A step's ``RetryPolicies``, applied as the service applies them.

Each policy names exception types; a failure of one of those types is retried after
``IntervalSeconds`` times ``BackoffRate`` to the power of the retries already made, until
``MaxAttempts`` retries were made or ``ExpireAfterMin`` minutes passed since the step started
(page "Retry Policy for Pipeline Steps"; the SDK's ``RetryPolicy`` takes exactly one of the two
limits). Locally, the faults that carry such a type are those that ``TransientFault`` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import DefinitionError

EXCEPTION_TYPES = ("Step.SERVICE_FAULT", "Step.THROTTLING", "SageMaker.JOB_INTERNAL_ERROR",
                   "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT")
MAX_ATTEMPTS_CAP = 20  # the SDK's caps, which it takes from the service
MAX_EXPIRE_AFTER_MINUTES = 14400


@dataclass(frozen=True)
class RetryPolicy:
    exception_types: tuple[str, ...]
    interval_seconds: float
    backoff_rate: float
    max_attempts: int | None
    expire_after_minutes: float | None

    @classmethod
    def parse(cls, document: Any, where: str) -> "RetryPolicy":
        if not isinstance(document, dict):
            raise DefinitionError(f"{where}: a retry policy is an object, got {document!r}")
        types = document.get("ExceptionType") or []
        unknown = [name for name in types if name not in EXCEPTION_TYPES]
        if not types or unknown:
            raise DefinitionError(f"{where}: retry policy exception types {unknown or types!r}; "
                                  f"known: {', '.join(EXCEPTION_TYPES)}")
        max_attempts, expire_after = document.get("MaxAttempts"), document.get("ExpireAfterMin")
        if (max_attempts is None) == (expire_after is None):
            raise DefinitionError(f"{where}: a retry policy takes exactly one of MaxAttempts and ExpireAfterMin")
        if max_attempts is not None and not 0 < max_attempts <= MAX_ATTEMPTS_CAP:
            raise DefinitionError(f"{where}: MaxAttempts {max_attempts} is not in 1..{MAX_ATTEMPTS_CAP}")
        if expire_after is not None and not 0 < expire_after <= MAX_EXPIRE_AFTER_MINUTES:
            raise DefinitionError(f"{where}: ExpireAfterMin {expire_after} is not in 1..{MAX_EXPIRE_AFTER_MINUTES}")
        interval, backoff = document.get("IntervalSeconds", 1), document.get("BackoffRate", 2.0)
        if interval < 0 or backoff < 0:
            raise DefinitionError(f"{where}: IntervalSeconds and BackoffRate may not be negative")
        return cls(tuple(types), float(interval), float(backoff), max_attempts, expire_after)

    def delay_before_retry(self, retries_made: int, seconds_since_start: float) -> float | None:
        """Seconds to wait before the next retry, or None when this policy allows no more."""
        if self.max_attempts is not None and retries_made >= self.max_attempts:
            return None
        delay = self.interval_seconds * self.backoff_rate ** retries_made
        if self.expire_after_minutes is not None and seconds_since_start + delay > self.expire_after_minutes * 60:
            return None
        return delay


def parse_retry_policies(documents: Any, where: str) -> tuple[RetryPolicy, ...]:
    if documents is None:
        return ()
    if not isinstance(documents, list):
        raise DefinitionError(f"{where}: RetryPolicies is a list, got {documents!r}")
    return tuple(RetryPolicy.parse(document, where) for document in documents)


def policy_for(policies: tuple[RetryPolicy, ...], exception_type: str) -> RetryPolicy | None:
    """The first policy that names ``exception_type``."""
    return next((policy for policy in policies if exception_type in policy.exception_types), None)
