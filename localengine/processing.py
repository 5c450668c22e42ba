"""Processing steps: a CreateProcessingJob request run as a local process."""

from __future__ import annotations

from typing import Any

from .container import ContainerRun, job_sandbox, read_message
from .context import RunContext, StepOutput
from .errors import DefinitionError, UnsupportedConstruct
from .expressions import format_timestamp
from .jobs import (download_input, max_runtime, now, resource_config, run_job_process,
                   text_environment)
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
    """Copy the inputs in, run the entrypoint, publish the outputs only if it succeeded."""
    job = context.job_name(spec.name)
    log_path = context.log_path(spec.name)
    started = now()
    outputs = (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    with job_sandbox(context.sandbox_root(job)) as sandbox:
        for processing_input in arguments.get("ProcessingInputs") or []:
            s3_input = processing_input["S3Input"]
            download_input(context.s3, s3_input["S3Uri"], sandbox.local_path(s3_input["LocalPath"]),
                           f"processing input {processing_input.get('InputName')}")
        for output in outputs:
            sandbox.local_path(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        config_dir = sandbox.opt_ml / "config"
        write_json(config_dir / "processingjobconfig.json", {**arguments, "ProcessingJobName": job})
        instance_type = ((arguments.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get("InstanceType")
        write_json(config_dir / "resourceconfig.json", resource_config(instance_type))
        app = arguments["AppSpecification"]
        run = ContainerRun(
            argv=sandbox.command([*app["ContainerEntrypoint"], *(app.get("ContainerArguments") or [])],
                                 str(context.interpreter(app.get("ImageUri", "")))),
            env={**context.container_environment(sandbox, app.get("ImageUri", "")),
                 **text_environment(arguments.get("Environment"))},
            cwd=sandbox.root, log_path=log_path, max_runtime_seconds=max_runtime(arguments))
        message_file = sandbox.opt_ml / "output" / "message"
        run_job_process(run, context, message_file)
        exit_message = read_message(message_file)
        published = context.s3.publish([(sandbox.local_path(o["S3Output"]["LocalPath"]), o["S3Output"]["S3Uri"])
                                        for o in outputs])
    started, finished = format_timestamp(started), format_timestamp(now())
    properties = {**arguments, "ProcessingJobName": job,
                  "ProcessingJobArn": arn(f"processing-job/{job}"), "ProcessingJobStatus": "Completed",
                  "ExitMessage": exit_message, "ProcessingStartTime": started,
                  "ProcessingEndTime": finished, "CreationTime": started, "LastModifiedTime": finished}
    return StepOutput(properties, log_path, published)
