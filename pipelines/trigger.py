"""The S3 trigger: an EventBridge rule that starts the pipeline when a data file lands, no Lambda.

`EVENT_PARAMETERS` is the one statement of how an S3 `Object Created` event becomes pipeline
parameters: the rule's target, the CloudFormation template and `run --event` all use it. S3 puts
the object key into its events URL-encoded (a space becomes `+`), and a rule can pass only whole
JSON paths, so the rule also passes `InputKeyEncoding=url` and the pipeline's LocateInput step
decodes the key before anything reads the data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, unquote_plus

import boto3
import yaml
from botocore.exceptions import ClientError

from pipelines.deploy import RETRYING, DeployError
from pipelines.settings import Settings

EVENT_PARAMETERS = {
    "InputDataBucket": "$.detail.bucket.name",
    "InputDataKey": "$.detail.object.key",
    "InputKeyEncoding": "url",
}
DEFAULT_SUFFIX = ".csv"
# S3's "safe characters" for keys: the encoded form of a prefix made of them is the prefix itself,
# so the rule's pattern (which sees encoded keys) matches what the user typed.
_SAFE_KEY_PART = re.compile(r"^[A-Za-z0-9!\-_.'()/]*$")
_TRIGGER_TAG = "house-price-pipeline:trigger"


@dataclass(frozen=True)
class TriggerSpec:
    settings: Settings
    prefix: str
    suffix: str = DEFAULT_SUFFIX

    def __post_init__(self) -> None:
        for flag, value in (("--prefix", self.prefix), ("--suffix", self.suffix)):
            if not _SAFE_KEY_PART.match(value):
                raise DeployError(
                    f"{flag} {value!r}: S3 URL-encodes keys in its events, so a rule pattern can only match a "
                    "prefix or suffix of letters, digits and ! - _ . ' ( ) /; rename the folder (object names "
                    "under it may hold any character: the pipeline decodes them)")
        if self.prefix.startswith("/"):
            raise DeployError(f"--prefix {self.prefix!r}: S3 keys do not start with /; drop the leading /")

    @property
    def name(self) -> str:
        return f"{self.settings.pipeline_name}-s3-trigger"[:64]

    @property
    def key_wildcard(self) -> str:
        return f"{self.prefix}*{self.suffix}"

    def event_pattern(self) -> dict[str, Any]:
        return {"source": ["aws.s3"], "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [self.settings.bucket]},
                           "object": {"key": [{"wildcard": self.key_wildcard}]}}}

    def pipeline_arn(self, account: str, name: str | None = None) -> str:
        """SageMaker writes pipeline names in lower case in ARNs."""
        name = self.settings.pipeline_name.lower() if name is None else name
        return f"arn:aws:sagemaker:{self.settings.region}:{account}:pipeline/{name}"

    def startable_arns(self, account: str) -> list[str]:
        """Both spellings, so the policy is exact whichever one a caller presents."""
        return sorted({self.pipeline_arn(account), self.pipeline_arn(account, self.settings.pipeline_name)})


def pipeline_parameters(mapping: Mapping[str, str] = EVENT_PARAMETERS) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in mapping.items()]


def parameters_from_event(event: Mapping[str, Any]) -> dict[str, str]:
    """What the rule's target hands the pipeline for this event: each `$.a.b` path read from it."""
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        raise DeployError("the event is not an S3 'Object Created' event (source aws.s3, detail-type "
                          f"'Object Created'); got source {event.get('source')!r}, "
                          f"detail-type {event.get('detail-type')!r}")
    values = {}
    for name, value in EVENT_PARAMETERS.items():
        if value.startswith("$."):
            found: Any = event
            for part in value[2:].split("."):
                found = found.get(part) if isinstance(found, dict) else None
            if not isinstance(found, str) or not found:
                raise DeployError(f"the event has no {value[2:]}; an S3 Object Created event carries it")
            value = found
        values[name] = value
    return values


def event_input(event_file: Path) -> tuple[str, dict[str, str]]:
    """For `run --event`: where the event's object is (its key decoded, as S3 stores it) and the
    parameters the rule would start the pipeline with."""
    try:
        event = json.loads(event_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"--event {event_file}: no such file") from None
    except json.JSONDecodeError as error:
        raise DeployError(f"--event {event_file} is not JSON: {error}") from None
    parameters = parameters_from_event(event)
    return f"s3://{parameters['InputDataBucket']}/{unquote_plus(parameters['InputDataKey'])}", parameters


def trust_policy() -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def start_policy(pipeline_arns: list[str] | str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "StartThisPipelineOnly", "Effect": "Allow",
        "Action": "sagemaker:StartPipelineExecution", "Resource": pipeline_arns}]}


@dataclass(frozen=True)
class TriggerClients:
    events: Any
    iam: Any
    sts: Any
    s3: Any

    @classmethod
    def for_settings(cls, settings: Settings) -> TriggerClients:
        session = boto3.Session(region_name=settings.region)
        return cls(*(session.client(name, config=RETRYING) for name in ("events", "iam", "sts", "s3")))


