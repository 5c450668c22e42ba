"""Policy checks on a built definition and its settings, before anything reaches AWS (`validate --policy`;
`upsert` runs them): rules in the spirit of pipeline policy linters, each with an id and a sentence.

| rule | holds when |
| --- | --- |
| POL001 | every job step has a runtime limit |
| POL002 | with a KMS key set, every job's volumes and outputs are encrypted with it |
| POL003 | with network isolation set, every job runs without network access (but the steps that must call an AWS API) |
| POL004 | with subnets set, every job runs in that VPC |
| POL005 | every job step carries the required tags |
| POL006 | no policy of the project's lets a principal pass any role (`iam:PassRole` on `*`) |
| POL007 | with an allowed list set, every instance type (parameter defaults, literals, endpoint) is on it |
| POL008 | the execution role is not an obviously administrative one |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from pipelines import iam
from pipelines.settings import Settings

# Steps that cannot run isolated, and why (README: "The lookup needs the SageMaker API").
NEEDS_NETWORK = {"FindChampion": "asks the Model Registry's API for the approved version"}
ADMINISTRATIVE_ROLE = re.compile(r"admin|poweruser|fullaccess|organizationaccountaccessrole|^root$", re.IGNORECASE)
JOB_TYPES = ("Processing", "Training", "Tuning")


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule} {self.where}: {self.message}"


@dataclass(frozen=True)
class JobView:
    """Where each checked field lies in one job step's request, whatever its type."""

    name: str
    step_type: str
    arguments: dict

    @property
    def job(self) -> dict:
        return self.arguments["TrainingJobDefinition"] if self.step_type == "Tuning" else self.arguments

    def runtime_limit(self) -> Any:
        return (self.job.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")

    def volume_key(self) -> Any:
        if self.step_type == "Processing":
            return (self.arguments.get("ProcessingResources") or {}).get("ClusterConfig", {}).get("VolumeKmsKeyId")
        return (self.job.get("ResourceConfig") or {}).get("VolumeKmsKeyId")

    def output_key(self) -> Any:
        if self.step_type == "Processing":
            return (self.arguments.get("ProcessingOutputConfig") or {}).get("KmsKeyId")
        return (self.job.get("OutputDataConfig") or {}).get("KmsKeyId")

    def isolated(self) -> bool:
        network = (self.arguments.get("NetworkConfig") or {}) if self.step_type == "Processing" else self.job
        return network.get("EnableNetworkIsolation") is True

    def vpc(self) -> dict:
        if self.step_type == "Processing":
            return (self.arguments.get("NetworkConfig") or {}).get("VpcConfig") or {}
        return self.job.get("VpcConfig") or {}

    def tag_keys(self) -> set[str]:
        return {tag.get("Key") for tag in self.arguments.get("Tags") or []}

    def instance_types(self) -> list[Any]:
        if self.step_type == "Processing":
            return [(self.arguments.get("ProcessingResources") or {}).get("ClusterConfig", {}).get("InstanceType")]
        return [(self.job.get("ResourceConfig") or {}).get("InstanceType")]


def job_steps(document: dict) -> Iterator[JobView]:
    def walk(steps):
        for step in steps:
            if step.get("Type") in JOB_TYPES:
                yield JobView(step["Name"], step["Type"], step.get("Arguments") or {})
            arguments = step.get("Arguments") or {}
            yield from walk([*arguments.get("IfSteps", []), *arguments.get("ElseSteps", [])])

    yield from walk(document.get("Steps", []))


def check_policy(document: dict, settings: Settings) -> list[Violation]:
    """Every violation of the rules, in rule order; [] when the definition and settings comply."""
    jobs = list(job_steps(document))
    defaults = {p["Name"]: p.get("DefaultValue") for p in document.get("Parameters", [])}
    checks: list[Callable[[], Iterator[Violation]]] = [
        lambda: _runtime_limits(jobs), lambda: _encryption(jobs, settings), lambda: _isolation(jobs, settings),
        lambda: _vpc(jobs, settings), lambda: _tags(jobs, settings), lambda: _pass_role(settings),
        lambda: _instance_types(jobs, defaults, settings), lambda: _role(settings),
    ]
    return [violation for check in checks for violation in check()]


def _runtime_limits(jobs: list[JobView]) -> Iterator[Violation]:
    for job in jobs:
        if not job.runtime_limit():
            yield Violation("POL001", job.name, "no StoppingCondition.MaxRuntimeInSeconds: a stuck job would run "
                                                "and bill until someone stops it; give it a runtime limit")


def _encryption(jobs: list[JobView], settings: Settings) -> Iterator[Violation]:
    if not settings.kms_key_id:
        return
    for job in jobs:
        for what, key in (("volume", job.volume_key()), ("output", job.output_key())):
            if key != settings.kms_key_id:
                yield Violation("POL002", job.name, f"its {what} is not encrypted with the KMS key "
                                                    f"{settings.kms_key_id} (it names {key or 'none'})")


def _isolation(jobs: list[JobView], settings: Settings) -> Iterator[Violation]:
    if not settings.network_isolation:
        return
    for job in jobs:
        if job.name not in NEEDS_NETWORK and not job.isolated():
            yield Violation("POL003", job.name, "runs with network access although --network-isolation is set")


def _vpc(jobs: list[JobView], settings: Settings) -> Iterator[Violation]:
    wanted = settings.vpc_config
    if not wanted:
        return
    for job in jobs:
        vpc = job.vpc()
        if sorted(vpc.get("Subnets") or []) != sorted(wanted["Subnets"]) or \
                sorted(vpc.get("SecurityGroupIds") or []) != sorted(wanted["SecurityGroupIds"]):
            yield Violation("POL004", job.name, f"does not run in the subnets {', '.join(wanted['Subnets'])} "
                                                "and security groups the settings name")


def _tags(jobs: list[JobView], settings: Settings) -> Iterator[Violation]:
    required = set(settings.required_tag_keys)
    for job in jobs:
        missing = sorted(required - job.tag_keys())
        if missing:
            yield Violation("POL005", job.name, f"lacks the required tag(s) {', '.join(missing)}; set them with "
                                                "--tags Key=Value")


def pass_role_wildcards(document: dict) -> list[str]:
    """Sids of statements allowing iam:PassRole on every role."""
    found = []
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if statement.get("Effect") == "Allow" and any(a in ("iam:PassRole", "iam:*", "*") for a in actions) and \
                any(resource == "*" or resource.endswith(":role/*") for resource in resources):
            found.append(statement.get("Sid", "(no Sid)"))
    return found


def _pass_role(settings: Settings) -> Iterator[Violation]:
    for principal, make in (("execution", iam.execution_role_policy), ("deployer", iam.deployer_policy),
                            ("model-deployer", iam.model_deployer_policy)):
        for sid in pass_role_wildcards(make(settings)):
            yield Violation("POL006", f"iam-policy {principal}", f"statement {sid} lets it pass any role")


def _instance_types(jobs: list[JobView], defaults: dict, settings: Settings) -> Iterator[Violation]:
    allowed = set(settings.allowed_instance_type_list)
    if not allowed:
        return
    users: dict[tuple[str, Any], list[str]] = {}  # (where it is set, instance type) -> the steps using it
    for job in jobs:
        for value in job.instance_types():
            if isinstance(value, dict) and "Get" in value:
                name = value["Get"].removeprefix("Parameters.")
                users.setdefault((f"parameter {name}", defaults.get(name)), []).append(job.name)
            else:
                users.setdefault((job.name, value), []).append(job.name)
    if settings.endpoint_instance_type:
        users.setdefault(("endpoint", settings.endpoint_instance_type), []).append("deploy")
    for (where, value), steps in users.items():
        if value not in allowed:
            yield Violation("POL007", where, f"instance type {value} (used by {', '.join(steps)}) is not among the "
                                             f"allowed {', '.join(sorted(allowed))}")


def _role(settings: Settings) -> Iterator[Violation]:
    name = settings.role_arn.rsplit("/", 1)[-1]
    if ADMINISTRATIVE_ROLE.search(name):
        yield Violation("POL008", "role", f"{settings.role_arn} looks administrative; run the pipeline as a role "
                                          "with `iam-policy execution` instead")
