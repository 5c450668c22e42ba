"""Training steps: a CreateTrainingJob request run as a local process.

Two ways to start the code, as in SageMaker: ``AlgorithmSpecification.ContainerEntrypoint``
(run as given), or script mode, where the framework containers' toolkit reads the
``sagemaker_program`` and ``sagemaker_submit_directory`` hyperparameters, unpacks the
``sourcedir.tar.gz`` into ``/opt/ml/code`` and runs ``python <program> --hp value ...``.
"""

from __future__ import annotations

import contextlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .container import ContainerRun, Sandbox, job_sandbox
from .context import RunContext, StepOutput
from .errors import DefinitionError, EngineError, UnsupportedConstruct
from .expressions import format_timestamp
from .jobs import (
    JobHost, download_input, job_hosts, max_runtime, now, resource_config, run_job_processes, text_environment,
)
from .files import write_json
from .images import SHIMS, framework_image
from .names import arn
from .parameters import format_value
from .s3 import join_s3_uri
from .spec import StepSpec

CHECKPOINT_DIR = "/opt/ml/checkpoints"  # CheckpointConfig.LocalPath's default

TRAINING_PROPERTIES = frozenset({
    "TrainingJobName", "TrainingJobArn", "TrainingJobStatus", "SecondaryStatus", "ModelArtifacts",
    "FinalMetricDataList", "TrainingStartTime", "TrainingEndTime", "CreationTime",
    "LastModifiedTime", "TrainingTimeInSeconds", "BillableTimeInSeconds",
})


def check_training(spec: StepSpec) -> None:
    check_training_request(spec.arguments, f"Training step {spec.name}")


def check_training_request(request: dict[str, Any], where: str) -> None:
    """Reject training jobs that only an AWS image could run, and non-S3 or compressed channels."""
    algorithm = request.get("AlgorithmSpecification") or {}
    hyperparameters = request.get("HyperParameters") or request.get("StaticHyperParameters") or {}
    if not algorithm.get("ContainerEntrypoint"):
        missing = [key for key in ("sagemaker_program", "sagemaker_submit_directory") if key not in hyperparameters]
        if missing:
            raise UnsupportedConstruct(
                f"{where} uses neither script mode nor a ContainerEntrypoint (missing hyperparameters "
                f"{', '.join(missing)}); a built-in algorithm image cannot run locally")
    for channel in request.get("InputDataConfig") or []:
        s3_source = (channel.get("DataSource") or {}).get("S3DataSource")
        if s3_source is None or s3_source.get("S3DataType", "S3Prefix") != "S3Prefix" \
                or channel.get("CompressionType", "None") != "None":
            raise UnsupportedConstruct(
                f"channel {channel.get('ChannelName')} of {where}: only S3DataSource with "
                "S3DataType S3Prefix and no compression is supported")
    if (request.get("OutputDataConfig") or {}).get("CompressionType") == "NONE":
        raise UnsupportedConstruct(f"OutputDataConfig.CompressionType NONE in {where}")
    stopping = request.get("StoppingCondition") or {}
    wait, runtime = stopping.get("MaxWaitTimeInSeconds"), stopping.get("MaxRuntimeInSeconds")
    if request.get("EnableManagedSpotTraining") is True and (
            not isinstance(wait, int) or isinstance(runtime, int) and wait < runtime):
        raise DefinitionError(f"{where}: ValidationException: managed spot training needs "
                              "StoppingCondition.MaxWaitTimeInSeconds, at least MaxRuntimeInSeconds")


def run_training(spec: StepSpec, arguments: dict[str, Any], context: RunContext) -> StepOutput:
    job = context.job_name(spec.name)
    log_path = context.log_path(spec.name)
    properties = run_training_job(job, arguments, context, log_path=log_path, cpus=context.cpu_count)
    return StepOutput(properties, log_path, [properties["ModelArtifacts"]["S3ModelArtifacts"]])


