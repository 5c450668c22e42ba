#!/usr/bin/env python3
"""house-price-pipeline: build, check, deploy, start and locally run the SageMaker pipeline.

    python pipeline.py definition [--output FILE]   print or write the definition JSON
    python pipeline.py validate                     check it against the SageMaker API offline
    python pipeline.py diff                         compare with the deployed definition
    python pipeline.py plan [--local]               which steps the next execution takes from the cache
    python pipeline.py upsert                       upload code, create or update the pipeline
    python pipeline.py start [--param N=V] [--wait] start an execution on AWS
    python pipeline.py status [EXECUTION] [--json]  recent executions, or one execution's steps
    python pipeline.py run [--param N=V]            run the whole pipeline on this machine
    python pipeline.py trigger install|remove|show|template   the S3 trigger (EventBridge, no Lambda)
    python pipeline.py models                       list the local model registry
    python pipeline.py clean [--older-than-days N]  remove old local executions (logs, failed jobs' sandboxes)
    python pipeline.py approve|reject VERSION [--cloud]   set a version's approval (local registry, or the cloud's)
    python pipeline.py serve [--version N]          serve a registered version on localhost (SageMaker's contract)
    python pipeline.py predict --data FILE.csv      score a file with a registered version (Batch Transform's twin)
    python pipeline.py deploy [--version N]         create or update the endpoint with the latest approved version
    python pipeline.py transform --input S3 --output S3   score S3 with a Batch Transform job (approved versions)
    python pipeline.py parameters                   list the pipeline's parameters
    python pipeline.py iam-policy execution|deployer|planner|model-deployer|trust|github-*-trust   least-privilege IAM

Settings (region, bucket, role, names, tags, encryption, network) come from flags or environment
variables; `python pipeline.py COMMAND --help` lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import sys
import warnings
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
DEFAULT_LOCAL_DIR = PROJECT_DIR / ".local"


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure becomes one readable line
        message = _user_message(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


# --- commands ---------------------------------------------------------------------------------

def cmd_definition(args) -> int:
    built = _build(args)
    if args.output:
        output = Path(args.output)
        staging = output.with_name(f".{output.name}.tmp")
        staging.write_text(built.json, encoding="utf-8")
        staging.replace(output)  # never leave half a definition behind
        print(f"wrote {args.output} ({len(built.json)} bytes, {len(built.document['Steps'])} top-level steps)")
    else:
        sys.stdout.write(built.json)
    return 0


def cmd_validate(args) -> int:
    from pipelines import api
    from pipelines.validate import multi_instance_warnings, validate_definition

    if args.file:
        source, document = args.file, _read_definition(Path(args.file))
        problems = validate_definition(document)
    else:
        built = _build(args)
        source, document = f"pipeline {built.settings.pipeline_name}", built.document
        problems = api.validate(built)
    if args.policy:
        from pipelines.policy import check_policy
        from pipelines.settings import Settings

        with _sdk_quiet():  # the IAM rules look up image repositories, which the SDK logs
            problems = [*problems, *map(str, check_policy(document, Settings.resolve(_settings_flags(args))))]
    for problem in problems:
        print(f"✘ {problem}")
    for warning in multi_instance_warnings(document):
        print(f"warning: {warning}")
    if problems:
        print(f"{len(problems)} problem(s) in {source}", file=sys.stderr)
        return 1
    print(f"✔ {source}: definition valid ({len(document['Steps'])} top-level steps)"
          + (", policy rules hold" if args.policy else ""))
    return 0


def cmd_diff(args) -> int:
    from pipelines.deploy import AwsClients, definition_diff, deployed_definition

    built = _build(args)
    deployed = deployed_definition(AwsClients.for_settings(built.settings).sagemaker, built.settings.pipeline_name)
    if deployed is None:
        print(f"pipeline {built.settings.pipeline_name} is not deployed; upsert would create it")
        return 1
    diff = definition_diff(deployed, built.json, built.settings.pipeline_name)
    sys.stdout.writelines(diff)
    if not diff:
        print(f"pipeline {built.settings.pipeline_name}: deployed definition is identical")
    return 1 if diff else 0


def cmd_plan(args) -> int:
    from localengine.planning import format_plan

    from pipelines import api

    built = _build(args)
    plans = api.plan(built, dict(_split_assignments(args.param)),
                     local_dir=Path(args.local_dir) if args.local else None)
    if args.json:
        print(json.dumps([plan.as_dict() for plan in plans], indent=2))
    else:
        print("\n".join(format_plan(plans)))
    return 0


def cmd_upsert(args) -> int:
    from pipelines import api

    built = _build(args)
    _require_valid(built)
    print(api.upsert(built))
    return 0


def cmd_start(args) -> int:
    from pipelines import api
    from pipelines.deploy import require_real_role

    built = _build(args)
    require_real_role(built.settings)
    aws = api.clients(built.settings)
    execution_arn = api.start(built, dict(_split_assignments(args.param)), aws=aws, client_token=args.client_token)
    print(execution_arn)
    if not args.wait:
        return 0
    execution = api.wait(built.settings, execution_arn, _print_step, poll_seconds=args.poll_seconds, aws=aws)
    status = execution["PipelineExecutionStatus"]
    reason = f": {execution['FailureReason']}" if execution.get("FailureReason") else ""
    print(f"execution {status}{reason}")
    return 0 if status == "Succeeded" else 1


def cmd_status(args) -> int:
    from pipelines import api
    from pipelines.settings import Settings
    from pipelines.status import format_executions, format_steps

    settings = Settings.resolve(_settings_flags(args))
    execution_arn = api.execution_arn(settings, args.execution) if args.execution else None
    rows = api.status(settings, execution_arn, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("\n".join(format_steps(rows) if execution_arn else format_executions(rows)))
    return 0


def _stop_on_sigterm(signum, frame):
    """`kill` (a CI timeout, a scheduler) ends a run as Ctrl-C does: its jobs stopped, nothing half-written."""
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    from localengine import format_summary, print_event

    from pipelines import api
    from pipelines.local import data_report_lines, evaluation_lines, image_environments, run_locally

    if args.data and not Path(args.data).exists():
        raise CliError(f"--data {args.data}: no such file or directory; give a CSV file or a directory of them")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    built = _build(args, cache_dir=Path(args.local_dir) / "definitions")
    _require_valid(built)
    overrides = api.check_parameters(built, dict(_split_assignments(args.param)))
    data_at = None
    if args.event:
        from pipelines.trigger import event_input

        if not args.data or Path(args.data).is_dir():
            raise CliError("--event needs --data FILE: the local file that stands for the object the event names")
        data_at, event_parameters = event_input(Path(args.event))
        overrides = api.check_parameters(built, {**overrides, **event_parameters})
    if args.interrupt_spot_jobs and not built.settings.spot_training:
        raise CliError("--interrupt-spot-jobs needs --spot-training: only spot jobs are interrupted")
    run = run_locally(
        built, Path(args.local_dir), overrides, interrupt_spot_jobs=args.interrupt_spot_jobs,
        data=Path(args.data) if args.data else None, on_event=print_event, data_at=data_at,
        images=image_environments(lambda line: print(f"… {line}", flush=True)) if args.faithful else None,
        on_wait=lambda why: print(f"… {why}", file=sys.stderr, flush=True),
    )
    result = run.result
    # A failure's reason is the last line, on stderr, not also in the summary.
    for line in [*format_summary(result, with_failure=False).splitlines(), *data_report_lines(run.data_report),
                 *evaluation_lines(run.evaluation)]:
        print(run.as_user_sees_it(line))
    if run.evaluation_page is not None:
        print(f"Evaluation report: {run.evaluation_page.resolve().as_uri()}")
    if not result.succeeded:
        # The one line to act on comes last, on stderr, after any log tail.
        if result.fail_message is not None:
            reason = f"{result.failed_step}: {result.fail_message}"
        else:
            reason = f"{result.failed_step} failed: {(result.failure_reason or 'no reason given').splitlines()[0]}"
        raise CliError(run.as_user_sees_it(reason))
    return 0


def cmd_trigger(args) -> int:
    from pipelines import trigger
    from pipelines.settings import Settings

    if args.action == "template":
        sys.stdout.write(trigger.cloudformation_template())
        return 0
    settings = Settings.resolve(_settings_flags(args))
    spec = trigger.TriggerSpec(settings, args.prefix, args.suffix)
    clients = trigger.TriggerClients.for_settings(settings)
    if args.action == "show":
        deployed = trigger.show(spec, clients)
        if deployed is None:
            raise CliError(f"no trigger named {spec.name}; create it with `pipeline.py trigger install`")
        print(json.dumps(deployed, indent=2, default=str))
        return 0
    for line in (trigger.install if args.action == "install" else trigger.remove)(spec, clients):
        print(line)
    return 0


def cmd_models(args) -> int:
    from pipelines.local import local_registry
    from pipelines.settings import Settings

    registry = local_registry(Path(args.local_dir))
    group = args.group or Settings.resolve(_settings_flags(args)).model_package_group
    packages = registry.list_packages(group)
    if not packages:
        print(f"no model versions registered in group {group} under {args.local_dir}")
        return 0
    for package in packages:
        print(registry.format_package(package))
    return 0


def cmd_approve(args) -> int:
    from pipelines.settings import Settings

    settings = Settings.resolve(_settings_flags(args))
    group = args.group or settings.model_package_group
    status = args.status or {"approve": "Approved", "reject": "Rejected"}[args.action]
    if args.cloud:
        from pipelines import hosting
        from pipelines.deploy import AwsClients

        sagemaker = AwsClients.for_settings(settings).sagemaker
        package = hosting.find_version(sagemaker, group, args.version)
        package = hosting.set_approval(sagemaker, package, status, args.description)
        print(f"{package['ModelPackageArn']}: {package['ModelApprovalStatus']}")
        return 0
    from pipelines.local import local_registry

    registry = local_registry(Path(args.local_dir))
    print(registry.format_package(registry.update_approval(f"{group}/{args.version}", status)))
    return 0


def cmd_serve(args) -> int:
    import tempfile

    from localengine.serving import Model, create_app, run_server

    version, settings = _chosen_version(args)
    with tempfile.TemporaryDirectory(prefix="serve-") as scratch:
        files = version.files(Path(scratch))

        def ready(host, port):
            print(f"serving {version.label} on http://{host}:{port} (POST /invocations, GET /ping; boto3 "
                  f"invoke_endpoint(EndpointName={settings.endpoint_name!r}) with endpoint_url="
                  f"'http://{host}:{port}'); Ctrl-C stops", flush=True)

        run_server(lambda: create_app(Model(files).load_in_background(), settings.endpoint_name),
                   args.host, args.port, ready, workers=args.workers)
    return 0


def cmd_predict(args) -> int:
    import tempfile

    from tqdm import tqdm

    from localengine.serving import transform_file

    source = Path(args.data)
    if not source.is_file():
        raise CliError(f"--data {args.data}: no such file; give a CSV file with a header row")
    output = Path(args.output) if args.output else Path(f"{source.stem}-predictions.csv")
    version, _ = _chosen_version(args)
    with tempfile.TemporaryDirectory(prefix="predict-") as scratch, \
            tqdm(total=source.stat().st_size, unit="B", unit_scale=True, desc=source.name,
                 disable=None) as progress:
        model = version.load(Path(scratch))
        rows = transform_file(model, source, output, args.chunk_rows,
                              lambda bytes_read: progress.update(bytes_read - progress.n))
    print(f"scored {rows:,} rows of {source} with {version.label}: {output}")
    return 0


def _cloud_version(args):
    """Settings, a SageMaker client, and the version --version or --model-package names (else the newest
    approved one) of the cloud registry."""
    from pipelines import hosting
    from pipelines.deploy import AwsClients, require_real_role
    from pipelines.settings import Settings

    settings = Settings.resolve(_settings_flags(args))
    require_real_role(settings)
    sagemaker = AwsClients.for_settings(settings).sagemaker
    return settings, sagemaker, hosting.find_version(sagemaker, settings.model_package_group, args.version,
                                                     args.model_package)


def _print_status(status: str, elapsed: float) -> None:
    print(f"  {elapsed:5.0f} s  {status}", flush=True)


def cmd_deploy(args) -> int:
    from pipelines import hosting

    settings, sagemaker, package = _cloud_version(args)
    kind = (f"{settings.endpoint_instance_count} x {settings.endpoint_instance_type}" if settings.endpoint_instance_type
            else f"serverless, {settings.serverless_memory_mb:,} MB, {settings.serverless_max_concurrency} at once")
    print(f"deploying {hosting.label(package)} to endpoint {settings.endpoint_name} ({kind})", flush=True)
    deployment = hosting.deploy(
        sagemaker, settings, package, wait=not args.no_wait, poll_seconds=args.poll_seconds, on_status=_print_status)
    print(f"endpoint {deployment.endpoint_name} {deployment.action} ({deployment.endpoint_config_name}): "
          f"{deployment.status}")
    return 0


def cmd_transform(args) -> int:
    from pipelines import hosting

    settings, sagemaker, package = _cloud_version(args)
    name = hosting.start_transform(sagemaker, settings, package, args.input, args.output, args.instance_type)
    print(f"transform job {name} scores {args.input} with {hosting.label(package)} into {args.output}", flush=True)
    if not args.wait:
        return 0
    job = hosting.wait_for_transform(sagemaker, name, _print_status, poll_seconds=args.poll_seconds)
    if job["TransformJobStatus"] != "Completed":
        raise CliError(f"transform job {name} {job['TransformJobStatus']}: "
                       f"{job.get('FailureReason', 'no reason given')}")
    return 0


def cmd_clean(args) -> int:
    from pipelines.local import clean
    from pipelines.settings import Settings

    local_dir = Path(args.local_dir)
    days = 0 if args.all else (args.older_than_days if args.older_than_days is not None
                               else Settings.resolve(_settings_flags(args)).local_retention_days)
    removed = clean(local_dir, days)
    age = "" if not days else f" older than {days:g} day(s)"
    print(f"removed {removed.executions} execution(s){age} from {local_dir} ({removed.bytes_freed / 1e6:,.1f} MB: "
          f"logs and failed jobs' sandboxes); kept {removed.kept}; the step cache, local S3 and the registry stay")
    return 0


def cmd_iam_policy(args) -> int:
    from pipelines import iam
    from pipelines.settings import Settings

    settings = Settings.resolve(_settings_flags(args))
    if args.principal != "trust" and not settings.has_real_role:
        raise CliError("the policies name the execution role and its account: set --role-arn or PIPELINE_ROLE_ARN")
    if args.principal.startswith("github") and not re.fullmatch(r"[\w.-]+/[\w.-]+", args.github_repository or ""):
        raise CliError("the GitHub trust policies are scoped to one repository: give --github-repository OWNER/NAME")
    documents = {"execution": iam.execution_role_policy, "deployer": iam.deployer_policy,
                 "planner": iam.planner_policy, "model-deployer": iam.model_deployer_policy,
                 "trust": lambda _: iam.trust_policy(),
                 "github-deploy-trust": lambda s: iam.github_trust_policy(s, args.github_repository, branch=args.branch),
                 "github-plan-trust": lambda s: iam.github_trust_policy(s, args.github_repository, branch=None)}
    with _sdk_quiet():
        document = documents[args.principal](settings)
    print(json.dumps(document, indent=2))
    return 0


def cmd_parameters(args) -> int:
    from pipelines.parameters import DESCRIPTIONS

    for parameter in _build(args).document["Parameters"]:
        default = parameter.get("DefaultValue", "(required)")
        print(f"{parameter['Name']} ({parameter['Type']}, default {default!r}): {DESCRIPTIONS[parameter['Name']]}")
    return 0


# --- helpers ----------------------------------------------------------------------------------

def _build(args, cache_dir: Path | None = None):
    """The definition, from the build cache when nothing it is made of changed (no SDK import then)."""
    from pipelines.definition import USER_CACHE_DIR, cached_build
    from pipelines.settings import Settings

    settings = Settings.resolve(_settings_flags(args))
    with _sdk_quiet():
        return cached_build(settings, cache_dir or USER_CACHE_DIR / "definitions")


@contextlib.contextmanager
def _sdk_quiet():
    """The SDK logs every default it applies (some loggers at DEBUG); the CLI prints its own results."""
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, message="Running within a PipelineSession")
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _chosen_version(args):
    """The version --version or --model-package names (local registry by default), and the settings."""
    from pipelines import serving
    from pipelines.settings import Settings

    settings = Settings.resolve(_settings_flags(args))
    if args.model_package:
        from pipelines.deploy import AwsClients

        clients = AwsClients.for_settings(settings)
        return serving.cloud_version(clients.sagemaker, clients.s3, args.model_package), settings
    return serving.local_version(Path(args.local_dir), settings.model_package_group, args.version), settings


def _read_definition(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"--file {path}: no such file") from None
    except json.JSONDecodeError as error:
        raise CliError(f"--file {path} is not JSON: {error}") from None


def _require_valid(built) -> None:
    from pipelines.validate import validate_definition

    problems = validate_definition(built.document)
    if problems:
        raise CliError(f"definition is invalid ({len(problems)} problem(s)), first: {problems[0]}; "
                       "run `pipeline.py validate` for all")


def _split_assignments(assignments: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        if not separator or not name:
            raise CliError(f"--param {assignment!r} must look like Name=Value")
        pairs.append((name, value))
    return pairs


def _print_step(step: dict) -> None:
    reason = f" ({step['FailureReason']})" if step.get("FailureReason") else ""
    print(f"  {step['StepName']}: {step.get('StepStatus', 'Unknown')}{reason}")


def _settings_flags(args) -> dict:
    from pipelines.settings import Settings

    return {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
            for flag, _, _, _ in Settings.documented()}


def _user_message(error: Exception) -> str | None:
    """One line for errors a user can act on; None for bugs, which keep their traceback."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from pipelines.deploy import DeployError
    from pipelines.parameters import ParameterValueError
    from pipelines.settings import SettingsError

    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found; configure a profile or environment credentials (or use `run` locally)"
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"AWS {error.operation_name} failed: {detail.get('Code')}: {detail.get('Message')}"
    if isinstance(error, (BotoCoreError, CliError, DeployError, ParameterValueError, SettingsError)):
        return str(error)
    try:
        from localengine import EngineError
    except ImportError:
        return None
    return str(error) if isinstance(error, EngineError) else None


