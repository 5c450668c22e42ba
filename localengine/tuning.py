"""Tuning steps: a CreateHyperParameterTuningJob request run as a local random search.

SageMaker's default strategy is Bayesian optimisation, which picks each new trial from
the results of earlier ones. Here every strategy except Grid is a random search: all
trials' values are drawn up front from the ranges (honouring ``ScalingType``) with a
random generator seeded from ``RandomSeed`` or, without it, from the resolved
arguments, so the same definition and inputs always try the same values. Grid walks
the categorical combinations in order. There is no early stopping and no warm start.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import queue
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .context import RunContext, StepOutput
from .errors import Cancelled, DefinitionError, EngineError, StepFailed, UnsupportedConstruct
from .expressions import format_timestamp
from .jobs import now
from .names import arn, random_token
from .spec import StepSpec
from .training import check_training_request, run_training_job

TUNING_PROPERTIES = frozenset({
    "HyperParameterTuningJobName", "HyperParameterTuningJobArn", "HyperParameterTuningJobStatus",
    "BestTrainingJob", "TrainingJobSummaries", "TrainingJobStatusCounters",
    "ObjectiveStatusCounters", "CreationTime", "HyperParameterTuningEndTime", "LastModifiedTime",
})
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
TUNING_JOB_NAME_LIMIT = 32


def check_tuning(spec: StepSpec) -> None:
    where = f"Tuning step {spec.name}"
    arguments = spec.arguments
    if "TrainingJobDefinitions" in arguments:
        raise UnsupportedConstruct(f"TrainingJobDefinitions (several training definitions) in {where}")
    definition = arguments.get("TrainingJobDefinition")
    if not definition:
        raise DefinitionError(f"{where} has no TrainingJobDefinition")
    check_training_request(definition, where)
    config = arguments.get("HyperParameterTuningJobConfig") or {}
    strategy = config.get("Strategy", "Bayesian")
    if isinstance(strategy, str) and strategy not in STRATEGIES:
        raise UnsupportedConstruct(f"tuning strategy {strategy!r} in {where}")
    ranges = config.get("ParameterRanges") or {}
    for kind, scalings in (("Integer", ("Auto", "Linear", "Logarithmic")), ("Continuous", SCALING_TYPES)):
        for parameter_range in ranges.get(f"{kind}ParameterRanges") or []:
            scaling = parameter_range.get("ScalingType", "Auto")
            if isinstance(scaling, str) and scaling not in scalings:
                raise UnsupportedConstruct(f"ScalingType {scaling} for {kind} range "
                                           f"{parameter_range.get('Name')} in {where}")
    if strategy == "Grid" and (ranges.get("IntegerParameterRanges") or ranges.get("ContinuousParameterRanges")):
        raise DefinitionError(f"{where}: the Grid strategy takes categorical ranges only")


def draw_trials(config: dict[str, Any], count: int, seed: int) -> list[dict[str, str]]:
    """The tuned hyperparameters of each trial, as the text values a training job receives."""
    ranges = config.get("ParameterRanges") or {}
    categorical = ranges.get("CategoricalParameterRanges") or []
    if config.get("Strategy") == "Grid":
        names = [r["Name"] for r in categorical]
        combinations = itertools.product(*(r["Values"] for r in categorical))
        return [dict(zip(names, values)) for values in itertools.islice(combinations, count)]
    rng = random.Random(seed)
    trials = []
    for _ in range(count):
        values = {r["Name"]: str(_draw_integer(rng, r)) for r in ranges.get("IntegerParameterRanges") or []}
        values.update({r["Name"]: repr(_draw_continuous(rng, r))
                       for r in ranges.get("ContinuousParameterRanges") or []})
        values.update({r["Name"]: rng.choice(r["Values"]) for r in categorical})
        trials.append(values)
    return trials


def _bounds(parameter_range: dict[str, Any], parse) -> tuple[Any, Any]:
    low, high = parse(parameter_range["MinValue"]), parse(parameter_range["MaxValue"])
    if low > high:
        raise EngineError(f"range {parameter_range['Name']}: MinValue {low} is above MaxValue {high}")
    return low, high


def _draw_integer(rng: random.Random, parameter_range: dict[str, Any]) -> int:
    low, high = _bounds(parameter_range, int)
    if parameter_range.get("ScalingType") == "Logarithmic":
        _require_positive(parameter_range, low)
        # Uniform in log space over [low, high + 1) so that every integer can come out.
        return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))
    return rng.randint(low, high)


def _draw_continuous(rng: random.Random, parameter_range: dict[str, Any]) -> float:
    low, high = _bounds(parameter_range, float)
    scaling = parameter_range.get("ScalingType", "Auto")
    if scaling == "Logarithmic":
        _require_positive(parameter_range, low)
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if scaling == "ReverseLogarithmic":
        if not 0 <= low < high < 1:
            raise EngineError(f"range {parameter_range['Name']}: ReverseLogarithmic needs 0 <= MinValue < MaxValue < 1")
        return 1 - math.exp(rng.uniform(math.log(1 - high), math.log(1 - low)))
    return rng.uniform(low, high)


def _require_positive(parameter_range: dict[str, Any], low: float) -> None:
    if low <= 0:
        raise EngineError(f"range {parameter_range['Name']}: Logarithmic scaling needs MinValue > 0")


# A tuning job whose first training jobs all fail gives up rather than spending its whole budget.
FAILED_TRIALS_BEFORE_GIVING_UP = 5


def tuning_seed(config: dict[str, Any], arguments: dict[str, Any]) -> int:
    """``RandomSeed`` if the definition sets one, else a hash of the resolved arguments."""
    if config.get("RandomSeed") is not None:
        return int(config["RandomSeed"])
    digest = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()
    return int(digest[:16], 16)


def run_tuning(spec: StepSpec, arguments: dict[str, Any], context: RunContext) -> StepOutput:
    config = arguments["HyperParameterTuningJobConfig"]
    limits = config.get("ResourceLimits") or {}
    count = int(limits.get("MaxNumberOfTrainingJobs") or 1)
    parallel = max(1, min(int(limits.get("MaxParallelTrainingJobs") or 1), context.control.max_parallel_jobs, count))
    tuning_job = context.job_name(spec.name, max_length=TUNING_JOB_NAME_LIMIT)
    started = now()
    trials = draw_trials(config, count, tuning_seed(config, arguments))
    search = _Search(spec, arguments, context, tuning_job, cpus=max(1, context.cpu_count // parallel))
    with ThreadPoolExecutor(parallel, thread_name_prefix=f"{spec.name}-trial") as pool:
        summaries = [s for s in pool.map(search.run_trial, range(len(trials)), trials) if s is not None]
    ranked = _rank(summaries, config["HyperParameterTuningJobObjective"]["Type"])
    if not ranked:
        raise StepFailed(_no_result_reason(summaries, config), log_path=search.log_path)
    finished = format_timestamp(now())
    properties = {
        **arguments, "HyperParameterTuningJobName": tuning_job,
        "HyperParameterTuningJobArn": arn(f"hyper-parameter-tuning-job/{tuning_job}"),
        "HyperParameterTuningJobStatus": "Completed", "BestTrainingJob": ranked[0],
        "TrainingJobSummaries": ranked + [s for s in summaries if s not in ranked],
        **_counters(summaries),
        "CreationTime": format_timestamp(started), "HyperParameterTuningEndTime": finished,
        "LastModifiedTime": finished,
    }
    return StepOutput(properties, search.log_path, search.model_uris)


class _Search:
    """Runs the trials of one tuning job and writes a line per trial to the step's log."""

    def __init__(self, spec: StepSpec, arguments: dict[str, Any], context: RunContext,
                 tuning_job: str, *, cpus: int):
        self._spec, self._context, self._tuning_job, self._cpus = spec, context, tuning_job, cpus
        self._definition = arguments["TrainingJobDefinition"]
        self._objective = arguments["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
        self.log_path = context.log_path(spec.name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text(f"tuning job {tuning_job}: objective {self._objective['Type']} "
                                 f"{self._objective['MetricName']}\n")
        self.model_uris: list[str] = []
        self._lock = threading.Lock()
        self._finished: list[bool] = []
        # Each running trial gets a share of the cores, as each has an instance of its own in the cloud.
        self._shares: queue.Queue[frozenset[int]] = queue.Queue()
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        for start in range(0, len(cores) - cpus + 1, cpus):
            self._shares.put(frozenset(cores[start:start + cpus]))  # whether each finished trial succeeded, in finishing order

    def _given_up(self) -> bool:
        """SageMaker stops a tuning job whose first training jobs all fail."""
        with self._lock:
            first = self._finished[:FAILED_TRIALS_BEFORE_GIVING_UP]
            return len(first) == FAILED_TRIALS_BEFORE_GIVING_UP and not any(first)

    def run_trial(self, index: int, tuned: dict[str, str]) -> dict[str, Any] | None:
        if self._given_up():
            return None
        job = f"{self._tuning_job}-{index + 1:03d}-{random_token(8)}"
        request = {key: value for key, value in self._definition.items() if key != "StaticHyperParameters"}
        # The service adds the objective's name to every trial's hyperparameters (the toolkits keep it
        # from the script).
        request["HyperParameters"] = {**(self._definition.get("StaticHyperParameters") or {}), **tuned,
                                      "_tuning_objective_metric": self._objective["MetricName"]}
        summary = {"TrainingJobName": job, "TrainingJobArn": arn(f"training-job/{job}"),
                   "TunedHyperParameters": tuned, "CreationTime": format_timestamp(now())}
        trial_log = self._context.log_path(self._spec.name, job)
        try:
            share = self._shares.get_nowait()
        except queue.Empty:
            share = None
        try:
            properties = run_training_job(job, request, self._context, log_path=trial_log, cpus=self._cpus,
                                          cpu_set=share)
        except Cancelled:
            raise
        except EngineError as error:
            summary.update(TrainingJobStatus="Failed", ObjectiveStatus="Failed", FailureReason=str(error))
        else:
            summary.update(self._objective_of(properties), TrainingJobStatus="Completed",
                           TrainingStartTime=properties["TrainingStartTime"],
                           TrainingEndTime=properties["TrainingEndTime"])
            with self._lock:
                self.model_uris.append(properties["ModelArtifacts"]["S3ModelArtifacts"])
        finally:
            if share is not None:
                self._shares.put(share)
        with self._lock:
            self._finished.append(summary["TrainingJobStatus"] == "Completed")
        self._log(summary, trial_log)
        return summary

    def _objective_of(self, properties: dict[str, Any]) -> dict[str, Any]:
        name = self._objective["MetricName"]
        values = [m["Value"] for m in properties["FinalMetricDataList"] if m["MetricName"] == name]
        if not values:
            return {"ObjectiveStatus": "Failed"}
        return {"ObjectiveStatus": "Succeeded", "FinalHyperParameterTuningJobObjectiveMetric": {
            "Type": self._objective["Type"], "MetricName": name, "Value": values[0]}}

    def _log(self, summary: dict[str, Any], trial_log) -> None:
        objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value", "-")
        line = (f"{summary['TrainingJobName']} {summary['TrainingJobStatus']} objective={objective} "
                f"{json.dumps(summary['TunedHyperParameters'], sort_keys=True)} log={trial_log}\n")
        with self._lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line)


def _rank(summaries: list[dict[str, Any]], objective_type: str) -> list[dict[str, Any]]:
    """Trials with an objective value, best first (ties keep trial order)."""
    scored = [s for s in summaries if s["ObjectiveStatus"] == "Succeeded"]
    sign = -1 if objective_type == "Maximize" else 1
    return sorted(scored, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])