def run_training_job(job: str, request: dict[str, Any], context: RunContext, *,
                     log_path: Path, cpus: int, cpu_set: frozenset[int] | None = None) -> dict[str, Any]:
    """Run one training job (a Training step or a tuning trial); returns its DescribeTrainingJob
    properties. Raises ``StepFailed`` with the job's failure reason."""
    started = now()
    output_prefix = join_s3_uri(request["OutputDataConfig"]["S3OutputPath"], f"{job}/output")
    interruptions = 1 if context.interrupt_spot_jobs and request.get("EnableManagedSpotTraining") else 0
    hosts = job_hosts(int((request.get("ResourceConfig") or {}).get("InstanceCount") or 1))
    while True:
        # Each start is a new instance per host: a fresh sandbox with the checkpoints restored.
        with contextlib.ExitStack() as sandboxes:
            runs, checkpoints, host_sandboxes = [], [], []
            for host in hosts:
                sandbox = sandboxes.enter_context(job_sandbox(host.sandbox_root(context, job)))
                host_sandboxes.append(sandbox)
                checkpoints.append(_Checkpoints.of(request, sandbox, context))
                runs.append(_host_run(job, request, sandbox, host, context, log_path=host.log_path(log_path),
                                      cpus=max(1, cpus // len(hosts)), cpu_set=host.cpu_share(cpu_set),
                                      interrupt_when=checkpoints[0].any_saved
                                      if interruptions and checkpoints[0] and host.is_leader else None))
            outcome = run_job_processes(runs, context)
            for host_checkpoints in filter(None, checkpoints):
                host_checkpoints.upload()
            if not outcome.interrupted:
                _publish_artifacts(host_sandboxes[0], output_prefix, context)
                break
        interruptions -= 1
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"--- spot interruption (simulated): the instance was reclaimed; the job restarts with the "
                      f"checkpoints in {request['CheckpointConfig']['S3Uri']} ---\n")
    finished = now()
    metrics = [{"MetricName": name, "Value": value, "Timestamp": format_timestamp(moment)}
               for name, (value, moment) in outcome.metrics.items()]
    seconds = max(1, round((finished - started).total_seconds()))
    return {**request, "TrainingJobName": job, "TrainingJobArn": arn(f"training-job/{job}"),
            "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": join_s3_uri(output_prefix, "model.tar.gz")},
            "FinalMetricDataList": metrics,
            "TrainingStartTime": format_timestamp(started), "TrainingEndTime": format_timestamp(finished),
            "CreationTime": format_timestamp(started), "LastModifiedTime": format_timestamp(finished),
            "TrainingTimeInSeconds": seconds, "BillableTimeInSeconds": seconds * len(hosts)}


class _Checkpoints:
    """A job's CheckpointConfig: the service copies the S3 URI to the local path when the job starts, and the
    local path to the S3 URI while it runs (here: when its process ends, however it ends)."""

    def __init__(self, uri: str, local: Path, s3):
        self.uri, self.local, self._s3 = uri, local, s3
        self._restored: dict[Path, tuple[int, int]] = {}

    @classmethod
    def of(cls, request: dict[str, Any], sandbox: Sandbox, context: RunContext) -> "_Checkpoints | None":
        config = request.get("CheckpointConfig")
        if not config:
            return None
        checkpoints = cls(config["S3Uri"], sandbox.local_path(config.get("LocalPath") or CHECKPOINT_DIR), context.s3)
        checkpoints.local.mkdir(parents=True, exist_ok=True)
        if context.s3.exists(checkpoints.uri):
            context.s3.download(checkpoints.uri, checkpoints.local)
        checkpoints._restored = checkpoints._files()
        return checkpoints

    def any_saved(self) -> bool:
        """Whether this start has saved a checkpoint: what was restored (an earlier start's, or another job's under
        the same S3 URI) does not count."""
        return any(self._restored.get(path) != stamp for path, stamp in self._files().items())

    def _files(self) -> dict[Path, tuple[int, int]]:
        return {path: (stat.st_mtime_ns, stat.st_size) for path in self.local.rglob("*")
                if path.is_file() and not path.name.endswith(".tmp") and (stat := path.stat())}

    def upload(self) -> None:
        self._s3.publish([(self.local, self.uri)])


def _host_run(job: str, request: dict[str, Any], sandbox: Sandbox, host: JobHost, context: RunContext, *,
              log_path: Path, cpus: int, cpu_set: frozenset[int] | None,
              interrupt_when: Callable[[], bool] | None = None) -> tuple[ContainerRun, Path]:
    """One host's process of the job, and the file its failure message goes to."""
    channels = _stage_channels(request, sandbox, host, context)
    # The API's hyperparameters are text; a parameter reference may have resolved to a number.
    hyperparameters = {name: format_value(value) for name, value in (request.get("HyperParameters") or {}).items()}
    algorithm = request.get("AlgorithmSpecification") or {}
    failure_file = sandbox.opt_ml / "output" / "failure"
    if context.images is not None and not algorithm.get("ContainerEntrypoint"):
        return _toolkit_run(job, request, sandbox, host, context, hyperparameters, log_path=log_path,
                            cpu_set=cpu_set, interrupt_when=interrupt_when), failure_file
    _write_config(request, sandbox, host, hyperparameters)
    argv, cwd, user_args = _start_command(algorithm, hyperparameters, sandbox, context)
    if algorithm.get("ContainerEntrypoint"):
        # No training toolkit runs, so none of its SM_* variables are set: only what the platform sets.
        contract = {"TRAINING_JOB_NAME": job, "TRAINING_JOB_ARN": arn(f"training-job/{job}"),
                    "OMP_NUM_THREADS": str(cpus)}
    else:
        contract = _training_environment(sandbox, host, job, channels, hyperparameters, user_args, cpus)
    environment = {**context.job_environment(host.resolving_names(sandbox.base_environment())), **contract,
                   **host.environment(),
                   **text_environment(request.get("Environment"))}
    run = ContainerRun(argv=argv, env=environment, cwd=cwd, log_path=log_path,
                       max_runtime_seconds=max_runtime(request),
                       metric_definitions=algorithm.get("MetricDefinitions") or [], cpu_set=cpu_set,
                       interrupt_when=interrupt_when)
    return run, failure_file


