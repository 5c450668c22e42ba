"""Tuning: random search over the ranges, trials as real training processes."""

import itertools
import json
import math
import os
import statistics
import tarfile

from localengine import format_summary
from localengine.results import readable_number
from localengine.tuning import draw_trials
from test_engine_support import BUCKET, Env, get, join, model_step, training_request

TRIAL_SCRIPT = """
    import argparse, json, os, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float)
    parser.add_argument("--depth", type=int)
    parser.add_argument("--booster")
    parser.add_argument("--fixed")
    args = parser.parse_args()  # fails on an option it does not know, as --_tuning_objective_metric
    config = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json")))
    start = time.time()
    if args.booster == "broken":
        sys.exit("broken booster")
    time.sleep(SLEEP)
    loss = (args.rate - 0.3) ** 2 + args.depth / 100
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "trial.json"), "w") as f:
        json.dump({"rate": args.rate, "depth": args.depth, "fixed": args.fixed,
                   "objective": config["_tuning_objective_metric"]}, f)
    with open(os.path.join(os.environ["LOG_DIR"], os.environ["TRAINING_JOB_NAME"]), "w") as f:
        json.dump({"start": start, "end": time.time(), "omp": os.environ["OMP_NUM_THREADS"],
                   "cpus": os.environ["SM_NUM_CPUS"], "cores": sorted(os.sched_getaffinity(0))}, f)
    print(f"loss={loss:.6f}")
"""


def tuning_step(env, *, jobs=4, parallel=2, objective="Minimize", categorical=("gbtree", "dart"), sleep=0.0,
                strategy="Random", seed=None):
    source = env.sourcedir({"train.py": TRIAL_SCRIPT.replace("SLEEP", str(sleep))},
                           key=f"code/{strategy}-{sleep}/sourcedir.tar.gz")
    definition = training_request(source, hyperparameters={"fixed": '"yes"'}, output_path=f"{BUCKET}/tuning",
                                  metric_definitions=[{"Name": "valid:loss", "Regex": r"loss=([0-9.]+)"}])
    definition["StaticHyperParameters"] = definition.pop("HyperParameters")
    definition["Environment"] = {"LOG_DIR": str(env.tmp / "trials")}
    (env.tmp / "trials").mkdir(exist_ok=True)
    return {"Name": "Tune", "Type": "Tuning", "Arguments": {
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "ResourceLimits": {"MaxParallelTrainingJobs": parallel, "MaxNumberOfTrainingJobs": jobs},
            "HyperParameterTuningJobObjective": {"Type": objective, "MetricName": "valid:loss"},
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "depth", "MinValue": "1", "MaxValue": "9", "ScalingType": "Auto"}],
                "ContinuousParameterRanges": [{"Name": "rate", "MinValue": "0.01", "MaxValue": "1.0",
                                               "ScalingType": "Logarithmic"}],
                "CategoricalParameterRanges": [{"Name": "booster", "Values": list(categorical)}]},
            "TrainingJobEarlyStoppingType": "Off", **({"RandomSeed": seed} if seed is not None else {})},
        "TrainingJobDefinition": definition}}


def trial_logs(env):
    return [json.loads(p.read_text()) for p in (env.tmp / "trials").iterdir()]


def loss_of(summary):
    return summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]


def test_trials_best_job_and_top_model_reference(tmp_path):
    env = Env(tmp_path)
    top_model = model_step("Top", join("/", "s3:/", "bkt", "tuning", get("Steps.Tune.TrainingJobSummaries[0].TrainingJobName"),
                                      "output/model.tar.gz"))
    best_name = model_step("Best", get("Steps.Tune.BestTrainingJob.TrainingJobName"))
    result = env.run([tuning_step(env, jobs=5, parallel=2), top_model, best_name], max_parallel_jobs=2)
    assert result.status == "Succeeded", result.failure_reason
    properties = result.steps["Tune"].properties
    summaries = properties["TrainingJobSummaries"]
    assert len(summaries) == 5 and len(trial_logs(env)) == 5
    losses = [loss_of(s) for s in summaries]
    assert losses == sorted(losses)
    best = properties["BestTrainingJob"]
    assert best == summaries[0]
    tuned = best["TunedHyperParameters"]
    assert loss_of(best) == round((float(tuned["rate"]) - 0.3) ** 2 + int(tuned["depth"]) / 100, 6)
    assert result.steps["Best"].properties["PrimaryContainer"]["ModelDataUrl"] == best["TrainingJobName"]
    top_uri = result.steps["Top"].properties["PrimaryContainer"]["ModelDataUrl"]
    assert top_uri == f"{BUCKET}/tuning/{best['TrainingJobName']}/output/model.tar.gz"
    assert env.s3.exists(top_uri)
    with tarfile.open(env.s3.path_for(top_uri)) as model:
        trained_with = json.load(model.extractfile("trial.json"))
    assert trained_with["fixed"] == "yes" and trained_with["objective"] == "valid:loss"
    assert len(properties["HyperParameterTuningJobName"]) <= 32
    assert all(s["TrainingJobName"].startswith(properties["HyperParameterTuningJobName"]) for s in summaries)
    for summary in summaries:
        values = summary["TunedHyperParameters"]
        assert 1 <= int(values["depth"]) <= 9 and 0.01 <= float(values["rate"]) <= 1.0
        assert values["booster"] in ("gbtree", "dart")
    assert properties["TrainingJobStatusCounters"]["Completed"] == 5
    assert f"best of 5 trials: valid:loss={readable_number(loss_of(best))} with booster={tuned['booster']}, depth={tuned['depth']}, " \
           f"rate={float(tuned['rate']):.4g} ({best['TrainingJobName']})" in format_summary(result)


