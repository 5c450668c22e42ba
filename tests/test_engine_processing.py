"""The processing container contract, run with real subprocesses."""

import json
import sys
import time

import pytest

from localengine import DefinitionError, EngineError
from localengine.container import Sandbox

from test_engine_support import BUCKET, Env, get, join, json_get, model_step, parameter, processing_step

ECHO_CONTRACT = """
    import json, os, sys
    opt_ml = os.environ["SM_OPT_ML"]
    out = os.path.join(opt_ml, "processing", "report")
    inputs = os.path.join(opt_ml, "processing", "input")
    listing = sorted(os.path.relpath(os.path.join(d, f), inputs) for d, _, fs in os.walk(inputs) for f in fs)
    with open(os.path.join(out, "contract.json"), "w") as f:
        json.dump({"argv": sys.argv, "cwd": os.getcwd(), "inputs": listing, "opt_ml": opt_ml,
                   "mode": os.environ.get("MODE"), "executable": sys.executable,
                   "config": sorted(os.listdir(os.path.join(opt_ml, "config")))}, f)
    print("processed")
"""


def test_inputs_are_copied_outputs_published_and_opt_ml_remapped(tmp_path):
    env = Env(tmp_path)
    env.s3.put_bytes(f"{BUCKET}/raw/part-1.csv", b"a,b\n1,2\n")
    env.s3.put_bytes(f"{BUCKET}/raw/nested/part-2.csv", b"3,4\n")
    env.s3.put_bytes(f"{BUCKET}/single/object.txt", b"x")
    code = env.script("contract.py", ECHO_CONTRACT)
    step = processing_step("Echo", code, inputs={"raw": f"{BUCKET}/raw", "one": f"{BUCKET}/single/object.txt"},
                           outputs={"report": f"{BUCKET}/out/report"},
                           arguments=["--out", "/opt/ml/processing/report", "--flag=/opt/ml/x",
                                      "--count", get("Parameters.Count")],
                           environment={"MODE": join("-", "mode", get("Parameters.Count"))})
    result = env.run([step], [parameter("Count", "Integer", 3)])
    assert result.status == "Succeeded", result.failure_reason
    contract = json.loads(env.s3.read_bytes(f"{BUCKET}/out/report/contract.json"))
    opt_ml = contract["opt_ml"]
    assert opt_ml.endswith("/opt/ml") and opt_ml != "/opt/ml" and str(tmp_path) in opt_ml
    assert contract["argv"] == [f"{opt_ml}/processing/input/code/contract.py", "--out",
                                f"{opt_ml}/processing/report", f"--flag={opt_ml}/x", "--count", "3"]
    assert contract["executable"] == sys.executable
    assert contract["inputs"] == ["code/contract.py", "one/object.txt", "raw/nested/part-2.csv", "raw/part-1.csv"]
    assert contract["mode"] == "mode-3"
    assert contract["config"] == ["processingjobconfig.json", "resourceconfig.json"]
    step_result = result.steps["Echo"]
    outputs = step_result.properties["ProcessingOutputConfig"]["Outputs"]
    assert outputs[0]["S3Output"]["S3Uri"] == f"{BUCKET}/out/report"
    assert step_result.properties["ProcessingJobName"].startswith(f"pipelines-{result.execution_id}-Echo-")
    assert "processed" in step_result.log_path.read_text()
    job_sandbox = tmp_path / "work" / "executions" / result.execution_id / "jobs" / step_result.properties["ProcessingJobName"]
    assert not job_sandbox.exists()  # removed after success