def _toolkit_run(job: str, request: dict[str, Any], sandbox: Sandbox, host: JobHost, context: RunContext,
                 hyperparameters: dict[str, str], *, log_path: Path,
                 cpu_set: frozenset[int] | None, interrupt_when: Callable[[], bool] | None = None) -> ContainerRun:
    """Faithful mode: the image's own `train` entry point (its training toolkit) runs the job, with
    `SAGEMAKER_BASE_DIR` standing in for /opt/ml, as the toolkits allow outside a container."""
    algorithm = request["AlgorithmSpecification"]
    image = framework_image(algorithm.get("TrainingImage", ""))
    tarball = _source_tarball(context, str(decode_hyperparameter(hyperparameters.get("sagemaker_submit_directory", ""))))
    # The toolkits download from S3 themselves; handed a local tarball, they extract it.
    _write_config(request, sandbox, host, {**hyperparameters, "sagemaker_submit_directory": json.dumps(str(tarball))})
    environment = {**context.container_environment(sandbox, algorithm["TrainingImage"]),
                   "SAGEMAKER_BASE_DIR": str(sandbox.opt_ml), "SAGEMAKER_TRAINING_MODULE": image.training_module,
                   "PYTHONPATH": str(SHIMS), "TRAINING_JOB_NAME": job, "TRAINING_JOB_ARN": arn(f"training-job/{job}"),
                   # sagemaker-containers pip-installs the code bundle; each job into its own prefix, as
                   # each container has its own file system.
                   "PIP_PREFIX": str(sandbox.root / "pip-prefix"), **host.environment(),
                   **text_environment(request.get("Environment"))}
    return ContainerRun(argv=image.train_command(context.interpreter(algorithm["TrainingImage"])),
                        env=environment, cwd=sandbox.root, log_path=log_path,
                        max_runtime_seconds=max_runtime(request),
                        metric_definitions=algorithm.get("MetricDefinitions") or [], cpu_set=cpu_set,
                        interrupt_when=interrupt_when)


def _publish_artifacts(sandbox: Sandbox, output_prefix: str, context: RunContext) -> None:
    """``model.tar.gz`` always (even of an empty model dir), ``output.tar.gz`` if there is output data; of a
    multi-host job, the leader's (``algo-1``)."""
    uploads = [(_pack(sandbox.opt_ml / "model", sandbox.root / "model.tar.gz"),
                join_s3_uri(output_prefix, "model.tar.gz"))]
    output_data = sandbox.opt_ml / "output" / "data"
    if any(p.is_file() for p in output_data.rglob("*")):
        uploads.append((_pack(output_data, sandbox.root / "output.tar.gz"), join_s3_uri(output_prefix, "output.tar.gz")))
    context.s3.publish(uploads)


def _stage_channels(request: dict[str, Any], sandbox: Sandbox, host: JobHost, context: RunContext) -> dict[str, Path]:
    """Each channel's objects, or with ShardedByS3Key the host's share of them."""
    channels = {}
    for channel in request.get("InputDataConfig") or []:
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        channels[name] = sandbox.opt_ml / "input" / "data" / name
        shard = (host.index, len(host.names)) if source.get("S3DataDistributionType") == "ShardedByS3Key" else (0, 1)
        download_input(context.s3, source["S3Uri"], channels[name], f"channel {name}", shard)
    return channels


def _write_config(request: dict[str, Any], sandbox: Sandbox, host: JobHost, hyperparameters: dict[str, str]) -> None:
    config_dir = sandbox.opt_ml / "input" / "config"
    write_json(config_dir / "hyperparameters.json", hyperparameters)
    write_json(config_dir / "resourceconfig.json",
               resource_config((request.get("ResourceConfig") or {}).get("InstanceType"), host.name, host.names))
    write_json(config_dir / "inputdataconfig.json", {
        channel["ChannelName"]: {
            "TrainingInputMode": channel.get("InputMode", "File"),
            "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                "S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            **({"ContentType": channel["ContentType"]} if channel.get("ContentType") else {}),
        } for channel in request.get("InputDataConfig") or []})
    for directory in ("model", "output/data", "code"):
        (sandbox.opt_ml / directory).mkdir(parents=True, exist_ok=True)


