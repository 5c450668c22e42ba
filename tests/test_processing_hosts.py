"""Preprocess on several processing instances: real processes, one per host, each with its own /opt/ml, its
share of the input files as ShardedByS3Key deals them, the hosts in its resourceconfig.json, meeting over a
socket on this machine."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from container import TableBatches  # noqa: E402
from preprocess import SPLITS  # noqa: E402

HOSTNAMES_SHIM = REPO / "localengine" / "image_data" / "hostnames"
SAMPLE = pd.read_csv(REPO / "data" / "ames_housing.csv")
INPUT_URI = "s3://bucket/incoming/"


def sample_files(count: int) -> list[pd.DataFrame]:
    """The sample dealt into ``count`` files, row i to file i mod count."""
    return [SAMPLE.iloc[index::count] for index in range(count)]


def flawed_sample_files(count: int) -> list[pd.DataFrame]:
    """sample_files with targets to drop on two hosts: three missing in one file, one far off in another."""
    files = [frame.copy() for frame in sample_files(count)]
    files[0].iloc[:3, files[0].columns.get_loc("SalePrice")] = np.nan
    files[1].iloc[5, files[1].columns.get_loc("SalePrice")] = 9e9
    return files


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_hosts(root: Path, files: list, hosts: int, *arguments: str, started: int | None = None,
              environment: dict | None = None) -> list[subprocess.CompletedProcess]:
    """Preprocess on ``hosts`` processes (only the first ``started`` of them, when given); host i reads files i,
    i + hosts, ... (the engine's ShardedByS3Key). A file is a frame (written as part-<i>.csv) or a (name, bytes)
    pair."""
    names = [f"algo-{number}" for number in range(1, hosts + 1)]
    port, processes = free_port(), []
    for index, name in enumerate(names[:started]):
        opt_ml = root / name
        data = opt_ml / "processing" / "input" / "data"
        data.mkdir(parents=True)
        for number in range(index, len(files), hosts):
            if isinstance(files[number], pd.DataFrame):
                files[number].to_csv(data / f"part-{number:02d}.csv", index=False)
            else:  # (name, content)
                (data / files[number][0]).write_bytes(files[number][1])
        (opt_ml / "config").mkdir()
        (opt_ml / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": name, "hosts": names}))
        (opt_ml / "config" / "processingjobconfig.json").write_text(json.dumps({"ProcessingJobName": root.name}))
        host_environment = {**os.environ, "SM_OPT_ML": str(opt_ml), "LOCALENGINE_CLUSTER_PORT": str(port),
                            "PYTHONPATH": str(HOSTNAMES_SHIM), **(environment or {})}
        processes.append(subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "preprocess.py"), "--target-column", "SalePrice",
             "--input-uri", INPUT_URI, *arguments], env=host_environment, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    return [subprocess.CompletedProcess(process.args, process.wait(timeout=300), *process.communicate())
            for process in processes]


def outputs(root: Path, output: str) -> Path:
    return root / "algo-1" / "processing" / output


def split_rows(root: Path) -> dict[str, pd.DataFrame]:
    """Each split as every host wrote it, in one frame ordered by the sample's Order column."""
    return {name: TableBatches(_gathered(root, name), name).frame().sort_values("Order").reset_index(drop=True)
            for name in SPLITS}


def _gathered(root: Path, split: str) -> Path:
    """The split's files of every host in one directory, as the shared S3 output holds them."""
    gathered = root / "gathered" / split
    gathered.mkdir(parents=True, exist_ok=True)
    for path in root.glob(f"algo-*/processing/{split}/*.parquet"):
        (gathered / path.name).write_bytes(path.read_bytes())
    return gathered


def encoded_by_order(root: Path, split: str) -> pd.DataFrame:
    """The split's encoded rows of every host, indexed by the sample's Order column of their raw twins."""
    frames = []
    for raw in root.glob(f"algo-*/processing/{split}/*.parquet"):
        encoded = pd.read_parquet(raw.parent.parent / f"encoded-{split}" / raw.name)
        frames.append(encoded.set_axis(pd.read_parquet(raw, columns=["Order"])["Order"]))
    return pd.concat(frames).sort_index()


def one_host_run(root: Path, files: list) -> Path:
    [finished] = run_hosts(root, files, 1, "--shards", "2")
    assert finished.returncode == 0, finished.stderr
    return root


@pytest.fixture(scope="module")
def one_host(tmp_path_factory):
    return one_host_run(tmp_path_factory.mktemp("one-host"), sample_files(4))


def test_two_hosts_split_and_decide_exactly_as_one(tmp_path):
    """A table within DECISION_ROWS is decided on whole: the same spec, the same report, the same rows in
    each split, each host writing its own parts."""
    one_host = one_host_run(tmp_path / "one", flawed_sample_files(4))
    tmp_path = tmp_path / "two"
    finished = run_hosts(tmp_path, flawed_sample_files(4), 2, "--shards", "2")
    assert [host.returncode for host in finished] == [0, 0], finished[0].stderr + finished[1].stderr
    assert json.loads((outputs(tmp_path, "features") / "features.json").read_text()) == \
        json.loads((outputs(one_host, "features") / "features.json").read_text())
    report = json.loads((outputs(tmp_path, "report") / "data-report.json").read_text())
    alone = json.loads((outputs(one_host, "report") / "data-report.json").read_text())
    assert report.pop("instances") == 2
    assert report == alone
    assert report["rows"]["dropped"] == {"target missing": 3, "target far outside the rest": 1}
    assert not (tmp_path / "algo-2" / "processing" / "features").exists()  # the leader writes the spec
    assert sorted(path.name for path in tmp_path.glob("algo-*/processing/train/*")) == [
        "train-algo-1-1-of-2.parquet", "train-algo-1-2-of-2.parquet",
        "train-algo-2-1-of-2.parquet", "train-algo-2-2-of-2.parquet"]
    both, single = split_rows(tmp_path), split_rows(one_host)
    for name in SPLITS:
        pd.testing.assert_frame_equal(both[name], single[name], check_dtype=False, check_categorical=False)
    for name in ("train", "validation"):  # each host encodes its rows by the leader's spec
        pd.testing.assert_frame_equal(encoded_by_order(tmp_path, name), encoded_by_order(one_host, name))
    assert "read 2,930 rows from s3://bucket/incoming/ (4 files)" in finished[0].stdout
    assert finished[1].stdout.startswith("algo-2: 1,465 rows from 2 file(s)")


def test_a_sample_decides_and_every_row_is_split(tmp_path, one_host):
    """Above --decision-rows the leader decides on evenly spaced rows of each file; the counts and the splits
    still cover every row, each in the split its identity hash gives it."""
    finished = run_hosts(tmp_path, sample_files(4), 2, "--shards", "2", "--decision-rows", "1000")
    assert [host.returncode for host in finished] == [0, 0], finished[0].stderr + finished[1].stderr
    report = json.loads((outputs(tmp_path, "report") / "data-report.json").read_text())
    alone = json.loads((outputs(one_host, "report") / "data-report.json").read_text())
    assert report["rows"] == alone["rows"] and report["splits"] == alone["splits"]
    assert "decided on 1,000 of the 2,930 rows read" in report["notes"][-1]
    spec = json.loads((outputs(tmp_path, "features") / "features.json").read_text())
    whole = json.loads((outputs(one_host, "features") / "features.json").read_text())
    assert spec["numeric"] == whole["numeric"] and spec["categorical"] == whole["categorical"]
    # A third of the rows places each median within a few percent of the whole table's spread.
    spreads = {name: np.std(SAMPLE[name].dropna()) for name in whole["numeric"]}
    assert max(abs(spec["medians"][name] - whole["medians"][name]) / spreads[name] for name in spreads) < 0.25
    for name in SPLITS:
        assert split_rows(tmp_path)[name]["Order"].tolist() == split_rows(one_host)[name]["Order"].tolist()


def test_an_instance_without_files_idles_writes_empty_parts_and_says_so(tmp_path):
    finished = run_hosts(tmp_path, sample_files(2), 3, "--shards", "2")
    assert [host.returncode for host in finished] == [0, 0, 0], finished[0].stderr
    report = json.loads((outputs(tmp_path, "report") / "data-report.json").read_text())
    assert report["warnings"][-1] == ("1 of 3 processing instances received no input file and idled; give the "
                                      "input at least as many files as ProcessingInstanceCount (3)")
    # Every part is written, empty ones too, so a later run onto the same output replaces each of them.
    written = tmp_path / "algo-3" / "processing"
    idle = sorted(str(path.relative_to(written)) for path in written.glob("*/*.parquet"))
    assert idle == [
        "encoded-train/train-algo-3-1-of-2.parquet", "encoded-train/train-algo-3-2-of-2.parquet",
        "encoded-validation/validation-algo-3-1-of-2.parquet", "encoded-validation/validation-algo-3-2-of-2.parquet",
        "test/test-algo-3.parquet", "train/train-algo-3-1-of-2.parquet", "train/train-algo-3-2-of-2.parquet",
        "validation/validation-algo-3-1-of-2.parquet", "validation/validation-algo-3-2-of-2.parquet"]
    assert sum(len(split) for split in split_rows(tmp_path).values()) == len(SAMPLE)


def test_a_bad_value_on_one_host_fails_every_host_with_its_reason_and_writes_nothing(tmp_path):
    files = sample_files(4)
    files[3] = files[3].astype({"SalePrice": object})
    files[3].iloc[7, files[3].columns.get_loc("SalePrice")] = "call us"
    # Decided on a sample that misses the bad row, so the host that holds it finds it while applying the plan.
    finished = run_hosts(tmp_path, files, 2, "--decision-rows", "100")
    assert [host.returncode for host in finished] == [1, 1]
    reason = ("TargetColumn 'SalePrice' must hold numbers, but 1 of 1,465 values in s3://bucket/incoming/ are "
              "text (e.g. 'call us'); choose a numeric column as TargetColumn or fix those values")
    assert (tmp_path / "algo-2" / "output" / "message").read_text().strip() == reason
    assert (tmp_path / "algo-1" / "output" / "message").read_text().strip() == f"{reason} (on algo-2)"
    assert not list(tmp_path.glob("algo-*/processing/*/*.parquet"))
    assert not list(tmp_path.glob("algo-*/processing/*/*.json"))


def test_a_host_that_never_joins_fails_the_leader_within_the_connect_timeout_and_writes_nothing(tmp_path):
    """algo-2 never starts (its instance failed to come up): the leader stops waiting, with one line."""
    [leader] = run_hosts(tmp_path, sample_files(2), 2, started=1,
                         environment={"LOCALENGINE_CONNECT_TIMEOUT_SECONDS": "3"})
    assert leader.returncode == 1
    assert (tmp_path / "algo-1" / "output" / "message").read_text().strip() == \
        "processing hosts algo-2 did not connect to algo-1 within 3 s; see their logs"
    assert not list(tmp_path.glob("algo-1/processing/*/*.parquet"))


def test_column_facts_over_shards_tell_what_a_sample_cannot():
    from data_checks import ColumnFacts, leave_out_reasons

    shards = [pd.DataFrame({"row": np.arange(1, 501), "kind": ["a"] * 500, "gaps": [1.0] * 500}),
              pd.DataFrame({"row": np.arange(501, 1001), "kind": ["a"] * 499 + ["b"], "gaps": [1.0] * 499 + [None]})]
    whole = {name: ColumnFacts.merged([ColumnFacts.of(shard[name]) for shard in shards]) for name in shards[0]}
    assert whole["row"] == ColumnFacts(1000, 1000, None, 1.0, 1000.0)
    assert whole["kind"].only_value is None and whole["gaps"].only_value == 1.0
    # Every 7th row, shuffled: no contiguous range, no order, "a" and 1.0 in every row of it.
    sample = pd.concat(shards, ignore_index=True).iloc[::7].sample(frac=1, random_state=0)
    assert leave_out_reasons(sample, "target", None, []) == {
        "kind": "the same value in every row ('a')", "gaps": "the same value in every row (1.0)"}
    assert leave_out_reasons(sample, "target", None, [], whole) == {
        "row": "id-like: a different value in every row (IdColumns=none keeps it as a feature; or name the columns "
               "that identify rows)"}


def test_a_share_of_only_other_objects_is_left_out_as_one_instance_leaves_them(tmp_path):
    """ShardedByS3Key may hand an instance only a README of the prefix: it is left out, not read as the table."""
    finished = run_hosts(tmp_path, [*sample_files(2), ("zz-README.md", b"# how this export was made\n")], 3)
    assert [host.returncode for host in finished] == [0, 0, 0], finished[2].stderr
    report = json.loads((outputs(tmp_path, "report") / "data-report.json").read_text())
    assert report["files_left_out"] == [{"name": "s3://bucket/incoming/zz-README.md",
                                         "reason": "not a .csv, .tsv, .txt file (optionally gzipped)"}]
    assert report["rows"]["read"] == len(SAMPLE)
    assert "1 of 3 processing instances received no input file" in report["warnings"][-1]


def test_files_of_other_headers_on_different_hosts_fail_as_on_one(tmp_path):
    files = sample_files(2)
    files[1] = files[1].rename(columns={"Lot Area": "Lot Size"})
    finished = run_hosts(tmp_path, files, 2)
    assert [host.returncode for host in finished] == [1, 1]
    assert (tmp_path / "algo-1" / "output" / "message").read_text().strip() == (
        "s3://bucket/incoming/part-01.csv has other columns than s3://bucket/incoming/part-00.csv (differing: "
        "'Lot Area', 'Lot Size'); give every file under the input the same header, or point InputDataKey at one "
        "of them")


def test_the_engine_runs_preprocess_on_two_instances_as_the_definition_asks(tmp_path):
    """The real script through the local engine: a ShardedByS3Key data input, InstanceCount 2; every host's parts
    land under the outputs' URIs, and the spec is the one-instance spec of the whole file (its rows in another
    order: sums agree to rounding)."""
    from steps.code_bundle import CodeBundle
    from test_engine_support import BUCKET, Env, prepared_sample, processing_step

    env = Env(tmp_path / "engine")
    for name, content in CodeBundle.for_script("preprocess.py").files:
        env.s3.put_bytes(f"{BUCKET}/code/{name}", content)
    for number, frame in enumerate(sample_files(3)):
        env.s3.put_bytes(f"{BUCKET}/input/part-{number}.csv", frame.to_csv(index=False).encode())
    outputs = ("train", "validation", "test", "features", "report")
    step = processing_step("Preprocess", f"{BUCKET}/code/preprocess.py", inputs={"data": f"{BUCKET}/input/"},
                           outputs={name: f"{BUCKET}/out/{name}" for name in outputs},
                           arguments=["--target-column", "SalePrice", "--input-uri", f"{BUCKET}/input/",
                                      "--shards", "2"])
    arguments = step["Arguments"]
    arguments["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 2
    arguments["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"] = "ShardedByS3Key"
    arguments["ProcessingInputs"][1]["S3Input"]["S3Uri"] = f"{BUCKET}/code/"  # the whole bundle
    result = env.run([step])
    assert result.status == "Succeeded", result.failure_reason
    assert sorted(path.name for path in env.s3.path_for(f"{BUCKET}/out/train").iterdir()) == [
        "train-algo-1-1-of-2.parquet", "train-algo-1-2-of-2.parquet",
        "train-algo-2-1-of-2.parquet", "train-algo-2-2-of-2.parquet"]
    report = json.loads(env.s3.read_bytes(f"{BUCKET}/out/report/data-report.json"))
    assert report["instances"] == 2 and report["rows"]["read"] == len(SAMPLE)
    spec = json.loads(env.s3.read_bytes(f"{BUCKET}/out/features/features.json"))
    whole = json.loads((prepared_sample(tmp_path / "one") / "features" / "features.json").read_text())
    for key in ("means", "stds"):
        assert spec.pop(key) == pytest.approx(whole.pop(key), rel=1e-12)
    assert spec == whole
