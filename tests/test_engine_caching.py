"""Step caching: hits, misses, expiry, and what must never become a cache entry."""

import os
import signal
import threading
import time

import pytest

from localengine.definition import parse_duration
from localengine.errors import DefinitionError
from test_engine_support import BUCKET, Env, get, join, parameter, processing_step

COUNTING_SCRIPT = """
    import os, sys, time
    with open(os.environ["RUNS_FILE"], "a") as runs:
        runs.write("run\\n")
    out = os.path.join(os.environ["SM_OPT_ML"], "processing", "data")
    open(os.path.join(out, "part.csv"), "w").write("rows")
    if os.path.exists(os.environ["RUNS_FILE"] + ".fail"):
        sys.exit("asked to fail")
    time.sleep(float(os.environ.get("SLEEP", "0")))
"""


def cached_step(env, expire_after="P30D", sleep=0.0, **kwargs):
    code = env.script("count.py", COUNTING_SCRIPT)
    kwargs.setdefault("outputs", {"data": f"{BUCKET}/prepared"})
    return processing_step("Prepare", code,
                           environment={"RUNS_FILE": str(env.tmp / "runs"), "SLEEP": str(sleep)},
                           CacheConfig={"Enabled": True, "ExpireAfter": expire_after}, **kwargs)


def runs(env):
    path = env.tmp / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_identical_arguments_hit_the_cache_and_reuse_properties(tmp_path):
    env = Env(tmp_path)
    first = env.run([cached_step(env)])
    second = env.run([cached_step(env)])
    assert runs(env) == 1
    assert not first.steps["Prepare"].cache_hit and second.steps["Prepare"].cache_hit
    assert second.steps["Prepare"].properties["ProcessingJobName"] == first.steps["Prepare"].properties["ProcessingJobName"]
    assert second.steps["Prepare"].log_path == first.steps["Prepare"].log_path


def test_changed_resolved_arguments_miss(tmp_path):
    env = Env(tmp_path)
    declared = [parameter("Rows", "Integer", 10)]
    step = cached_step(env, arguments=["--rows", get("Parameters.Rows")])
    env.run([step], declared)
    env.run([step], declared, parameters={"Rows": "10"})  # same resolved value: hit
    assert runs(env) == 1
    changed = env.run([step], declared, parameters={"Rows": "20"})
    assert runs(env) == 2 and not changed.steps["Prepare"].cache_hit


def test_an_execution_variable_in_the_arguments_never_hits(tmp_path):
    env = Env(tmp_path)
    step = cached_step(env, arguments=["--run", join("", get("Execution.PipelineExecutionId"))])
    env.run([step])
    env.run([step])
    assert runs(env) == 2


def test_entries_expire(tmp_path):
    env = Env(tmp_path)
    env.run([cached_step(env, expire_after="PT1S")])
    env.run([cached_step(env, expire_after="PT1S")])
    assert runs(env) == 1
    time.sleep(1.1)
    expired = env.run([cached_step(env, expire_after="PT1S")])
    assert runs(env) == 2 and not expired.steps["Prepare"].cache_hit


def test_caching_off_always_runs_but_still_records_the_success(tmp_path):
    env = Env(tmp_path)
    uncached = cached_step(env)
    del uncached["CacheConfig"]
    env.run([uncached])
    env.run([uncached])
    assert runs(env) == 2
    assert env.run([cached_step(env)]).steps["Prepare"].cache_hit  # an earlier successful run counts


def test_a_failed_step_is_never_cached_and_publishes_nothing(tmp_path):
    env = Env(tmp_path)
    (tmp_path / "runs.fail").touch()
    failed = env.run([cached_step(env)])
    assert failed.status == "Failed" and "asked to fail" in failed.failure_reason
    assert not env.s3.exists(f"{BUCKET}/prepared")  # the partial output stayed in the sandbox
    (tmp_path / "runs.fail").unlink()
    retried = env.run([cached_step(env)])
    assert retried.status == "Succeeded" and not retried.steps["Prepare"].cache_hit
    assert runs(env) == 2 and env.s3.exists(f"{BUCKET}/prepared/part.csv")


