"""The pipeline definition: structure, caching, gate wiring, determinism, and no AWS at build time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.definition import build_definition
from pipelines.settings import Settings
from steps.code_bundle import SCRIPTS_DIR

PROJECT = Path(__file__).resolve().parent.parent
JOB_TYPES = {"Processing", "Training", "Tuning"}


def steps_by_name(document: dict) -> dict[str, dict]:
    found = {}
    for step in document["Steps"]:
        found[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            for child in step.get("Arguments", {}).get(branch, []):
                found[child["Name"]] = child
    return found


@pytest.fixture(scope="module")
def built():
    return build_definition(Settings(cache_expire_after="P7D"))


@pytest.fixture(scope="module")
def steps(built):
    return steps_by_name(built.document)


def test_definition_has_every_step_type_of_the_dag(steps):
    assert {name: step["Type"] for name, step in steps.items()} == {
        "LocateInput": "Processing",
        "Preprocess": "Processing",
        "TrainBaseline": "Training",
        "TuneXGBoost": "Tuning",
        "RefitXGBoost": "Training",
        "FindChampion": "Processing",
        "Evaluate": "Processing",
        "QualityGate": "Condition",
        "RegisterModel": "RegisterModel",
        "QualityGateFailed": "Fail",
    }


def test_every_job_step_caches_with_the_configured_expiry_and_retries_transient_errors(steps):
    jobs = [step for step in steps.values() if step["Type"] in JOB_TYPES and step["Name"] != "FindChampion"]
    assert len(jobs) == 6
    for step in jobs:
        assert step["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P7D"}, step["Name"]
        retried = {kind for policy in step["RetryPolicies"] for kind in policy["ExceptionType"]}
        assert {"Step.THROTTLING", "SageMaker.CAPACITY_ERROR"} <= retried, step["Name"]


def test_the_champion_lookup_is_never_cached_and_feeds_evaluate_through_its_report(steps):
    lookup = steps["FindChampion"]
    assert "CacheConfig" not in lookup and lookup["RetryPolicies"]
    assert lookup["PropertyFiles"] == [
        {"PropertyFileName": "ChampionReport", "OutputName": "champion", "FilePath": "champion.json"}]
    evaluate = steps["Evaluate"]["Arguments"]
    champion_input = next(i for i in evaluate["ProcessingInputs"] if i["InputName"] == "champion")
    assert champion_input["S3Input"]["S3Uri"]["Std:JsonGet"] == {
        "PropertyFile": {"Get": "Steps.FindChampion.PropertyFiles.ChampionReport"}, "Path": "model_data_url"}
    # Without a champion the input is the marker's fixed location, so Evaluate's cache key stays put.
    marker = next(o for o in lookup["Arguments"]["ProcessingOutputConfig"]["Outputs"] if o["OutputName"] == "marker")
    assert marker["S3Output"]["S3Uri"] == "s3://house-price-pipeline-artifacts/HousePricePipeline/champion/none"
    assert "--marker-uri" in lookup["Arguments"]["AppSpecification"]["ContainerArguments"]


def test_cached_steps_carry_no_execution_specific_values(built, steps):
    for step in steps.values():
        if step["Type"] in JOB_TYPES and "CacheConfig" in step:
            text = json.dumps(step["Arguments"])
            assert "Execution." not in text, step["Name"]


def test_quality_gate_reads_the_evaluation_report_and_branches_to_register_or_fail(steps):
    gate = steps["QualityGate"]["Arguments"]
    r2, rmse, champion = gate["Conditions"]
    assert (r2["Type"], r2["LeftValue"]["Std:JsonGet"]["Path"], r2["RightValue"]) == (
        "GreaterThanOrEqualTo", "regression_metrics.r2.value", {"Get": "Parameters.MinR2"})
    assert r2["LeftValue"]["Std:JsonGet"]["PropertyFile"] == {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
    # MaxRmse is off at 0: (MaxRmse <= 0) or (RMSE <= MaxRmse).
    assert rmse["Type"] == "Or"
    off, bound = rmse["Conditions"]
    assert (off["Type"], off["LeftValue"], off["RightValue"]) == (
        "LessThanOrEqualTo", {"Get": "Parameters.MaxRmse"}, 0.0)
    assert (bound["LeftValue"]["Std:JsonGet"]["Path"], bound["RightValue"]) == (
        "regression_metrics.rmse.value", {"Get": "Parameters.MaxRmse"})
    # Not worse than the approved champion by more than ChampionTolerance, when one was compared.
    no_champion, tolerated = champion["Conditions"]
    assert (no_champion["Type"], no_champion["LeftValue"]["Std:JsonGet"]["Path"], no_champion["RightValue"]) == (
        "Equals", "champion.compared", "no")
    assert (tolerated["Type"], tolerated["LeftValue"]["Std:JsonGet"]["Path"], tolerated["RightValue"]) == (
        "LessThanOrEqualTo", "champion.worse_by", {"Get": "Parameters.ChampionTolerance"})
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["QualityGateFailed"]
    assert steps["Evaluate"]["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]


def test_fail_message_carries_readable_figures_and_the_thresholds(steps):
    values = steps["QualityGateFailed"]["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    read = [v["Std:JsonGet"]["Path"] for v in values if isinstance(v, dict) and "Std:JsonGet" in v]
    assert read == ["readable.candidate", "readable.r2", "readable.rmse", "readable.champion",
                    "readable.baseline_rmse", "readable.gate_failed"]
    for parameter in ("MinR2", "MaxRmse", "ChampionTolerance"):
        assert {"Get": f"Parameters.{parameter}"} in values


def test_register_step_uses_the_chosen_candidate_the_approval_parameter_and_the_reports(steps):
    args = steps["RegisterModel"]["Arguments"]
    assert args["ModelPackageGroupName"] == "HousePriceModels"
    assert args["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    container = args["InferenceSpecification"]["Containers"][0]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert "sagemaker-xgboost:3.2-0" in container["Image"]
    assert container["ModelDataUrl"]["Std:Join"]["Values"] == [
        {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['model'].S3Output.S3Uri"}, "model.tar.gz"
    ]
    statistics = args["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"]["Std:Join"]["Values"] == [
        {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}, "evaluation.json"
    ]
    data_statistics = args["ModelMetrics"]["ModelDataQuality"]["Statistics"]
    assert data_statistics["S3Uri"]["Std:Join"]["Values"] == [
        {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri"}, "data-report.json"
    ]
    metadata = dict(args["CustomerMetadataProperties"])
    assert metadata.pop("EvaluationReport")["Std:Join"]["Values"] == [
        {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}, "report/index.html"
    ]
    assert {key: value["Std:JsonGet"]["Path"] for key, value in metadata.items()} == {
        "Candidate": "chosen.candidate", "DataWarnings": "data.warning_count",
        "SuspectedLeakage": "data.suspected_leakage"}


def test_parameters_are_declared_with_defaults_and_input_location_is_bucket_plus_decoded_key(built, steps):
    parameters = {p["Name"]: p for p in built.document["Parameters"]}
    assert parameters["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert parameters["TargetColumn"]["DefaultValue"] == "SalePrice"
    assert parameters["MaxRmse"]["Type"] == "Float"
    assert all("DefaultValue" in p for p in parameters.values())
    assert parameters["InputKeyEncoding"]["DefaultValue"] == "none"
    assert parameters["InputKeyEncoding"]["EnumValues"] == ["none", "url"]
    # LocateInput decodes a key an S3 event passed URL-encoded; Preprocess reads where it says.
    assert steps["LocateInput"]["Arguments"]["AppSpecification"]["ContainerArguments"] == [
        "--bucket", {"Get": "Parameters.InputDataBucket"}, "--key", {"Get": "Parameters.InputDataKey"},
        "--key-encoding", {"Get": "Parameters.InputKeyEncoding"}]
    data_input = next(i for i in steps["Preprocess"]["Arguments"]["ProcessingInputs"] if i["InputName"] == "data")
    assert data_input["S3Input"]["S3Uri"] == {"Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.LocateInput.PropertyFiles.InputLocation"}, "Path": "uri"}}


def test_framework_images_match_the_local_library_pins(steps):
    assert "sagemaker-scikit-learn:1.9-0" in steps["Preprocess"]["Arguments"]["AppSpecification"]["ImageUri"]
    assert "sagemaker-scikit-learn:1.9-0" in steps["TrainBaseline"]["Arguments"]["AlgorithmSpecification"]["TrainingImage"]
    tuning = steps["TuneXGBoost"]["Arguments"]["TrainingJobDefinition"]
    assert "sagemaker-xgboost:3.2-0" in tuning["AlgorithmSpecification"]["TrainingImage"]
    import sklearn
    import xgboost

    assert sklearn.__version__.startswith("1.9.") and xgboost.__version__.startswith("3.2.")


def test_security_settings_reach_every_job(steps):
    secured = steps_by_name(build_definition(Settings(
        kms_key_id="alias/pipeline", network_isolation=True, subnets="subnet-1", security_group_ids="sg-1",
    )).document)
    preprocess = secured["Preprocess"]["Arguments"]
    assert preprocess["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "alias/pipeline"
    assert preprocess["ProcessingOutputConfig"]["KmsKeyId"] == "alias/pipeline"
    assert preprocess["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert preprocess["NetworkConfig"]["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    training = secured["TrainBaseline"]["Arguments"]
    assert training["EnableNetworkIsolation"] is True
    assert training["OutputDataConfig"]["KmsKeyId"] == "alias/pipeline"
    assert training["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    # The champion lookup calls the SageMaker API: in the VPC, but not cut off from the network.
    lookup = secured["FindChampion"]["Arguments"]["NetworkConfig"]
    assert lookup["EnableNetworkIsolation"] is False and lookup["VpcConfig"]["Subnets"] == ["subnet-1"]


BUILD = "from pipelines.definition import build_definition; from pipelines.settings import Settings; " \
        "import sys; sys.stdout.write(build_definition(Settings()).json)"


def test_two_builds_in_separate_processes_are_byte_identical():
    first, second = (
        subprocess.run([sys.executable, "-c", BUILD], cwd=PROJECT, capture_output=True, check=True).stdout
        for _ in range(2)
    )
    assert first == second
    assert json.loads(first)["Steps"]


def code_uris(document: dict) -> dict[str, set[str]]:
    """Step name -> the content-addressed code URIs its arguments mention."""
    def walk(value):
        if isinstance(value, str) and value.startswith("s3://") and "/code/" in value:
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    return {name: set(walk(step.get("Arguments", {}))) for name, step in steps_by_name(document).items()
            if step["Type"] != "Condition"}


def changed_steps(tmp_path: Path, script: str) -> set[str]:
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, scripts)
    before = build_definition(Settings(), scripts)
    with (scripts / script).open("a") as handle:
        handle.write("\n# a change\n")
    after = build_definition(Settings(), scripts)
    old, new = code_uris(before.document), code_uris(after.document)
    changed = {name for name in old if old[name] != new[name]}
    # Outside the code URIs (and the output keys derived from them) nothing moves.
    unchanged_text = {name for name in old if name not in changed}
    for name in unchanged_text:
        assert steps_by_name(before.document)[name] == steps_by_name(after.document)[name]
    return changed


def test_changing_one_script_changes_only_the_steps_that_run_it(tmp_path):
    assert changed_steps(tmp_path, "train_baseline.py") == {"TrainBaseline"}


def test_changing_a_shared_module_changes_every_step_that_imports_it(tmp_path):
    assert changed_steps(tmp_path, "features.py") == {
        "LocateInput", "Preprocess", "TrainBaseline", "TuneXGBoost", "RefitXGBoost", "FindChampion", "Evaluate",
        "RegisterModel"
    }


def test_the_refit_runs_the_trials_code_so_a_change_to_it_moves_both(tmp_path):
    assert changed_steps(tmp_path, "train_xgboost.py") == {"TuneXGBoost", "RefitXGBoost"}


def test_code_bundles_cover_every_code_uri_in_the_definition(built):
    referenced = set().union(*code_uris(built.document).values())
    objects = built.code_objects()
    for uri in referenced:
        assert uri in objects or any(key.startswith(uri) for key in objects), uri


NO_AWS = """
import socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network disabled in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
import botocore.httpsession
botocore.httpsession.URLLib3Session.send = lambda self, request: attempts.append(request.url) or refuse()
from pipelines.definition import build_definition
from pipelines.settings import Settings
import threading, time
built = build_definition(Settings())
for thread in threading.enumerate():
    if thread is not threading.current_thread() and not thread.daemon:
        thread.join(5)
