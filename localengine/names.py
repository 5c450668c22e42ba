"""Names and ARNs the engine makes up, shaped like the service's."""

from __future__ import annotations

import re
import secrets
import string

REGION = "local"
ACCOUNT = "000000000000"
_ALPHABET = string.ascii_lowercase + string.digits
_NOT_ALLOWED_IN_JOB_NAME = re.compile(r"[^A-Za-z0-9]+")


def random_token(length: int) -> str:
    """Lower-case letters and digits, like an execution id or a job name suffix."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def arn(resource: str) -> str:
    """A SageMaker ARN in the engine's pseudo region and account."""
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{resource}"


def job_name(execution_id: str, step_name: str, *, max_length: int = 63) -> str:
    """``pipelines-<execution id>-<step>-<random>``, the step part trimmed to ``max_length``.

    Tuning job names may only have 32 characters, so for them the ``pipelines-`` head is
    dropped to leave room for the step name.
    """
    head = f"pipelines-{execution_id}-" if max_length >= 48 else f"{execution_id}-"
    suffix = f"-{random_token(8)}"
    step = _NOT_ALLOWED_IN_JOB_NAME.sub("-", step_name).strip("-") or "step"
    step = step[:max_length - len(head) - len(suffix)].rstrip("-")
    return f"{head}{step}{suffix}"