def test_an_interrupted_step_is_killed_and_never_cached(tmp_path):
    env = Env(tmp_path)
    # Ctrl-C while the job sleeps after writing its output into the sandbox.
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        env.run([cached_step(env, sleep=30)])
    assert time.monotonic() - started < 10
    assert runs(env) == 1 and not env.s3.exists(f"{BUCKET}/prepared")
    rerun = env.run([cached_step(env)])
    assert not rerun.steps["Prepare"].cache_hit and runs(env) == 2


def test_a_hit_whose_outputs_were_deleted_is_used_and_the_failure_that_follows_says_why(tmp_path):
    # The service hands out a cache hit without checking the earlier run's outputs; so does the engine.
    env = Env(tmp_path)
    reader = processing_step("Read", env.script("read.py", "print('read')"),
                             inputs={"data": get("Steps.Prepare.ProcessingOutputConfig.Outputs['data'].S3Output.S3Uri")})
    env.run([cached_step(env), reader])
    (env.s3.path_for(f"{BUCKET}/prepared/part.csv")).unlink()
    again = env.run([cached_step(env), reader])
    assert again.steps["Prepare"].cache_hit and runs(env) == 1
    assert again.failed_step == "Read"
    first_line = again.failure_reason.splitlines()[0]
    assert f"{BUCKET}/prepared was published by step Prepare in execution" in first_line
    assert "reused that step from the step cache, as SageMaker would" in first_line
    assert str(env.work_dir / "cache" / "Prepare") in first_line


def test_only_the_documented_key_attributes_decide_a_hit(tmp_path):
    # "Default cache key attributes by pipeline step type": for Processing, AppSpecification,
    # Environment and ProcessingInputs. Instance type, outputs, role and stopping condition are not.
    env = Env(tmp_path)
    env.run([cached_step(env)])
    other_resources = cached_step(env, outputs={"data": f"{BUCKET}/elsewhere"})
    other_resources["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.m5.4xlarge"
    other_resources["Arguments"]["RoleArn"] = "arn:aws:iam::123456789012:role/other"
    other_resources["Arguments"]["StoppingCondition"] = {"MaxRuntimeInSeconds": 60}
    reused = env.run([other_resources])
    assert runs(env) == 1 and reused.steps["Prepare"].cache_hit
    # ...and the hit hands out the earlier run's properties, outputs included, as the service does.
    outputs = reused.steps["Prepare"].properties["ProcessingOutputConfig"]["Outputs"]
    assert outputs[0]["S3Output"]["S3Uri"] == f"{BUCKET}/prepared"
    other_environment = cached_step(env)
    other_environment["Arguments"]["Environment"]["EXTRA"] = "1"
    assert not env.run([other_environment]).steps["Prepare"].cache_hit and runs(env) == 2


@pytest.mark.parametrize("text, seconds", [
    ("P30D", 30 * 86400), ("PT1H", 3600), ("PT1H30M", 5400), ("P1W", 7 * 86400), ("PT0.5S", 0.5),
    ("P1Y2M3DT4H5M6S", (365 + 60 + 3) * 86400 + 4 * 3600 + 5 * 60 + 6),
    # the service's documented short forms (page "Turn on step caching")
    ("30d", 30 * 86400), ("5y", 5 * 365 * 86400), ("T16m", 16 * 60), ("30dT5h", 30 * 86400 + 5 * 3600),
    ("30DT5h", 30 * 86400 + 5 * 3600),
])
def test_iso_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "T", "P1H", "1 day", "30", "d30"])
def test_malformed_durations_are_rejected(text):
    with pytest.raises(DefinitionError, match="is not a duration"):
        parse_duration(text)