def _counters(summaries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    completed = sum(s["TrainingJobStatus"] == "Completed" for s in summaries)
    scored = sum(s["ObjectiveStatus"] == "Succeeded" for s in summaries)
    return {"TrainingJobStatusCounters": {"Completed": completed, "InProgress": 0, "RetryableError": 0,
                                          "NonRetryableError": len(summaries) - completed, "Stopped": 0},
            "ObjectiveStatusCounters": {"Succeeded": scored, "Pending": 0, "Failed": len(summaries) - scored}}


def _no_result_reason(summaries: list[dict[str, Any]], config: dict[str, Any]) -> str:
    failed = [s for s in summaries if s["TrainingJobStatus"] == "Failed"]
    planned = int((config.get("ResourceLimits") or {}).get("MaxNumberOfTrainingJobs") or 1)
    if len(failed) == len(summaries) and len(summaries) < planned:
        return (f"the first {len(failed)} training jobs failed, so the tuning job stopped before starting the "
                f"other {planned - len(summaries)} (as SageMaker stops one); the first failed with: "
                f"{failed[0]['FailureReason']}")
    if len(failed) == len(summaries):
        return (f"all {len(summaries)} training jobs failed; the first failed with: "
                f"{failed[0]['FailureReason']}")
    metric = config["HyperParameterTuningJobObjective"]["MetricName"]
    return f"no training job reported the objective metric {metric} (check MetricDefinitions)"