def bucket_sends_events(s3, bucket: str) -> bool:
    """Whether the bucket publishes its events to EventBridge (off by default; the one prerequisite)."""
    return "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket=bucket)


def enable_bucket_events_hint(bucket: str) -> str:
    return (f"⚠ bucket {bucket} does not send its events to EventBridge yet, so nothing will start the pipeline: "
            f"turn it on in the S3 console (Properties > Event notifications > Amazon EventBridge) or with "
            f"`aws s3api put-bucket-notification-configuration --bucket {bucket} --notification-configuration "
            "'{\"EventBridgeConfiguration\": {}}'` (that command replaces the bucket's other notification "
            "settings: merge them in if it has any)")


def install(spec: TriggerSpec, clients: TriggerClients) -> list[str]:
    """Create the role and the rule, or bring them in line; one line per resource says what happened."""
    account = clients.sts.get_caller_identity()["Account"]
    pipeline_arn = spec.pipeline_arn(account)
    tags = [{"Key": key, "Value": value} for key, value in {**spec.settings.tag_map, _TRIGGER_TAG: spec.name}.items()]
    lines = [_ensure_role(spec, clients.iam, tags),
             _ensure_role_policy(spec, clients.iam, spec.startable_arns(account))]
    role_arn = clients.iam.get_role(RoleName=spec.name)["Role"]["Arn"]
    lines.append(_ensure_rule(spec, clients.events, tags))
    lines.append(_ensure_target(spec, clients.events, pipeline_arn, role_arn))
    if not bucket_sends_events(clients.s3, spec.settings.bucket):
        lines.append(enable_bucket_events_hint(spec.settings.bucket))
    return lines


def _ensure_role(spec: TriggerSpec, iam, tags: list[dict]) -> str:
    try:
        role = iam.get_role(RoleName=spec.name)["Role"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            raise
        role = iam.create_role(RoleName=spec.name, AssumeRolePolicyDocument=json.dumps(trust_policy()),
                               Description=f"EventBridge starts SageMaker pipeline {spec.settings.pipeline_name}",
                               Tags=tags)["Role"]
        return f"created IAM role {role['Arn']} (assumed by events.amazonaws.com)"
    if _policy(role["AssumeRolePolicyDocument"]) == trust_policy():
        return f"unchanged IAM role {role['Arn']}"
    iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=json.dumps(trust_policy()))
    return f"updated IAM role {role['Arn']}: trust policy"


