"""Running a whole definition: scheduling steps by their dependencies, branches and failures."""

from __future__ import annotations

import collections
import os
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cache_keys import cacheable
from .caching import CacheEntry, StepCache
from .container import JobControl
from .context import ExecutionInfo, RunContext
from .definition import PipelineGraph, load_definition, parse_definition
from .errors import EngineError, StepFailed, TransientFault, is_disk_full
from .expressions import Resolver
from .files import write_json
from .images import ImageEnvironments
from .kinds import STEP_KINDS
from .names import random_token
from .parameters import resolve_parameters
from .registry import LocalModelRegistry
from .registry_api import RegistryApi
from .results import ExecutionResult, StepEvent, StepResult
from .retries import policy_for
from .s3 import LocalS3
from .spec import StepSpec

EventHandler = Callable[[StepEvent], None]


EXECUTION_RECORD = "execution.json"


def run_pipeline(definition: Mapping[str, Any] | str, *, s3: LocalS3, work_dir: Path | str,
                 parameters: Mapping[str, Any] | None = None, on_event: EventHandler | None = None,
                 max_parallel_jobs: int | None = None,
                 pipeline_name: str = "local-pipeline",
                 images: ImageEnvironments | None = None, interrupt_spot_jobs: bool = False) -> ExecutionResult:
    """Execute a pipeline definition (the CreatePipeline document, as a dict or JSON text).

    The definition is checked completely before any step runs: ``UnsupportedConstruct``
    or ``DefinitionError`` for what cannot run, ``ParameterError`` for bad ``parameters``
    (overrides by name, as text). Steps whose dependencies are done run concurrently;
    at most ``max_parallel_jobs`` job processes (default: the number of cores) run at
    once. The first failed step fails the run: steps already running finish, no new
    step starts. Logs, job sandboxes, the step cache and the model registry live
    under ``work_dir``. ``on_event`` is called from this thread, in order. ``images`` turns on
    faithful mode: each framework image's jobs run in that image's environment, and script-mode
    training through the image's own training toolkit. ``interrupt_spot_jobs`` simulates a spot
    interruption in every managed-spot training job once its first checkpoint is saved: the job
    stops and restarts on a fresh sandbox with its checkpoints restored.
    """
    if max_parallel_jobs is not None and max_parallel_jobs < 1:
        raise EngineError(f"max_parallel_jobs must be at least 1, got {max_parallel_jobs}")
    document = load_definition(definition)
    graph = parse_definition(document)
    values = resolve_parameters(document, parameters)
    work_dir = Path(work_dir).resolve()  # jobs run in other directories
    cpu_count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    registry = LocalModelRegistry.for_work_dir(work_dir)
    with RegistryApi(registry) as registry_api:
        context = RunContext(
            execution=ExecutionInfo(pipeline_name, random_token(12), datetime.now(timezone.utc)),
            s3=s3, work_dir=work_dir, control=JobControl(max_parallel_jobs or cpu_count),
            registry=registry, cpu_count=cpu_count, registry_api=registry_api, images=images,
            interrupt_spot_jobs=interrupt_spot_jobs)
        return _Execution(graph, context, values, on_event if on_event is not None else _ignore_event).run()


def _ignore_event(event: StepEvent) -> None:
    pass


