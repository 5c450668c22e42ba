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
    python pipeline.py approve VERSION              approve a local version (the next run's champion)
    python pipeline.py parameters                   list the pipeline's parameters
    python pipeline.py iam-policy execution|deployer|planner|trust|github-*-trust   least-privilege IAM

Settings (region, bucket, role, names, tags, encryption, network) come from flags or environment
variables; `python pipeline.py COMMAND --help` lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
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
    from pipelines.validate import validate_definition

    if args.file:
        source, document = args.file, _read_definition(Path(args.file))
        problems = validate_definition(document)
    else:
        built = _build(args)
        source, document = f"pipeline {built.settings.pipeline_name}", built.document
        problems = api.validate(built)
    for problem in problems:
        print(f"✘ {problem}")
    if problems:
        print(f"{len(problems)} problem(s) in {source}", file=sys.stderr)
        return 1
    print(f"✔ {source}: definition valid ({len(document['Steps'])} top-level steps)")
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
    execution_arn = api.start(built, dict(_split_assignments(args.param)), aws=aws)
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


def cmd_run(args) -> int:
    from localengine import format_summary, print_event

    from pipelines import api
    from pipelines.local import data_report_lines, image_environments, run_locally

    if args.data and not Path(args.data).exists():
        raise CliError(f"--data {args.data}: no such file or directory; give a CSV file or a directory of them")
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
    run = run_locally(
        built, Path(args.local_dir), overrides,
        data=Path(args.data) if args.data else None, on_event=print_event, data_at=data_at,
        images=image_environments(lambda line: print(f"… {line}", flush=True)) if args.faithful else None,
    )
    result = run.result
    for line in [*format_summary(result).splitlines(), *data_report_lines(run.data_report)]:
        print(run.as_user_sees_it(line))
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
    from pipelines.local import local_registry
    from pipelines.settings import Settings

    registry = local_registry(Path(args.local_dir))
    group = args.group or Settings.resolve(_settings_flags(args)).model_package_group
    package = registry.update_approval(f"{group}/{args.version}", args.status)
    print(registry.format_package(package))
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
                 "planner": iam.planner_policy, "trust": lambda _: iam.trust_policy(),
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
    approve = command("approve", cmd_approve,
                      "set the approval status of a version in the local model registry (the next run's champion)")
    approve.add_argument("version", type=int, help="the version number, as `models` lists it")
    approve.add_argument("--status", default="Approved", choices=["Approved", "Rejected", "PendingManualApproval"])
    approve.add_argument("--group", help="model package group (default: the model-package-group setting)")
    approve.add_argument("--local-dir", default=str(DEFAULT_LOCAL_DIR), help="the local run directory")
    command("parameters", cmd_parameters, "list the pipeline parameters with their defaults and meaning")
    iam_policy = command("iam-policy", cmd_iam_policy, "print a least-privilege IAM policy scoped by the settings")
    iam_policy.add_argument("principal", choices=["execution", "deployer", "planner", "trust", "github-deploy-trust",
                                                  "github-plan-trust"],
                            help="the execution role's policy, the deployer's (CI on main), the planner's (CI on pull "
                            "requests, read-only), the execution role's trust policy, or the CI roles' trust in "
                            "GitHub's OIDC provider")
    iam_policy.add_argument("--github-repository", metavar="OWNER/NAME", help="the repository CI runs in")
    iam_policy.add_argument("--branch", default="main", help="the branch whose runs may deploy (github-deploy-trust)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