def _ensure_role_policy(spec: TriggerSpec, iam, pipeline_arns: list[str]) -> str:
    wanted = start_policy(pipeline_arns)
    pipeline_arn = pipeline_arns[0]
    try:
        current = _policy(iam.get_role_policy(RoleName=spec.name, PolicyName="StartPipeline")["PolicyDocument"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            raise
        current = None
    if current == wanted:
        return f"unchanged role policy StartPipeline (sagemaker:StartPipelineExecution on {pipeline_arn})"
    iam.put_role_policy(RoleName=spec.name, PolicyName="StartPipeline", PolicyDocument=json.dumps(wanted))
    verb = "created" if current is None else "updated"
    return f"{verb} role policy StartPipeline (sagemaker:StartPipelineExecution on {pipeline_arn})"


def _ensure_rule(spec: TriggerSpec, events, tags: list[dict]) -> str:
    rule = _described_rule(events, spec.name)
    pattern = spec.event_pattern()
    description = f"Start {spec.settings.pipeline_name} when s3://{spec.settings.bucket}/{spec.key_wildcard} is created"
    if rule and json.loads(rule["EventPattern"]) == pattern and rule.get("State") == "ENABLED" \
            and rule.get("Description") == description:
        return f"unchanged EventBridge rule {rule['Arn']}"
    arn = events.put_rule(Name=spec.name, EventPattern=json.dumps(pattern), State="ENABLED",
                          Description=description, **({} if rule else {"Tags": tags}))["RuleArn"]
    return f"{'updated' if rule else 'created'} EventBridge rule {arn} on s3://{spec.settings.bucket}/{spec.key_wildcard}"


def _ensure_target(spec: TriggerSpec, events, pipeline_arn: str, role_arn: str) -> str:
    wanted = {"Id": "pipeline", "Arn": pipeline_arn, "RoleArn": role_arn,
              "SageMakerPipelineParameters": {"PipelineParameterList": pipeline_parameters()}}
    current = events.list_targets_by_rule(Rule=spec.name)["Targets"]
    if current == [wanted]:
        return f"unchanged target {pipeline_arn}"
    stale = [target["Id"] for target in current if target["Id"] != "pipeline"]
    if stale:
        events.remove_targets(Rule=spec.name, Ids=stale)
    events.put_targets(Rule=spec.name, Targets=[wanted])
    mapping = ", ".join(f"{name}={value}" for name, value in EVENT_PARAMETERS.items())
    return f"{'updated' if current else 'created'} target {pipeline_arn} with {mapping}"


def remove(spec: TriggerSpec, clients: TriggerClients) -> list[str]:
    """Delete exactly what `install` created: the rule's target, the rule, the role's policy, the role."""
    lines = []
    if _described_rule(clients.events, spec.name):
        targets = [t["Id"] for t in clients.events.list_targets_by_rule(Rule=spec.name)["Targets"]]
        if targets:
            clients.events.remove_targets(Rule=spec.name, Ids=targets)
        clients.events.delete_rule(Name=spec.name)
        lines.append(f"deleted EventBridge rule {spec.name} and its target")
    try:
        clients.iam.delete_role_policy(RoleName=spec.name, PolicyName="StartPipeline")
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            raise
    try:
        clients.iam.delete_role(RoleName=spec.name)
        lines.append(f"deleted IAM role {spec.name}")
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            raise
    return lines or [f"no trigger named {spec.name} to remove"]


def show(spec: TriggerSpec, clients: TriggerClients) -> dict[str, Any] | None:
    """The rule and its targets as deployed, or None."""
    rule = _described_rule(clients.events, spec.name)
    if rule is None:
        return None
    rule = {key: value for key, value in rule.items() if key != "ResponseMetadata"}
    rule["EventPattern"] = json.loads(rule["EventPattern"])
    return {"Rule": rule, "Targets": clients.events.list_targets_by_rule(Rule=spec.name)["Targets"]}


def _described_rule(events, name: str) -> dict | None:
    try:
        return events.describe_rule(Name=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def _policy(document: Any) -> Any:
    """IAM returns policy documents as (URL-encoded) JSON text or already parsed, depending on the client."""
    return json.loads(unquote(document)) if isinstance(document, str) else document


def cloudformation_template() -> str:
    """The same trigger for teams that deploy infrastructure as code (infrastructure/s3-trigger.yaml)."""
    sub = "!Sub"
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "Start a SageMaker pipeline when a data file lands under an S3 prefix (EventBridge, no "
                       "Lambda). Generated by `python pipeline.py trigger template`; do not edit by hand.",
        "Parameters": {
            "PipelineName": {"Type": "String", "AllowedPattern": "^[a-z0-9](-*[a-z0-9]){0,255}$",
                             "Description": "name of the SageMaker pipeline to start, in lower case as its ARN "
                                            "spells it (HousePricePipeline: housepricepipeline)"},
            "BucketName": {"Type": "String", "Description": "bucket with EventBridge notifications turned on"},
            "KeyPrefix": {"Type": "String", "Default": "", "AllowedPattern": _SAFE_KEY_PART.pattern,
                          "Description": "key prefix of the files that start a run, e.g. incoming/"},
            "KeySuffix": {"Type": "String", "Default": DEFAULT_SUFFIX, "AllowedPattern": _SAFE_KEY_PART.pattern,
                          "Description": "key suffix of the files that start a run (empty: any)"},
        },
        "Resources": {
            "TriggerRole": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": trust_policy(),
                "Policies": [{"PolicyName": "StartPipeline", "PolicyDocument": start_policy(
                    f"{sub} arn:${{AWS::Partition}}:sagemaker:${{AWS::Region}}:${{AWS::AccountId}}:pipeline/"
                    "${PipelineName}")}]}},
            "TriggerRule": {"Type": "AWS::Events::Rule", "Properties": {
                "Description": f"{sub} Start ${{PipelineName}} when s3://${{BucketName}}/${{KeyPrefix}}*${{KeySuffix}} "
                               "is created",
                "State": "ENABLED",
                "EventPattern": {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {
                    "bucket": {"name": [{"Ref": "BucketName"}]},
                    "object": {"key": [{"wildcard": f"{sub} ${{KeyPrefix}}*${{KeySuffix}}"}]}}},
                "Targets": [{
                    "Id": "pipeline",
                    "Arn": f"{sub} arn:${{AWS::Partition}}:sagemaker:${{AWS::Region}}:${{AWS::AccountId}}:pipeline/"
                           "${PipelineName}",
                    "RoleArn": {"Fn::GetAtt": ["TriggerRole", "Arn"]},
                    "SageMakerPipelineParameters": {"PipelineParameterList": pipeline_parameters()}}]}},
        },
        "Outputs": {"RuleArn": {"Value": {"Fn::GetAtt": ["TriggerRule", "Arn"]}},
                    "RoleArn": {"Value": {"Fn::GetAtt": ["TriggerRole", "Arn"]}}},
    }
    text = yaml.safe_dump(template, sort_keys=False, width=120, allow_unicode=True)
    # "!Sub text" markers become the short-form intrinsic function CloudFormation reads.
    return re.sub(r"'!Sub ([^']*)'", r"!Sub '\1'", text)