def _start_command(algorithm: dict[str, Any], hyperparameters: dict[str, str], sandbox: Sandbox,
                   context: RunContext) -> tuple[list[str], Path, list[str]]:
    """How the code starts: ``(argv, working directory, script-mode user arguments)``."""
    if algorithm.get("ContainerEntrypoint"):
        argv = sandbox.command([*algorithm["ContainerEntrypoint"], *(algorithm.get("ContainerArguments") or [])])
        return argv, sandbox.root, []
    decoded = {key: decode_hyperparameter(value) for key, value in hyperparameters.items()}
    code_dir = sandbox.opt_ml / "code"
    with tarfile.open(_source_tarball(context, str(decoded["sagemaker_submit_directory"]))) as tar:
        tar.extractall(code_dir, filter="data")
    user_args = to_cmd_args(user_hyperparameters(decoded))
    return sandbox.command(["python", str(decoded["sagemaker_program"]), *user_args]), code_dir, user_args


def _source_tarball(context: RunContext, submit_directory: str) -> Path:
    """The local S3 file of the script-mode code bundle."""
    archive = context.s3.path_for(submit_directory) if submit_directory.startswith("s3://") else None
    if archive is None or not archive.is_file():
        raise EngineError(f"sagemaker_submit_directory {submit_directory} is not a sourcedir.tar.gz in S3")
    return archive


def decode_hyperparameter(value: Any) -> Any:
    """Hyperparameter values are text that is often JSON (``"\\"train.py\\""``, ``"5"``);
    decode it when it is, as the SageMaker training toolkit does."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


# Hyperparameters the toolkits keep for themselves besides the `sagemaker_*` ones (params.py of
# sagemaker-training 4.8.0 and sagemaker-containers 2.8.6.post2: SAGEMAKER_HYPERPARAMETERS).
TOOLKIT_HYPERPARAMETERS = frozenset({"_tuning_objective_metric"})


def user_hyperparameters(decoded: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters a script sees: all but the toolkit's own (``sagemaker_*``, the tuner's
    ``_tuning_objective_metric``)."""
    return {key: value for key, value in decoded.items()
            if not key.startswith("sagemaker_") and key not in TOOLKIT_HYPERPARAMETERS}


def to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """``--name value`` pairs sorted by name (``-n`` for one-letter names), as the toolkit builds them."""
    args = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        args.append(f"--{name}" if len(name) > 1 else f"-{name}")
        args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())) if isinstance(value, dict) else str(value))
    return args


def _training_environment(sandbox: Sandbox, host: JobHost, job: str, channels: dict[str, Path],
                          hyperparameters: dict[str, str], user_args: list[str], cpus: int) -> dict[str, str]:
    opt_ml = sandbox.opt_ml
    decoded = user_hyperparameters({k: decode_hyperparameter(v) for k, v in hyperparameters.items()})
    environment = {
        "TRAINING_JOB_NAME": job, "TRAINING_JOB_ARN": arn(f"training-job/{job}"),
        "SM_MODEL_DIR": str(opt_ml / "model"), "SM_INPUT_DIR": str(opt_ml / "input"),
        "SM_INPUT_CONFIG_DIR": str(opt_ml / "input" / "config"), "SM_OUTPUT_DIR": str(opt_ml / "output"),
        "SM_OUTPUT_DATA_DIR": str(opt_ml / "output" / "data"),
        "SM_CHANNELS": json.dumps(sorted(channels)), "SM_HPS": json.dumps(decoded, sort_keys=True),
        "SM_USER_ARGS": json.dumps(user_args), "SM_NUM_CPUS": str(cpus), "SM_NUM_GPUS": "0",
        # Tuning trials share the machine; without this each would start one thread per core.
        "OMP_NUM_THREADS": str(cpus),
        "SM_CURRENT_HOST": host.name, "SM_HOSTS": json.dumps(list(host.names)),
    }
    environment.update({f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()})
    environment.update({f"SM_HP_{name.upper()}": value if isinstance(value, str)
                        else json.dumps(value, sort_keys=True, separators=(",", ":"))
                        for name, value in decoded.items()})
    return environment


def _pack(directory: Path, archive: Path) -> Path:
    """Tar.gz the content of ``directory`` with paths relative to it, as SageMaker packs a model."""
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(directory.iterdir()):
            tar.add(entry, arcname=entry.name)
    return archive