def test_maximize_ranks_the_highest_objective_first(tmp_path):
    env = Env(tmp_path)
    result = env.run([tuning_step(env, jobs=3, parallel=1, objective="Maximize")])
    losses = [loss_of(s) for s in result.steps["Tune"].properties["TrainingJobSummaries"]]
    assert losses == sorted(losses, reverse=True)


def test_parallel_trials_are_bounded_and_share_the_cores(tmp_path):
    env = Env(tmp_path)
    result = env.run([tuning_step(env, jobs=4, parallel=3, sleep=0.4)], max_parallel_jobs=2)
    assert result.status == "Succeeded", result.failure_reason
    logs = trial_logs(env)
    moments = sorted([(log["start"], 1) for log in logs] + [(log["end"], -1) for log in logs])
    running = peak = 0
    for _, change in moments:
        running += change
        peak = max(peak, running)
    assert peak == 2  # MaxParallelTrainingJobs 3, capped by max_parallel_jobs 2
    cores = int(logs[0]["cpus"])
    assert all(log["omp"] == log["cpus"] == str(cores) for log in logs)
    assert cores == max(1, (os.cpu_count() or 1) // 2)
    # Each trial runs on a share of the cores of its own, as it would on an instance of its own.
    assert all(len(log["cores"]) == cores for log in logs)
    for one, other in itertools.combinations(logs, 2):
        if one["start"] < other["end"] and other["start"] < one["end"]:  # they ran at the same time
            assert not set(one["cores"]) & set(other["cores"])


def test_a_rerun_draws_the_same_values(tmp_path):
    env = Env(tmp_path)
    first = env.run([tuning_step(env, jobs=3)])
    second = env.run([tuning_step(env, jobs=3)])
    values = [[s["TunedHyperParameters"] for s in run.steps["Tune"].properties["TrainingJobSummaries"]]
              for run in (first, second)]
    assert values[0] == values[1]


def test_failed_trials_are_recorded_and_only_all_failing_fails_the_step(tmp_path):
    env = Env(tmp_path)
    # RandomSeed 1 draws both boosters (2 broken of 6); without it the seed would hash tmp paths.
    result = env.run([tuning_step(env, jobs=6, parallel=2, categorical=("gbtree", "broken"), seed=1)])
    assert result.status == "Succeeded", result.failure_reason
    summaries = result.steps["Tune"].properties["TrainingJobSummaries"]
    failed = [s for s in summaries if s["TrainingJobStatus"] == "Failed"]
    assert len(failed) == 2 and "broken booster" in failed[0]["FailureReason"]
    assert summaries[-len(failed):] == failed  # failed trials rank last
    everything_broken = env.run([tuning_step(env, jobs=2, categorical=("broken",))])
    assert everything_broken.status == "Failed"
    assert "all 2 training jobs failed" in everything_broken.failure_reason
    assert "broken booster" in everything_broken.failure_reason


def test_a_tuning_job_whose_first_five_trials_fail_gives_up_as_the_service_does(tmp_path):
    env = Env(tmp_path)
    result = env.run([tuning_step(env, jobs=9, parallel=1, categorical=("broken",))])
    assert result.status == "Failed"
    summaries = result.steps["Tune"].properties if result.steps["Tune"].properties else None
    assert summaries is None  # a failed step exposes nothing
    assert result.failure_reason.startswith("the first 5 training jobs failed, so the tuning job stopped before "
                                            "starting the other 4 (as SageMaker stops one); the first failed with: ")
    assert len(list((env.work_dir / "executions").glob("*/logs/Tune/*.log"))) == 5


def test_grid_walks_the_categorical_combinations():
    config = {"Strategy": "Grid", "ParameterRanges": {"CategoricalParameterRanges": [
        {"Name": "a", "Values": ["1", "2"]}, {"Name": "b", "Values": ["x", "y"]}]}}
    assert draw_trials(config, 10, seed=0) == [{"a": "1", "b": "x"}, {"a": "1", "b": "y"},
                                               {"a": "2", "b": "x"}, {"a": "2", "b": "y"}]


def test_scaling_types_shape_the_draws():
    def draws(kind, scaling, low, high):
        config = {"ParameterRanges": {f"{kind}ParameterRanges": [
            {"Name": "v", "MinValue": str(low), "MaxValue": str(high), "ScalingType": scaling}]}}
        return [float(t["v"]) for t in draw_trials(config, 400, seed=7)]

    linear = draws("Continuous", "Linear", 0.0001, 1.0)
    logarithmic = draws("Continuous", "Logarithmic", 0.0001, 1.0)
    reverse = draws("Continuous", "ReverseLogarithmic", 0.0, 0.9999)
    integers = draws("Integer", "Logarithmic", 1, 1000)
    assert all(0.0001 <= v <= 1.0 for v in linear + logarithmic) and all(0 <= v <= 0.9999 for v in reverse)
    assert 0.4 < statistics.median(linear) < 0.6
    assert 0.003 < statistics.median(logarithmic) < 0.03  # log-uniform: median near sqrt(1e-4 * 1) = 0.01
    assert 0.97 < statistics.median(reverse) < 0.997  # mass crowds towards 1
    assert all(v == int(v) and 1 <= v <= 1000 for v in integers)
    assert 10 < statistics.median(integers) < 100 and math.isclose(max(integers), 1000, rel_tol=0.5)
    assert draws("Continuous", "Logarithmic", 0.0001, 1.0) == logarithmic  # seeded
