"""`plan`: the prediction of cache hits, checked against what the engine then does."""

from localengine.planning import format_plan, plan_local_execution
from test_engine_support import BUCKET, Env, definition, get, join, parameter, processing_step

PREPARE = """
    import os
    out = os.path.join(os.environ["SM_OPT_ML"], "processing", "data")
    open(os.path.join(out, "part.csv"), "w").write("rows")
"""
CACHED = {"CacheConfig": {"Enabled": True, "ExpireAfter": "30d"}}
DECLARED = [parameter("Rows", "Integer", 10), parameter("Size", "String", "ml.m5.large")]


def steps(env, prepare_code=PREPARE, read_output=False, code_key="v1/prepare.py"):
    prepare = processing_step("Prepare", env.script(code_key, prepare_code),
                              outputs={"data": join("/", BUCKET, "prepared", get("Parameters.Rows"))},
                              arguments=["--rows", get("Parameters.Rows")], **CACHED)
    prepare["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] = get("Parameters.Size")
    data = get("Steps.Prepare.ProcessingOutputConfig.Outputs['data'].S3Output.S3Uri")
    read = processing_step("Read", env.script("read.py", "print('read')"), inputs={"data": data},
                           arguments=["--job", get("Steps.Prepare.ProcessingJobName")] if read_output else None,
                           **CACHED)
    return [prepare, read]


def predicted_then_actual(env, step_list, parameters=None):
    plans = plan_local_execution(definition(step_list, DECLARED), s3=env.s3, work_dir=env.work_dir,
                                 parameters=parameters)
    result = env.run(step_list, DECLARED, parameters=parameters)
    assert result.succeeded, result.failure_reason
    predicted = {plan.name: plan.verdict == "cached" for plan in plans}
    actual = {name: step.cache_hit for name, step in result.steps.items()}
    assert predicted == actual, format_plan(plans)
    return {plan.name: plan for plan in plans}


def test_first_run_unchanged_rerun_and_an_instance_type_change(tmp_path):
    env = Env(tmp_path)
    first = predicted_then_actual(env, steps(env))
    assert first["Prepare"].reasons == ["no earlier successful run of this step"]
    again = predicted_then_actual(env, steps(env))
    assert again["Prepare"].verdict == again["Read"].verdict == "cached"
    # Instance types are not cache key attributes: the service, and so the engine, reuse the run.
    bigger = predicted_then_actual(env, steps(env), {"Size": "ml.m5.4xlarge"})
    assert bigger["Prepare"].verdict == "cached"


def test_a_changed_argument_is_named_and_what_follows_is_predicted(tmp_path):
    env = Env(tmp_path)
    predicted_then_actual(env, steps(env, read_output=True))
    changed = predicted_then_actual(env, steps(env, read_output=True), {"Rows": "20"})
    assert changed["Prepare"].reasons == ["argument changed: AppSpecification.ContainerArguments[1]: 10 -> 20"]
    assert changed["Read"].verdict == "runs"
    assert changed["Read"].reasons == [
        "takes Steps.Prepare.ProcessingJobName, which Prepare produces anew when it runs again"]


def test_a_changed_script_reruns_its_step_and_an_echoed_output_uri_keeps_the_next_one_cached(tmp_path):
    # Read takes only Prepare's output location, an echo of Prepare's own request: unchanged when
    # Prepare re-runs, so Read is a hit, exactly as the service decides (a reason to key output
    # locations by what produced them).
    env = Env(tmp_path)
    predicted_then_actual(env, steps(env))
    plans = predicted_then_actual(env, steps(env, PREPARE + "    # changed\n", code_key="v2/prepare.py"))
    assert plans["Prepare"].reasons == [
        f"code changed: ProcessingInputs['code'].S3Input.S3Uri: {BUCKET}/code/v1/prepare.py -> "
        f"{BUCKET}/code/v2/prepare.py"]
    assert plans["Read"].verdict == "cached"


def test_a_step_with_caching_off_always_runs_and_what_follows_assumes_its_last_answer(tmp_path):
    env = Env(tmp_path)
    uncached = steps(env, read_output=True)
    del uncached[0]["CacheConfig"]
    predicted_then_actual(env, uncached)
    plans = predicted_then_actual(env, uncached)
    assert plans["Prepare"].reasons == ["caching is off for this step"]
    assert plans["Read"].verdict == "runs"  # it takes the new job name
    assert plans["Read"].assumes[0].startswith("Prepare answers as in execution ")
    lines = format_plan(list(plans.values()))
    assert lines[-1] == "0 job step(s) from the cache, 2 to run"