def _parser() -> argparse.ArgumentParser:
    from pipelines.settings import Settings

    settings = argparse.ArgumentParser(add_help=False)
    group = settings.add_argument_group("settings (flag, else environment variable, else default)")
    for flag, env, default, help_text in Settings.documented():
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{help_text} [env {env}; default {default}]")
        else:
            group.add_argument(flag, default=None, metavar=env, help=f"{help_text} [default {default!r}]")

    parser = argparse.ArgumentParser(prog="pipeline.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name, handler, help_text):
        sub = commands.add_parser(name, parents=[settings], help=help_text, description=help_text)
        sub.set_defaults(command=handler)
        return sub

    definition = command("definition", cmd_definition, "print the pipeline definition JSON (offline)")
    definition.add_argument("--output", "-o", help="write to this file instead of standard output")
    validate = command("validate", cmd_validate, "check the definition against the SageMaker API shapes (offline)")
    validate.add_argument("--file", help="validate this definition JSON file instead of building one")
    validate.add_argument("--policy", action="store_true", help="also check the policy rules (runtime limits, "
                          "encryption, isolation, VPC, required tags, PassRole, instance types, role); upsert always does")
    command("diff", cmd_diff, "show how the local definition differs from the deployed one (exit 1 if it does)")
    plan = command("plan", cmd_plan, "predict which steps the next execution takes from the step cache, and why "
                   "the others run (against the deployed pipeline's executions, or --local runs)")
    plan.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="a parameter override the execution would be started with (repeatable)")
    plan.add_argument("--local", action="store_true", help="predict the next local `run` instead")
    plan.add_argument("--local-dir", default=str(DEFAULT_LOCAL_DIR), help="the local run directory (with --local)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    command("upsert", cmd_upsert, "upload code bundles, then create or update the pipeline; prints its ARN")
    start = command("start", cmd_start, "start an execution on SageMaker; prints its ARN")
    start.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="override a pipeline parameter (repeatable)")
    start.add_argument("--wait", action="store_true", help="follow the execution; exit 1 unless it succeeds")
    start.add_argument("--client-token", metavar="TOKEN", help="an idempotency token (32-128 letters, digits, "
                       "hyphens): a second start with the same token starts nothing; default: new each time")
    start.add_argument("--poll-seconds", type=float, default=30.0, help="status poll interval with --wait")
    status = command("status", cmd_status, "the deployed pipeline's recent executions (status, start, duration, "
                     "who started them), or one execution's steps (status, duration, cache hit, failure)")
    status.add_argument("execution", nargs="?", help="an execution id or ARN: show its steps")
    status.add_argument("--limit", type=int, default=10, help="how many recent executions to list")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    run = command("run", cmd_run, "run the whole pipeline on this machine (no AWS, no Docker)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a pipeline parameter (repeatable)")
    run.add_argument("--data", help="a CSV file, or a directory of them, to run on instead of the bundled sample")
    run.add_argument("--event", help="an EventBridge S3 'Object Created' event (JSON): run as the S3 trigger would, "
                     "on --data staged where the event says the object landed")
    run.add_argument("--local-dir", default=str(DEFAULT_LOCAL_DIR),
                     help="where local S3, job logs, the cache and the model registry live")
    run.add_argument("--faithful", action="store_true",
                     help="run each image's jobs in an environment pinned like that image, and training "
                     "through the image's own toolkit (environments built once, in ~/.cache)")
    run.add_argument("--interrupt-spot-jobs", action="store_true",
                     help="reclaim each spot training job's instance once, after its first checkpoint, as a spot "
                     "interruption would: the job restarts with its checkpoints (with --spot-training)")
    trigger = command("trigger", cmd_trigger, "the S3 trigger: an EventBridge rule that starts the pipeline when a "
                      "file lands under a prefix of the bucket setting (install is idempotent)")
    trigger.add_argument("action", choices=["install", "remove", "show", "template"],
                         help="create or update it, delete what install created, print it as deployed, or print "
                         "the same trigger as a CloudFormation template")
    trigger.add_argument("--prefix", default="", help="key prefix of the files that start a run, e.g. incoming/")
    trigger.add_argument("--suffix", default=".csv", help="key suffix of the files that start a run ('' for any)")
    models = command("models", cmd_models, "list model versions in the local model registry")
    models.add_argument("--group", help="model package group (default: the model-package-group setting)")
    models.add_argument("--local-dir", default=str(DEFAULT_LOCAL_DIR), help="the local run directory")
    for action, meaning in (("approve", "Approved: the next run's champion, and deployable"),
                            ("reject", "Rejected")):
        approval = command(action, cmd_approve, f"set a version's approval status to {meaning} (the local registry, "
                           "or with --cloud the Model Registry)")
        approval.set_defaults(action=action)
        approval.add_argument("version", type=int, help="the version number, as `models` (or Studio) lists it")
        approval.add_argument("--status", choices=["Approved", "Rejected", "PendingManualApproval"],
                              help="set this status instead")
        approval.add_argument("--description", help="why (ApprovalDescription; with --cloud)")
        approval.add_argument("--cloud", action="store_true", help="the Model Registry in AWS (settings: region, "
                              "model-package-group) instead of the local one")
        approval.add_argument("--group", help="model package group (default: the model-package-group setting)")
        approval.add_argument("--local-dir", default=str(DEFAULT_LOCAL_DIR), help="the local run directory")

    def version_choice(sub, default_text: str):
        choice = sub.add_mutually_exclusive_group()
        choice.add_argument("--version", type=int, help=f"the version number ({default_text})")
        choice.add_argument("--model-package", metavar="ARN", help="a version of the Model Registry in AWS, by ARN")

    serve = command("serve", cmd_serve, "serve a registered version on this machine with SageMaker's serving "
                    "contract (GET /ping, POST /invocations) and the Runtime API's route (invoke_endpoint)")
    version_choice(serve, "default: the newest in the local registry")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    serve.add_argument("--port", type=int, default=8080, help="port (0: any free one; the container uses 8080)")
    serve.add_argument("--workers", type=int, default=1, help="server processes, each with the model loaded")
    serve.add_argument("--local-dir", default=str(DEFAULT_LOCAL_DIR), help="the local run directory")
    predict = command("predict", cmd_predict, "score a CSV file (header row) with a registered version through "
                      "the serving handlers, in chunks: the local twin of a Batch Transform")
    version_choice(predict, "default: the newest in the local registry")
    predict.add_argument("--data", required=True, help="the CSV file to score: the raw feature columns")
    predict.add_argument("--output", "-o", help="where to write the predictions (default: FILE-predictions.csv "
                         "here), one per input row, in order")
    predict.add_argument("--chunk-rows", type=int, default=10_000, help="rows per request to the handlers")
    predict.add_argument("--local-dir", default=str(DEFAULT_LOCAL_DIR), help="the local run directory")
    deploy = command("deploy", cmd_deploy, "create or update the SageMaker endpoint so it serves an Approved version "
                     "(serverless unless --endpoint-instance-type; blue/green update of an existing endpoint)")
    version_choice(deploy, "default: the group's newest Approved version")
    deploy.add_argument("--no-wait", action="store_true", help="return once the change is requested")
    deploy.add_argument("--poll-seconds", type=float, default=15.0, help="status poll interval while waiting")
    transform = command("transform", cmd_transform, "score every CSV under an S3 prefix with a Batch Transform job "
                        "of an Approved version (each file one request, header row included, at most 100 MB)")
    version_choice(transform, "default: the group's newest Approved version")
    transform.add_argument("--input", required=True, metavar="S3_URI", help="s3://bucket/prefix/ of the CSV files")
    transform.add_argument("--output", required=True, metavar="S3_URI", help="s3://bucket/prefix/ for the predictions")
    transform.add_argument("--instance-type", default="ml.m5.xlarge", help="instance type of the job")
    transform.add_argument("--wait", action="store_true", help="follow the job; exit 1 unless it completes")
    transform.add_argument("--poll-seconds", type=float, default=30.0, help="status poll interval with --wait")
    clean_command = command("clean", cmd_clean, "remove old local executions: their logs and the sandboxes kept "
                            "from failed jobs (never the step cache, local S3 or the registry)")
    clean_command.add_argument("--older-than-days", type=float, help="age limit (default: the local-retention-days "
                               "setting)")
    clean_command.add_argument("--all", action="store_true", help="remove every execution")
    clean_command.add_argument("--local-dir", default=str(DEFAULT_LOCAL_DIR), help="the local run directory")
    command("parameters", cmd_parameters, "list the pipeline parameters with their defaults and meaning")
    iam_policy = command("iam-policy", cmd_iam_policy, "print a least-privilege IAM policy scoped by the settings")
    iam_policy.add_argument("principal", choices=["execution", "deployer", "planner", "model-deployer", "trust",
                                                  "github-deploy-trust", "github-plan-trust"],
                            help="the execution role's policy, the deployer's (CI on main), the planner's (CI on pull "
                            "requests, read-only), the model deployer's (approve, deploy, transform), the execution "
                            "role's trust policy, or the CI roles' trust in GitHub's OIDC provider")
    iam_policy.add_argument("--github-repository", metavar="OWNER/NAME", help="the repository CI runs in")
    iam_policy.add_argument("--branch", default="main", help="the branch whose runs may deploy (github-deploy-trust)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