def test_a_fast_mode_job_sees_no_credentials_tokens_or_settings_of_the_caller(tmp_path, monkeypatch):
    secrets = {"AWS_SECRET_ACCESS_KEY": "caller-secret-key-value", "AWS_SESSION_TOKEN": "caller-session-token",
               "GITHUB_TOKEN": "ghp_caller_token_value", "PIPELINE_ROLE_ARN": "caller-role-setting",
               "HTTPS_PROXY": "http://caller-proxy:3128"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "caller-home" / ".aws").mkdir(parents=True)
    (tmp_path / "caller-home" / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = caller\n")
    monkeypatch.setenv("HOME", str(tmp_path / "caller-home"))
    env = Env(tmp_path)
    code = env.script("environment.py", """
        import json, os
        print(json.dumps(dict(os.environ), sort_keys=True))
        print("home has .aws:", os.path.exists(os.path.expanduser("~/.aws")))
    """)
    result = env.run([processing_step("Env", code, environment={"FROM_DEFINITION": "yes"})])
    assert result.status == "Succeeded", result.failure_reason
    log = result.steps["Env"].log_path.read_text()
    seen = json.loads(next(line for line in log.splitlines() if line.startswith("{")))
    assert not any(value in log for value in secrets.values())
    assert seen["FROM_DEFINITION"] == "yes" and seen["AWS_SECRET_ACCESS_KEY"] == "local"
    assert "home has .aws: False" in log and seen["HOME"] != str(tmp_path / "caller-home")
    assert set(seen) - {"FROM_DEFINITION", "HOME", "PYTHONUNBUFFERED", "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
                        "TMPDIR", "PYTHONPATH", "LD_LIBRARY_PATH"} <= {
        name for name in seen if name.startswith(("SM_", "AWS_", "PROCESSING_"))}


def test_a_job_killed_from_outside_fails_its_step_with_a_reason_that_says_so(tmp_path):
    """A real SIGKILL, as the kernel's out-of-memory killer sends it: the step fails, says why, nothing after
    it starts and nothing is cached."""
    env = Env(tmp_path)
    code = env.script("hog.py", """
        import os, signal, sys
        out = os.path.join(os.environ["SM_OPT_ML"], "processing", "out")
        open(os.path.join(out, "half-written.csv"), "w").write("a,b\\n1,")
        print("allocating", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    after = env.script("after.py", "print('must not run')")
    result = env.run([processing_step("Hog", code, outputs={"out": f"{BUCKET}/hog/out"},
                                      CacheConfig={"Enabled": True, "ExpireAfter": "P1D"}),
                      processing_step("After", after, DependsOn=["Hog"])])
    assert result.status == "Failed" and result.failed_step == "Hog"
    assert "was killed (SIGKILL): out of memory" in result.failure_reason
    assert "run fewer jobs at once (a tuning job's MaxParallelTrainingJobs)" in result.failure_reason
    assert "allocating" in result.failure_reason  # the log's tail comes with it
    assert result.steps["After"].status == "NotStarted"
    assert not env.s3.exists(f"{BUCKET}/hog/out/half-written.csv")
    assert not list((tmp_path / "work" / "cache").rglob("*.json"))  # caching was on: a failure is never kept


def test_output_reference_and_property_file_feed_later_steps(tmp_path):
    env = Env(tmp_path)
    code = env.script("evaluate.py", """
        import json, os
        out = os.path.join(os.environ["SM_OPT_ML"], "processing", "evaluation")
        json.dump({"regression_metrics": {"rmse": {"value": 12.5}}, "folds": [{"rmse": 11.0}, {"rmse": 14.0}]},
                  open(os.path.join(out, "evaluation.json"), "w"))
    """)
    evaluate = processing_step("Evaluate", code, outputs={"evaluation": join("/", BUCKET, get("Execution.PipelineExecutionId"), "eval")},
                               PropertyFiles=[{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation",
                                               "FilePath": "evaluation.json"}])
    probe = model_step("Probe", join(" ", get("Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"),
                                     json_get("Evaluate", "EvaluationReport", "regression_metrics.rmse.value"),
                                     json_get("Evaluate", "EvaluationReport", "folds[1].rmse")))
    result = env.run([evaluate, probe])
    assert result.status == "Succeeded", result.failure_reason
    assert result.steps["Probe"].properties["PrimaryContainer"]["ModelDataUrl"] == \
        f"{BUCKET}/{result.execution_id}/eval 12.5 14.0"


def test_failure_surfaces_the_message_and_log_tail_and_publishes_nothing(tmp_path):
    env = Env(tmp_path)
    code = env.script("broken.py", """
        import os, sys
        opt_ml = os.environ["SM_OPT_ML"]
        open(os.path.join(opt_ml, "processing", "data", "partial.csv"), "w").write("half")
        for i in range(30):
            print("progress line", i)
        os.makedirs(os.path.join(opt_ml, "output"), exist_ok=True)
        open(os.path.join(opt_ml, "output", "message"), "w").write("column price is missing")
        sys.exit(3)
    """)
    step = processing_step("Prepare", code, outputs={"data": f"{BUCKET}/prepared"})
    after = model_step("Register", get("Steps.Prepare.ProcessingOutputConfig.Outputs['data'].S3Output.S3Uri"))
    result = env.run([step, after])
    assert result.status == "Failed" and result.failed_step == "Prepare"
    reason = result.steps["Prepare"].failure_reason
    assert reason.startswith("column price is missing (exited with code 3)")
    assert "progress line 29" in reason and "progress line 10" in reason and "progress line 9\n" not in reason
    assert f"--- last 20 lines of {result.steps['Prepare'].log_path} ---" in reason
    assert result.failure_reason == reason
    assert result.steps["Register"].status == "NotStarted"
    assert not env.s3.exists(f"{BUCKET}/prepared")
    assert "progress line 0" in result.steps["Prepare"].log_path.read_text()
    jobs = tmp_path / "work" / "executions" / result.execution_id / "jobs"
    kept = [p.relative_to(jobs).as_posix() for p in jobs.rglob("partial.csv")]
    assert len(kept) == 1 and kept[0].endswith("/opt/ml/processing/data/partial.csv")  # kept to inspect


def test_a_missing_input_fails_the_step_with_its_uri(tmp_path):
    env = Env(tmp_path)
    code = env.script("noop.py", "print('never')")
    result = env.run([processing_step("Read", code, inputs={"raw": f"{BUCKET}/nothing/here"})])
    assert result.status == "Failed"
    assert "processing input raw" in result.failure_reason and f"{BUCKET}/nothing/here" in result.failure_reason


def test_only_opt_ml_paths_are_remapped(tmp_path):
    sandbox = Sandbox(tmp_path / "box")
    opt_ml = str(sandbox.opt_ml)
    assert sandbox.command(["python3", "/opt/ml/code/x.py", "--a=/opt/ml/in", "cd /opt/ml && ls", "/opt/mlflow",
                            "/data/opt/ml/x", "/opt/ml", 3]) == [
        sys.executable, f"{opt_ml}/code/x.py", f"--a={opt_ml}/in", f"cd {opt_ml} && ls", "/opt/mlflow",
        "/data/opt/ml/x", opt_ml, "3"]
    assert sandbox.command(["bash", "-c", "python /opt/ml/x"])[0] == "bash"
    with pytest.raises(EngineError, match="outside /opt/ml"):
        sandbox.local_path("/tmp/input")


def test_processes_left_behind_by_a_job_end_with_it(tmp_path):
    env = Env(tmp_path)
    code = env.script("spawn.py", """
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; print('orphan', flush=True); time.sleep(30)"])
        print("main done", flush=True)
    """)
    started = time.monotonic()
    result = env.run([processing_step("Spawn", code)])
    assert result.status == "Succeeded" and time.monotonic() - started < 10


def test_service_validation_happens_before_anything_runs(tmp_path):
    env = Env(tmp_path)
    outside = processing_step("Prepare", env.script("p.py", "print('ran')"), inputs={"data": f"{BUCKET}/data"})
    outside["Arguments"]["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/data/input"
    with pytest.raises(DefinitionError, match=r"ValidationException: ProcessingInputs\['data'\].S3Input.LocalPath "
                                              r"'/data/input' must be an absolute path that begins with "
                                              r"/opt/ml/processing/"):
        env.run([outside])
    badly_named = processing_step("Prepare data", env.script("p.py", "print('ran')"))
    with pytest.raises(DefinitionError, match="step name 'Prepare data': ValidationException: a step name is 1 to "
                                              "64 letters, digits, hyphens or underscores"):
        env.run([badly_named])
    assert not (env.work_dir / "executions").exists()


HOST_CONTRACT = """
    import json, os, socket, sys
    opt_ml = os.environ["SM_OPT_ML"]
    config = json.load(open(os.path.join(opt_ml, "config", "resourceconfig.json")))
    host = config["current_host"]
    inputs = os.path.join(opt_ml, "processing", "input")
    listing = sorted(os.path.relpath(os.path.join(d, f), inputs) for d, _, fs in os.walk(inputs) for f in fs)
    with open(os.path.join(opt_ml, "processing", "report", host + ".json"), "w") as f:
        json.dump({"hosts": config["hosts"], "inputs": listing, "port": os.environ.get("LOCALENGINE_CLUSTER_PORT"),
                   "addresses": [socket.gethostbyname(name) for name in config["hosts"]]}, f)
    if host == os.environ.get("FAILING_HOST"):
        os.makedirs(os.path.join(opt_ml, "output"), exist_ok=True)
        open(os.path.join(opt_ml, "output", "message"), "w").write("no rows in my share")
        sys.exit(2)
"""


def test_each_processing_host_gets_its_share_and_all_outputs_are_published(tmp_path):
    env = Env(tmp_path)
    for number in range(3):
        env.s3.put_bytes(f"{BUCKET}/raw/part-{number}.csv", b"a\n1\n")
    env.s3.put_bytes(f"{BUCKET}/lookup/table.json", b"{}")
    step = processing_step("Shard", env.script("hosts.py", HOST_CONTRACT),
                           inputs={"raw": f"{BUCKET}/raw", "lookup": f"{BUCKET}/lookup"},
                           outputs={"report": f"{BUCKET}/out/report"})
    step["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 2
    step["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"] = "ShardedByS3Key"
    result = env.run([step])
    assert result.status == "Succeeded", result.failure_reason
    first, second = (json.loads(env.s3.read_bytes(f"{BUCKET}/out/report/{host}.json")) for host in ("algo-1", "algo-2"))
    assert first["hosts"] == second["hosts"] == ["algo-1", "algo-2"]
    assert first["inputs"] == ["code/hosts.py", "lookup/table.json", "raw/part-0.csv", "raw/part-2.csv"]
    assert second["inputs"] == ["code/hosts.py", "lookup/table.json", "raw/part-1.csv"]
    assert first["addresses"] == ["127.0.0.1", "127.0.0.1"] and first["port"] == second["port"] is not None
    assert result.steps["Shard"].log_path.with_name("Shard.algo-2.log").is_file()


def test_a_failing_processing_host_fails_the_job_with_its_reason_and_publishes_nothing(tmp_path):
    env = Env(tmp_path)
    step = processing_step("Shard", env.script("hosts.py", HOST_CONTRACT), outputs={"report": f"{BUCKET}/out/report"},
                           environment={"FAILING_HOST": "algo-2"})
    step["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 2
    result = env.run([step])
    assert result.status == "Failed"
    assert result.steps["Shard"].failure_reason.startswith("no rows in my share (exited with code 2)")
    assert not env.s3.exists(f"{BUCKET}/out/report")