class _Execution:
    def __init__(self, graph: PipelineGraph, context: RunContext, parameters: dict[str, Any],
                 on_event: EventHandler):
        self._graph = graph
        self._context = context
        self._parameters = parameters
        self._on_event = on_event
        self._results = {name: StepResult(name, spec.type) for name, spec in graph.steps.items()}
        self._properties: dict[str, dict[str, Any]] = {}
        # A faithful run never reuses a fast run's result (nor the reverse): each keeps its own cache.
        self._cache = StepCache(context.work_dir / ("cache-faithful" if context.images else "cache"))
        self._reused: dict[str, CacheEntry] = {}
        self._resolver = Resolver(parameters=parameters, execution_variables=context.execution.variables(),
                                  step_properties=self._properties, steps=graph.steps, s3=context.s3)
        self._failed: StepResult | None = None

    def run(self) -> ExecutionResult:
        started = time.monotonic()
        running: dict[Future, str] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(self._graph.steps))) as pool:
            try:
                while True:
                    if self._failed is None:
                        self._start_ready_steps(pool, running)
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        self._record(future.result())
                        del running[future]
            except BaseException as error:
                # An interrupt (Ctrl-C, SIGTERM) or a bug: stop every job process before unwinding.
                self._context.control.cancel()
                self._write_record("Stopped" if isinstance(error, KeyboardInterrupt) else "Failed",
                                   f"the run was interrupted ({type(error).__name__})")
                raise
        result = self._execution_result(time.monotonic() - started)
        self._write_record(result.status, result.failure_reason)
        return result

    def _write_record(self, status: str, reason: str | None) -> None:
        """execution.json: how the run ended and how far each step got (a stopped run's finished steps are
        in the step cache; the others left nothing behind)."""
        execution = self._context.execution
        write_json(self._context.execution_dir / EXECUTION_RECORD, {
            "PipelineName": execution.pipeline_name, "PipelineExecutionArn": execution.execution_arn,
            "PipelineExecutionStatus": status, "FailureReason": reason,
            "Steps": {name: result.status for name, result in self._results.items()}})

    def _start_ready_steps(self, pool: ThreadPoolExecutor, running: dict[Future, str]) -> None:
        """Start every step whose dependencies are done; skip those ruled out by a branch
        or a skipped dependency (repeating, since a skip can rule out further steps)."""
        progress = True
        while progress:
            progress = False
            for name, spec in self._graph.steps.items():
                result = self._results[name]
                if result.status != "NotStarted" or name in running.values() or not self._dependencies_done(spec):
                    continue
                skip_reason = self._skip_reason(spec)
                if skip_reason:
                    result.status, result.skip_reason = "Skipped", skip_reason
                    self._on_event(StepEvent("skipped", name, spec.type, result))
                    progress = True
                else:
                    self._on_event(StepEvent("started", name, spec.type))
                    running[pool.submit(self._execute, spec)] = name

    def _dependencies_done(self, spec: StepSpec) -> bool:
        return all(self._results[d].status in ("Succeeded", "Skipped") for d in spec.depends_on)

    def _skip_reason(self, spec: StepSpec) -> str | None:
        for gate in spec.gates:
            outcome = self._properties.get(gate.condition, {}).get("Outcome")
            if self._results[gate.condition].status == "Succeeded" and outcome != gate.outcome:
                branch = "IfSteps" if gate.outcome else "ElseSteps"
                return f"{gate.condition} evaluated to {outcome}; this step is in its {branch}"
        for dependency in spec.depends_on:
            if self._results[dependency].status == "Skipped":
                return f"depends on skipped step {dependency}"
        return None

    def _execute(self, spec: StepSpec) -> StepResult:
        """Run one step (in a worker thread); every failure becomes the step's result."""
        result = StepResult(spec.name, spec.type)
        started = time.monotonic()
        try:
            self._run_step(spec, result)
            result.status = "Succeeded"
        except StepFailed as failure:
            result.status, result.failure_reason = "Failed", self._explained(failure.reason)
            result.log_path = result.log_path or failure.log_path
        except EngineError as error:
            result.status, result.failure_reason = "Failed", self._explained(str(error))
        except Exception as error:  # a bug (or a full disk) must fail the step, not hang the run
            result.status = "Failed"
            result.failure_reason = (f"no space left on device while writing under {self._context.work_dir} "
                                     f"({error}); free space there and run again" if is_disk_full(error)
                                     else f"internal error: {error!r}\n{traceback.format_exc()}")
        result.duration_seconds = time.monotonic() - started
        return result

    def _run_step(self, spec: StepSpec, result: StepResult) -> None:
        arguments = self._resolver.resolve(spec.arguments)
        cache_key = self._cache.key(spec, arguments) if cacheable(spec.type) else None
        entry = self._cache.lookup(spec, cache_key) if cache_key else None
        if entry:
            result.cache_hit, result.properties, result.log_path = True, entry.properties, entry.log_path
            self._reused[spec.name] = entry
            return
        output = self._run_with_retries(spec, arguments, result)
        result.properties, result.log_path, result.detail = output.properties, output.log_path, output.detail
        if cache_key:
            self._cache.store(spec, cache_key, arguments, output, self._context.execution.execution_id)

    def _run_with_retries(self, spec: StepSpec, arguments: dict[str, Any], result: StepResult):
        """Run the step, retrying a transient fault as long as a retry policy of the step allows."""
        started = time.monotonic()
        retries_made: collections.Counter = collections.Counter()  # per policy, as each has its own limit
        while True:
            try:
                return STEP_KINDS[spec.type].run(spec, arguments, self._context)
            except TransientFault as fault:
                policy = policy_for(spec.retry_policies, fault.exception_type)
                delay = policy.delay_before_retry(retries_made[policy], time.monotonic() - started) if policy else None
                if delay is None:
                    why = (f"still failing after {len(result.retried) + 1} attempts, the limit of its retry policy"
                           if policy else "no retry policy of the step names it")
                    raise StepFailed(f"{fault} ({fault.exception_type}; {why})") from None
                retries_made[policy] += 1
                result.retried.append(f"{fault.exception_type}: {fault}")
                self._context.control.pause(delay)

    def _explained(self, reason: str) -> str:
        """A failure caused by a cache hit whose outputs were deleted since says so in its first line.

        The service hands out a hit without checking the earlier run's outputs, and so does the
        engine; what follows must not be a mystery.
        """
        for name, entry in list(self._reused.items()):
            missing = [uri for uri in entry.published_uris if uri in reason and not self._context.s3.exists(uri)]
            if missing:
                first, _, rest = reason.partition("\n")
                return (f"{first} ({missing[0]} was published by step {name} in execution "
                        f"{entry.execution_id} and deleted since; this run reused that step from the step "
                        f"cache, as SageMaker would; delete {entry.path.parent} to make it run again)"
                        + (f"\n{rest}" if rest else ""))
        return reason

    def _record(self, result: StepResult) -> None:
        self._results[result.name] = result
        if result.status == "Succeeded":
            self._properties[result.name] = result.properties
        elif self._failed is None:
            self._failed = result
        self._on_event(StepEvent("finished", result.name, result.step_type, result))

    def _execution_result(self, duration: float) -> ExecutionResult:
        failed = self._failed
        execution = self._context.execution
        return ExecutionResult(
            pipeline_name=execution.pipeline_name, execution_id=execution.execution_id,
            execution_arn=execution.execution_arn, status="Failed" if failed else "Succeeded",
            steps=self._results, parameters=self._parameters, duration_seconds=duration,
            failed_step=failed.name if failed else None,
            failure_reason=failed.failure_reason if failed else None,
            fail_message=failed.failure_reason if failed and failed.step_type == "Fail" else None,
            registered_model_packages=[r.properties for r in self._results.values()
                                       if r.step_type == "RegisterModel" and r.status == "Succeeded"],
            logs_dir=self._context.execution_dir / "logs")