time.sleep(0.5)
print(len(built.json), len(attempts), attempts)
"""


def test_building_makes_no_aws_call_and_needs_no_credentials(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = subprocess.run([sys.executable, "-c", NO_AWS], cwd=PROJECT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    size, attempts = done.stdout.split()[:2]
    assert int(size) > 1000
    assert attempts == "0", done.stdout


CACHED_BUILD = """
import sys
from pathlib import Path
from pipelines.definition import cached_build
from pipelines.settings import Settings
built = cached_build(Settings(), Path(sys.argv[1]), Path(sys.argv[2]))
sys.stdout.write(str("sagemaker" in sys.modules) + "\\n" + built.json)
"""


def test_cached_build_is_the_same_definition_and_rebuilds_when_a_source_changes(tmp_path):
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))

    def build() -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", CACHED_BUILD, str(tmp_path / "cache"), str(scripts)],
                              cwd=PROJECT, capture_output=True, text=True, check=True)
        sdk_imported, _, definition = done.stdout.partition("\n")
        return sdk_imported, definition

    assert build() == ("True", build_definition(Settings(), scripts).json)
    sdk_imported, served = build()
    assert sdk_imported == "False"  # served from the cache without importing the SDK
    assert served == build_definition(Settings(), scripts).json
    with (scripts / "evaluate.py").open("a") as handle:
        handle.write("\n# a change\n")
    sdk_imported, rebuilt = build()
    assert sdk_imported == "True" and rebuilt != served
    assert rebuilt == build_definition(Settings(), scripts).json


def test_the_refit_boosts_the_best_trials_choice_and_evaluate_scores_its_model(steps):
    refit = steps["RefitXGBoost"]["Arguments"]
    channels = {channel["ChannelName"]: channel for channel in refit["InputDataConfig"]}
    assert set(channels) == {"train", "validation", "features", "selection"}
    selection = channels["selection"]
    assert selection["ContentType"] == "application/x-sagemaker-model"
    assert selection["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "FullyReplicated"
    trials = steps["TuneXGBoost"]["Arguments"]["TrainingJobDefinition"]
    # The best trial's model.tar.gz: where the trials write theirs, under the best trial's job name.
    assert selection["DataSource"]["S3DataSource"]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [
        "s3:/", *trials["OutputDataConfig"]["S3OutputPath"].removeprefix("s3://").split("/", 1),
        {"Get": "Steps.TuneXGBoost.TrainingJobSummaries[0].TrainingJobName"}, "output/model.tar.gz"]}}
    trial_channels = {channel["ChannelName"]: channel for channel in trials["InputDataConfig"]}
    for name in ("train", "validation", "features"):
        assert channels[name] == trial_channels[name]  # the same rows, sharded across instances as the trials'
    assert refit["ResourceConfig"]["InstanceCount"] == trials["ResourceConfig"]["InstanceCount"] == {
        "Get": "Parameters.TrainingInstanceCount"}
    assert refit["AlgorithmSpecification"]["TrainingImage"] == trials["AlgorithmSpecification"]["TrainingImage"]
    assert refit["HyperParameters"]["sagemaker_program"] == "refit_xgboost.py"
    xgboost_input = next(i for i in steps["Evaluate"]["Arguments"]["ProcessingInputs"] if i["InputName"] == "xgboost")
    assert xgboost_input["S3Input"]["S3Uri"] == {"Get": "Steps.RefitXGBoost.ModelArtifacts.S3ModelArtifacts"}


def test_evaluate_chooses_by_the_validation_rmse_the_training_jobs_reported(steps):
    arguments = steps["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    reported = {arguments[i]: arguments[i + 1] for i in range(0, len(arguments), 2)}
    assert reported["--baseline-validation-rmse"]["Std:Join"]["Values"] == [
        {"Get": "Steps.TrainBaseline.FinalMetricDataList['validation-rmse'].Value"}]
    assert reported["--xgboost-validation-rmse"]["Std:Join"]["Values"] == [
        {"Get": "Steps.RefitXGBoost.FinalMetricDataList['validation-rmse'].Value"}]
    inputs = {i["InputName"] for i in steps["Evaluate"]["Arguments"]["ProcessingInputs"]}
    assert inputs == {"code", "baseline", "xgboost", "test", "report", "champion"}  # no validation rows
