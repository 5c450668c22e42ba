"""`status`: the deployed pipeline's recent executions, or one execution step by step.

Who started an execution comes from what the service records (`CreatedBy` of
DescribePipelineExecution) and from the description `start` writes: a Studio user profile, the S3
trigger's role, `pipeline.py start`/the Python API, or the identity that called the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# The execution description `start` (CLI and Python API) sets, so `status` can tell its executions apart.
STARTED_BY_API = "started with pipeline.py start or the Python API"


def recent_executions(sagemaker, pipeline_name: str, limit: int = 10) -> list[dict[str, Any]]:
    summaries = sagemaker.list_pipeline_executions(
        PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending", MaxResults=limit,
    )["PipelineExecutionSummaries"]
    rows = []
    for summary in summaries:
        described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=summary["PipelineExecutionArn"])
        rows.append({
            "execution": summary["PipelineExecutionArn"].rsplit("/", 1)[-1],
            "arn": summary["PipelineExecutionArn"],
            "status": described["PipelineExecutionStatus"],
            "started": _iso(described.get("CreationTime") or summary.get("StartTime")),
            "duration_seconds": _seconds(described.get("CreationTime"), described.get("LastModifiedTime"),
                                         described["PipelineExecutionStatus"]),
            "started_by": started_by(described, pipeline_name),
            "failure_reason": described.get("FailureReason"),
        })
    return rows


def started_by(described: dict[str, Any], pipeline_name: str) -> str:
    created_by = described.get("CreatedBy") or {}
    identity = (created_by.get("IamIdentity") or {}).get("Arn", "")
    description = described.get("PipelineExecutionDescription") or ""
    if created_by.get("UserProfileName"):
        return f"Studio user {created_by['UserProfileName']}"
    if f"/{pipeline_name}-s3-trigger"[:65] in identity:
        return "S3 trigger"
    if description == STARTED_BY_API:
        return f"pipeline.py start/API as {identity or 'unknown'}"
    return identity or "unknown"


LOG_TAIL_LINES = 10
# Where SageMaker sends a job's container output: a log group per job kind, streams named after the job.
_JOB_LOG_GROUPS = {"ProcessingJob": "/aws/sagemaker/ProcessingJobs", "TrainingJob": "/aws/sagemaker/TrainingJobs"}


def job_log_tail(logs, metadata: dict[str, Any], lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines the failed step's job logged (CloudWatch Logs), or [] when there are none."""
    for kind, group in _JOB_LOG_GROUPS.items():
        job_arn = (metadata.get(kind) or {}).get("Arn")
        if not job_arn:
            continue
        streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=job_arn.rsplit("/", 1)[-1])
        tail: list[str] = []
        for stream in streams["logStreams"][:1]:  # algo-1: the host whose output names the failure
            events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"],
                                         startFromHead=False, limit=lines)["events"]
            tail = [event["message"].rstrip("\n") for event in events]
        return tail
    return []


def execution_steps(sagemaker, execution_arn: str, logs=None) -> list[dict[str, Any]]:
    """Each step of an execution; a failed job step also carries the tail of its job's log."""
    paginator = sagemaker.get_paginator("list_pipeline_execution_steps")
    steps = [step for page in paginator.paginate(PipelineExecutionArn=execution_arn, SortOrder="Ascending")
             for step in page["PipelineExecutionSteps"]]
    return [{
        "step": step["StepName"],
        "status": step.get("StepStatus", "Unknown"),
        "started": _iso(step.get("StartTime")),
        "duration_seconds": _seconds(step.get("StartTime"), step.get("EndTime"), step.get("StepStatus", "")),
        "cache_hit": "CacheHitResult" in step,
        "reused_from": (step.get("CacheHitResult") or {}).get("SourcePipelineExecutionArn"),
        "failure_reason": step.get("FailureReason"),
        "log_tail": job_log_tail(logs, step.get("Metadata") or {})
        if logs is not None and step.get("StepStatus") == "Failed" else [],
    } for step in steps]


def format_executions(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no executions yet"]
    lines = [f"{'execution':<14} {'status':<10} {'started (UTC)':<20} {'duration':>9}  started by"]
    for row in rows:
        lines.append(f"{row['execution']:<14} {row['status']:<10} {_clock(row['started']):<20} "
                     f"{_duration(row['duration_seconds']):>9}  {row['started_by']}")
        if row["failure_reason"]:
            lines.append(f"{'':<14} ✘ {row['failure_reason']}")
    return lines


def format_steps(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        cache = " (cache hit)" if row["cache_hit"] else ""
        lines.append(f"{row['step']:<18} {row['status']:<10} {_duration(row['duration_seconds']):>9}{cache}")
        if row["failure_reason"]:
            lines.append(f"{'':<18} ✘ {row['failure_reason']}")
        lines += [f"{'':<18} │ {line}" for line in row.get("log_tail") or []]
    return lines or ["no steps started yet"]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else None


def _seconds(start: datetime | None, end: datetime | None, status: str) -> float | None:
    """Seconds from start to end; None while it runs (the end is then only the last change)."""
    if not isinstance(start, datetime) or not isinstance(end, datetime) or status in ("Executing", "Starting",
                                                                                      "Stopping"):
        return None
    return round((end - start).total_seconds(), 1)


def _clock(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "running"
    minutes, rest = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest:02d}s"
