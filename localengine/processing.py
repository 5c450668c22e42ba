"""Processing steps: a CreateProcessingJob request run as a local process."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .container import ContainerRun, Sandbox, job_sandbox, read_message
from .context import RunContext, StepOutput
from .errors import DefinitionError, UnsupportedConstruct
from .expressions import format_timestamp
from .jobs import (
    JobHost, download_input, job_hosts, max_runtime, now, resource_config, run_job_processes, text_environment,
)
from .files import write_json
from .names import arn
from .spec import StepSpec

PROCESSING_ROOT = "/opt/ml/processing/"
PROCESSING_PROPERTIES = frozenset({
    "ProcessingJobName", "ProcessingJobArn", "ProcessingJobStatus", "ExitMessage",
    "ProcessingStartTime", "ProcessingEndTime", "CreationTime", "LastModifiedTime",
})


def check_processing(spec: StepSpec) -> None:
    """Reject what has no local equivalent: an image's own entrypoint, non-S3 inputs/outputs."""
    arguments = spec.arguments
    if not (arguments.get("AppSpecification") or {}).get("ContainerEntrypoint"):
        raise UnsupportedConstruct(
            f"Processing step {spec.name} without AppSpecification.ContainerEntrypoint "
            "(an image's built-in entrypoint cannot run locally)")
    for processing_input in arguments.get("ProcessingInputs") or []:
        s3_input = processing_input.get("S3Input")
        if s3_input is None:
            raise UnsupportedConstruct(
                f"processing input {processing_input.get('InputName')} of step {spec.name} "
                "has no S3Input (DatasetDefinition inputs are not supported)")
        if s3_input.get("S3DataType", "S3Prefix") != "S3Prefix" or \
                s3_input.get("S3CompressionType", "None") != "None":
            raise UnsupportedConstruct(
                f"processing input {processing_input.get('InputName')} of step {spec.name}: only "
                "S3DataType S3Prefix without compression is supported")
    for output in (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        if "S3Output" not in output:
            raise UnsupportedConstruct(f"processing output {output.get('OutputName')} of step "
                                       f"{spec.name} has no S3Output (FeatureStoreOutput)")
    _check_local_paths(spec)


def _check_local_paths(spec: StepSpec) -> None:
    """CreateProcessingJob: a LocalPath "is an absolute path ... and must begin with /opt/ml/processing/"."""
    arguments = spec.arguments
    places = [(f"ProcessingInputs['{i.get('InputName')}'].S3Input.LocalPath", i["S3Input"].get("LocalPath"))
              for i in arguments.get("ProcessingInputs") or []]
    places += [(f"ProcessingOutputConfig.Outputs['{o.get('OutputName')}'].S3Output.LocalPath",
                o["S3Output"].get("LocalPath")) for o in (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []]
    for where, path in places:
        if isinstance(path, str) and not path.startswith(PROCESSING_ROOT):
            raise DefinitionError(f"step {spec.name}: ValidationException: {where} {path!r} must be an absolute "
                                  f"path that begins with {PROCESSING_ROOT} (SageMaker refuses the job)")


def run_processing(spec: StepSpec, arguments: dict[str, Any], context: RunContext) -> StepOutput:
    """Copy the inputs in, run the entrypoint on every host, publish the outputs only if all of them succeeded."""
    job = context.job_name(spec.name)
    log_path = context.log_path(spec.name)
    started = now()
    outputs = (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    cluster = (arguments.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    hosts = job_hosts(int(cluster.get("InstanceCount") or 1))
    with contextlib.ExitStack() as sandboxes:
        runs, host_sandboxes = [], []
        for host in hosts:
            sandbox = sandboxes.enter_context(job_sandbox(host.sandbox_root(context, job)))
            host_sandboxes.append(sandbox)
            runs.append((_host_run(job, arguments, sandbox, host, context, log_path=host.log_path(log_path),
                                   instance_type=cluster.get("InstanceType")), sandbox.opt_ml / "output" / "message"))
        run_job_processes(runs, context)
        exit_message = read_message(runs[0][1])
        # Every host uploads its own output directories to the same URIs, as SageMaker does.
        published = context.s3.publish([(sandbox.local_path(o["S3Output"]["LocalPath"]), o["S3Output"]["S3Uri"])
                                        for sandbox in host_sandboxes for o in outputs])
    started, finished = format_timestamp(started), format_timestamp(now())
    properties = {**arguments, "ProcessingJobName": job,
                  "ProcessingJobArn": arn(f"processing-job/{job}"), "ProcessingJobStatus": "Completed",
                  "ExitMessage": exit_message, "ProcessingStartTime": started,
                  "ProcessingEndTime": finished, "CreationTime": started, "LastModifiedTime": finished}
    return StepOutput(properties, log_path, list(dict.fromkeys(published)))


def _host_run(job: str, arguments: dict[str, Any], sandbox: Sandbox, host: JobHost, context: RunContext, *,
              log_path: Path, instance_type: str | None) -> ContainerRun:
    """One host's process: its share of each ShardedByS3Key input (all of a FullyReplicated one), its resource
    config, and the job's entrypoint."""
    for processing_input in arguments.get("ProcessingInputs") or []:
        s3_input = processing_input["S3Input"]
        shard = (host.index, len(host.names)) if s3_input.get("S3DataDistributionType") == "ShardedByS3Key" else (0, 1)
        download_input(context.s3, s3_input["S3Uri"], sandbox.local_path(s3_input["LocalPath"]),
                       f"processing input {processing_input.get('InputName')}", shard)
    for output in (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        sandbox.local_path(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    config_dir = sandbox.opt_ml / "config"
    write_json(config_dir / "processingjobconfig.json", {**arguments, "ProcessingJobName": job})
    write_json(config_dir / "resourceconfig.json", resource_config(instance_type, host.name, host.names))
    app = arguments["AppSpecification"]
    return ContainerRun(
        argv=sandbox.command([*app["ContainerEntrypoint"], *(app.get("ContainerArguments") or [])],
                             str(context.interpreter(app.get("ImageUri", "")))),
        env={**host.resolving_names(context.container_environment(sandbox, app.get("ImageUri", ""))),
             **host.environment(), **text_environment(arguments.get("Environment"))},
        cwd=sandbox.root, log_path=log_path, max_runtime_seconds=max_runtime(arguments))
