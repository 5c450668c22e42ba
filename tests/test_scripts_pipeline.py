"""The container entry scripts end to end on the bundled Ames data, each job in its own /opt/ml."""

import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
from contextlib import redirect_stdout
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = REPO / "scripts"
DATA = REPO / "data" / "ames_housing.csv"
if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPTS_DIR))

import container  # noqa: E402
import evaluate  # noqa: E402
import inference  # noqa: E402
import preprocess  # noqa: E402
import refit_xgboost  # noqa: E402
import train_baseline  # noqa: E402
import train_xgboost  # noqa: E402
from features import decode_target, encode_target, read_raw_csv, target_values, transform_features  # noqa: E402
from metrics import rmse  # noqa: E402

TARGET = "SalePrice"
ID_COLUMNS = ["Order", "PID"]
METRIC_PATTERN = re.compile(r"validation-rmse: ([0-9\.]+)")
TOOLKIT_VARIABLES = ("SM_MODEL_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION", "SM_CHANNEL_FEATURES",
                     "SM_CHANNEL_SELECTION", "SM_NUM_CPUS")


def run_job(root: Path, main, argv, environment=None) -> str:
    """Run a script's main as a job whose /opt/ml is root; returns what it printed."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for variable in TOOLKIT_VARIABLES:
            patch.delenv(variable, raising=False)
        patch.setenv("SM_OPT_ML", str(root))
        for variable, value in (environment or {}).items():
            patch.setenv(variable, value)
        with redirect_stdout(printed):
            main(argv)
    return printed.getvalue()


def stage(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    (shutil.copytree if source.is_dir() else shutil.copy)(source, destination)


def stage_training_channels(processing: Path, root: Path, *, encoded: bool = False) -> None:
    """Preprocess's outputs as a training job's channels: a tuning trial reads the encoded train and validation
    rows (encoded=True), the baseline the raw ones."""
    for channel in ("train", "validation", "features"):
        output = f"encoded-{channel}" if encoded and channel != "features" else channel
        stage(processing / "processing" / output, root / "input" / "data" / channel)


def pack_model(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz as SageMaker packs a training job's model directory."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as bundle:
        for entry in sorted(model_dir.iterdir()):
            bundle.add(entry, arcname=entry.name)
    return archive


def stage_selection(trial_root: Path, root: Path) -> None:
    """A tuning trial's model directory as the refit job's selection channel: its model.tar.gz."""
    pack_model(trial_root / "model", root / "input" / "data" / "selection" / "model.tar.gz")


@dataclass
class Pipeline:
    """The jobs' roots and printed logs: the tuning trial (trial_*: it chooses) and the refit of its choice (xgboost_*:
    the XGBoost candidate)."""

    processing: Path
    baseline_root: Path
    trial_root: Path
    xgboost_root: Path
    evaluation_root: Path
    baseline_log: str
    trial_log: str
    xgboost_log: str

    def split(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.processing / "processing" / name / f"{name}.parquet")

    def encoded(self, name: str, batch_rows: int | None = None):
        """The train or validation rows as Preprocess encoded them for the tuning trials."""
        from encoded_rows import EncodedFiles

        return EncodedFiles(self.processing / "processing" / f"encoded-{name}", name, self.spec, batch_rows)

    @property
    def spec(self) -> dict:
        return json.loads((self.processing / "processing" / "features" / "features.json").read_text())

    @property
    def evaluation(self) -> dict:
        return json.loads((self.evaluation_root / "processing" / "evaluation" / "evaluation.json").read_text())

    @property
    def data_report(self) -> dict:
        return json.loads((self.processing / "processing" / "report" / "data-report.json").read_text())

    @property
    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.evaluation_root / "processing" / "evaluation" / "predictions.csv")


def reported_rmse(log: str) -> float:
    return float(METRIC_PATTERN.search(log).group(1))


GATE_ARGUMENTS = ["--min-r2", "0.5", "--max-rmse", "0.0", "--champion-tolerance", "0.0"]


def validation_arguments(baseline_log: str, xgboost_log: str) -> list[str]:
    """What the pipeline passes Evaluate: the validation RMSE each training job reported, the gate's thresholds."""
    return ["--baseline-validation-rmse", str(reported_rmse(baseline_log)),
            "--xgboost-validation-rmse", str(reported_rmse(xgboost_log)), *GATE_ARGUMENTS]


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Pipeline:
    """Preprocess, both trainings and the evaluation once, with default paths and arguments."""
    processing = tmp_path_factory.mktemp("preprocess_job")
    stage(DATA, processing / "processing" / "input" / "data" / DATA.name)
    run_job(processing, preprocess.main, ["--target-column", TARGET])

    baseline_root = tmp_path_factory.mktemp("baseline_job")
    stage_training_channels(processing, baseline_root)
    baseline_log = run_job(baseline_root, train_baseline.main, [])

    trial_root = tmp_path_factory.mktemp("xgboost_trial")
    stage_training_channels(processing, trial_root, encoded=True)
    # One thread: tests may share the machine's two cores, and boosting threads spin when they do.
    trial_log = run_job(trial_root, train_xgboost.main, [], {"SM_NUM_CPUS": "1"})
    xgboost_root = tmp_path_factory.mktemp("xgboost_refit")
    stage_training_channels(processing, xgboost_root, encoded=True)
    stage_selection(trial_root, xgboost_root)
    xgboost_log = run_job(xgboost_root, refit_xgboost.main, [], {"SM_NUM_CPUS": "1"})

    evaluation_root = tmp_path_factory.mktemp("evaluate_job")
    inputs = evaluation_root / "processing" / "input"
    pack_model(baseline_root / "model", inputs / "baseline" / "model.tar.gz")
    pack_model(xgboost_root / "model", inputs / "xgboost" / "model.tar.gz")
    for name in ("test", "report"):
        stage(processing / "processing" / name, inputs / name)
    run_job(evaluation_root, evaluate.main, validation_arguments(baseline_log, xgboost_log))
    return Pipeline(processing, baseline_root, trial_root, xgboost_root, evaluation_root, baseline_log, trial_log,
                    xgboost_log)


def row_keys(frame: pd.DataFrame) -> list[tuple]:
    """Rows as text, a missing value as '' (Parquet gives None where CSV gives NaN)."""
    return [tuple(row) for row in frame.astype(object).where(frame.notna(), "").astype(str).itertuples(index=False)]


# --- preprocessing -----------------------------------------------------------------------------

def test_splits_partition_the_rows_in_the_requested_proportions(pipeline):
    source = read_raw_csv(DATA).drop(columns=ID_COLUMNS)
    assert not source.duplicated().any(), "full-row comparison below needs distinct rows"
    splits = {name: pipeline.split(name).drop(columns=ID_COLUMNS) for name in preprocess.SPLITS}
    sizes = {name: len(frame) for name, frame in splits.items()}
    # Hashed, so near the fractions rather than at them: within four binomial standard deviations.
    for name, fraction in {"train": 0.7, "validation": 0.15, "test": 0.15}.items():
        assert abs(sizes[name] - fraction * len(source)) < 4 * math.sqrt(len(source) * fraction * (1 - fraction))
    keys = {name: set(row_keys(frame)) for name, frame in splits.items()}
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]
    assert keys["train"] | keys["validation"] | keys["test"] == set(row_keys(source))


def hashed_splits(frame: pd.DataFrame, ids=None, seed: int = 42) -> dict[str, pd.DataFrame]:
    from tabular_input import TableRead

    return preprocess.prepare(TableRead(frame.reset_index(drop=True), []), target_column=TARGET, id_columns=ids,
                              exclude_columns=[], validation_fraction=0.15, test_fraction=0.15, seed=seed).splits


def orders(splits: dict[str, pd.DataFrame]) -> dict[str, set]:
    """Which rows each split holds, by Order (the sample's row number)."""
    return {name: set(split["Order"]) for name, split in splits.items()}


def test_a_row_keeps_its_split_when_the_table_grows_or_is_reordered():
    table = read_raw_csv(DATA)
    first = orders(hashed_splits(table.head(2000)))
    grown = orders(hashed_splits(pd.concat([table.iloc[2000:], table.head(2000)]).sample(frac=1, random_state=3)))
    for name in preprocess.SPLITS:
        assert first[name] == grown[name] & set(table.head(2000)["Order"])
    assert orders(hashed_splits(table, seed=7))["test"] != grown["test"]


def test_the_split_hash_is_pandas_hash_of_the_identity_as_canonical_text():
    # Hashed column by column, once per distinct value: the same as hashing the canonical text of every row.
    # 0.038075906433424102 is how pandas' parser reads the text 0.0380759064334241, one unit in the last place
    # off the 0.038075906433424094 Arrow reads: rounded to 15 digits, both are the same row.
    frame = pd.DataFrame({"whole": [20, -21, 10 ** 14 + 1, 20], "real": [20.0, np.nan, 0.038075906433424102, 20.0],
                          "large": [1e16, -0.0, 0.038075906433424094, 1e16], "text": ["a", None, "b", "a"],
                          "category": pd.Categorical(["x", "y", None, "x"]), "mixed": [True, 1, None, True]})
    canonical = pd.DataFrame({"whole": ["20.0", "-21.0", "100000000000001.0", "20.0"],
                              "real": ["20.0", "", "0.0380759064334241", "20.0"],
                              "large": ["1e+16", "-0.0", "0.0380759064334241", "1e+16"],
                              "text": ["a", "", "b", "a"], "category": ["x", "y", "", "x"],
                              "mixed": ["True", "1", "", "True"]})
    key = hashlib.blake2b(b"split-seed-42", digest_size=8).hexdigest()
    expected = pd.util.hash_pandas_object(canonical, index=False, hash_key=key).to_numpy() / float(2 ** 64)
    fractions = preprocess.split_fractions(frame, list(frame.columns), 42)
    assert np.array_equal(fractions, expected)
    assert fractions[0] == fractions[3] and len(set(fractions[:3])) == 3


def test_leakage_is_found_in_tables_larger_than_the_scan(monkeypatch):
    import data_checks

    table = read_raw_csv(DATA).sort_values(TARGET).reset_index(drop=True)  # sorted: every k-th row spans it
    rng = np.random.default_rng(1)
    table["ListPrice"] = (table[TARGET] * rng.uniform(1.0, 1.03, len(table))).round(-2)
    monkeypatch.setattr(data_checks, "LEAKAGE_SCAN_ROWS", 400)
    numeric = ["Lot Area", "Gr Liv Area", "ListPrice"]
    leaks = data_checks.suspected_leaks(table.iloc[::2], table.iloc[1::2], TARGET, numeric, ["Neighborhood"])
    assert [leak["columns"] for leak in leaks] == [["ListPrice"]] and leaks[0]["r2"] > 0.95


def test_unusual_targets_are_noted_once_per_value_with_their_rows():
    from data_checks import TargetRows

    # Mostly -2 to 2, with many rows at 12 and a few beyond: unusual, not far enough off to drop.
    target = np.concatenate([np.tile([-2.0, -1, 0, 0, 1, 2], 300), np.full(40, 12.0), [13.0, 14, 15, 16, 18]])
    rows = TargetRows(pd.DataFrame({"change": target, "x": np.arange(len(target))}), "change", "change.csv")
    [note] = [note for note in rows.notes if "unusual" in note]
    assert note == "45 row(s) have an unusual change (kept): 12 (40 rows), 13, 14, 15, 16 ... up to 18"
    assert rows.dropped["target far outside the rest"] == 0


def test_id_columns_none_keeps_a_column_with_a_different_value_in_every_row_as_a_feature():
    # A yearly series: the year is a different number in every row, contiguous, as a row number would be.
    years = np.arange(1700, 2000)
    frame = pd.DataFrame({"year": years, TARGET: 50 + 40 * np.sin(years / 5.0)})
    guessed = preprocess.parse_arguments(["--target-column", TARGET, "--id-columns", ""]).id_columns
    with pytest.raises(ValueError, match=r"no feature columns are left .*year: id-like: .*IdColumns=none keeps it"):
        hashed_splits(frame, guessed)
    none = preprocess.parse_arguments(["--target-column", TARGET, "--id-columns", " None "]).id_columns
    from tabular_input import TableRead

    prepared = preprocess.prepare(TableRead(frame, []), target_column=TARGET, id_columns=none, exclude_columns=[],
                                  validation_fraction=0.15, test_fraction=0.15, seed=42)
    assert prepared.spec["numeric"] == ["year"] and prepared.report["columns"]["left_out"] == {}
    # A row is still identified by every column but the target.
    by_year = preprocess.split_by_identity(frame, ["year"], 0.15, 0.15, 42)
    assert {name: list(split["year"]) for name, split in prepared.splits.items()} == \
        {name: list(split["year"]) for name, split in by_year.items()}


def test_id_columns_alone_identify_a_row_and_equal_rows_fall_together():
    table = read_raw_csv(DATA)
    by_id = orders(hashed_splits(table, ids=["PID"]))
    assert orders(hashed_splits(table.assign(**{"Lot Area": table["Lot Area"] + 1}), ids=["PID"])) == by_id
    # Without IdColumns a row is every column but the target: a copy with another target lands beside
    # its original (no row is scored against its own copy), and a corrected target moves nothing.
    features = table.drop(columns=ID_COLUMNS)
    copies = features.head(300).assign(**{TARGET: features.head(300)[TARGET] + 1})
    splits = hashed_splits(pd.concat([features, copies]))
    keys = {name: set(row_keys(split.drop(columns=[TARGET]))) for name, split in splits.items()}
    assert not keys["train"] & keys["validation"] and not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]


def test_splits_hold_raw_cleaned_rows_with_every_column(pipeline):
    # Left-out columns stay in the rows (a champion trained on other columns is scored on them);
    # the feature spec decides what the models read.
    train = pipeline.split("train")
    assert list(train.columns) == list(read_raw_csv(DATA).columns)
    assert not set(ID_COLUMNS) & {*pipeline.spec["numeric"], *pipeline.spec["categorical"]}
    # Raw, not transformed: living areas are square feet, not standardised scores.
    assert train["Gr Liv Area"].min() > 300
    assert train["Neighborhood"].dtype == object


def test_split_is_reproducible_for_a_seed_and_changes_with_it(pipeline, tmp_path):
    def split_files(output_dir: Path, seed: str) -> dict[str, bytes]:
        run_job(tmp_path / "opt_ml", preprocess.main, [
            "--input-dir", str(DATA.parent), "--output-dir", str(output_dir), "--target-column", TARGET,
            "--seed", seed,
        ])
        return {name: (output_dir / name / f"{name}.parquet").read_bytes() for name in preprocess.SPLITS}

    first = split_files(tmp_path / "first", "42")
    assert first == split_files(tmp_path / "again", "42")
    assert first == {name: (pipeline.processing / "processing" / name / f"{name}.parquet").read_bytes()
                     for name in preprocess.SPLITS}
    assert first["test"] != split_files(tmp_path / "other", "7")["test"]


def test_feature_spec_is_fitted_on_the_training_split_only(pipeline):
    spec, train = pipeline.spec, pipeline.split("train")
    full = read_raw_csv(DATA)
    assert spec["target"] == TARGET
    assert TARGET not in spec["numeric"] + spec["categorical"]
    assert not set(ID_COLUMNS) & set(spec["numeric"] + spec["categorical"])
    assert spec["target_transform"] == "log1p"
    assert spec["medians"] == {name: float(train[name].median()) for name in spec["numeric"]}
    differing = [name for name in spec["numeric"] if spec["medians"][name] != full[name].median()]
    assert differing, "train and full-data medians coincide everywhere: the check would prove nothing"
    assert spec["means"]["Gr Liv Area"] == pytest.approx(train["Gr Liv Area"].mean())
    for name in spec["categorical"]:
        missing = {"__missing__"} if train[name].isna().any() else set()
        # A level is its text without surrounding spaces: the sample's Sale Type has 'WD ' for 'WD'.
        assert set(spec["categories"][name]) == set(train[name].dropna().astype(str).str.strip()) | missing
    assert "WD" in spec["categories"]["Sale Type"] and (train["Sale Type"] == "WD ").any()


def test_preprocess_runs_as_a_process_relocated_by_sm_opt_ml_alone(pipeline, tmp_path):
    root = tmp_path / "opt_ml"
    stage(DATA, root / "processing" / "input" / "data" / "nested" / DATA.name)
    environment = {key: value for key, value in os.environ.items() if key not in TOOLKIT_VARIABLES}
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / "preprocess.py"), "--target-column", TARGET],
        cwd=tmp_path, env={**environment, "SM_OPT_ML": str(root)}, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    for name in (*preprocess.SPLITS, "features"):
        suffix = "json" if name == "features" else "parquet"
        produced = root / "processing" / name / f"{name}.{suffix}"
        expected = pipeline.processing / "processing" / name / f"{name}.{suffix}"
        assert produced.read_bytes() == expected.read_bytes()
    report = json.loads((root / "processing" / "report" / "data-report.json").read_text())
    assert report["rows"] == pipeline.data_report["rows"]


def test_data_report_says_what_was_read_and_left_out(pipeline):
    report = pipeline.data_report
    assert report["rows"] == {"read": 2930, "used": 2930, "dropped": {}}
    # Without IdColumns, the row number (monotonic) and the parcel id (named like one) are guessed as ids.
    assert set(report["columns"]["left_out"]) == set(ID_COLUMNS)
    assert all(reason.startswith("id-like") for reason in report["columns"]["left_out"].values())
    assert len(report["columns"]["numeric"]) + len(report["columns"]["categorical"]) == 79
    assert report["leakage"] == [] and report["warnings"] == []
    assert report["target"]["median"] == 160000.0 and report["target"]["transform"] == "log1p"
    assert report["summary"][0] == "read 2,930 rows from ames_housing.csv (utf-8, comma-separated); used 2,930"


# --- training ----------------------------------------------------------------------------------

def test_each_training_prints_one_validation_metric_last(pipeline):
    for log in (pipeline.baseline_log, pipeline.trial_log, pipeline.xgboost_log):
        assert len(METRIC_PATTERN.findall(log)) == 1
        assert METRIC_PATTERN.fullmatch(log.strip().splitlines()[-1])


def _early_stopped_xgboost(pipeline):
    """fit_booster with the job's defaults on the training rows, stopping early on the validation rows."""
    from train_xgboost import HeldOut, booster_parameters, fit_booster, model_spec

    arguments = train_xgboost.parse_arguments(["--nthread", "1"])
    train = pipeline.encoded("train").whole()
    spec = model_spec(pipeline.spec, train.targets, arguments.target_transform)
    booster = fit_booster(train, HeldOut.of(pipeline.encoded("validation").whole(), spec), spec,
                          booster_parameters(arguments), arguments.num_round, arguments.early_stopping_rounds)
    return arguments, spec, booster


def test_xgboost_on_a_large_table_reports_the_validation_rmse_and_saves_its_choice(pipeline):
    import resampling

    train, validation = pipeline.split("train"), pipeline.split("validation")
    assert not resampling.uses_cross_validation(len(train) + len(validation))  # 2,490 train + validation rows
    arguments, spec, early_stopped = _early_stopped_xgboost(pipeline)
    # The trial scores the rows Preprocess encoded; serving encodes the raw ones: the same predictions.
    expected = rmse(validation[TARGET], inference.predict_fn(validation, inference.ServingModel(early_stopped, spec)))
    assert reported_rmse(pipeline.trial_log) == pytest.approx(expected, abs=1e-5)
    assert 10_000 < expected < 60_000
    # The score predicts XGBoost's own copy of the encoded rows (theirs let go): the very predictions of the rows.
    encoded = pipeline.encoded("validation").whole()
    held_out = train_xgboost.HeldOut.of(encoded, spec)
    np.testing.assert_array_equal(held_out.targets, encoded.targets)
    np.testing.assert_array_equal(held_out.predictions(early_stopped, spec),
                                  decode_target(early_stopped.inplace_predict(encoded.features), spec))
    # It saves its choice, not a model: the best round count scaled by the row ratio, for the refit.
    rows = len(train) + len(validation)
    selection = train_xgboost.Selection.read(pipeline.xgboost_root / "input" / "data" / "selection")
    assert sorted(path.name for path in (pipeline.trial_root / "model").iterdir()) == ["selection.json"]
    assert selection.refit_rounds == round(early_stopped.num_boosted_rounds() * rows / len(train))
    assert selection.validation_rmse == pytest.approx(reported_rmse(pipeline.trial_log), abs=1e-6)
    assert selection.target_transform == arguments.target_transform == "log1p"
    parameters = train_xgboost.booster_parameters(arguments)
    assert selection.parameters == {name: value for name, value in parameters.items() if name != "nthread"}
    assert f"chosen: {selection.refit_rounds} rounds for a refit on {rows:,} train + validation rows" in (
        pipeline.trial_log)


def test_the_refit_boosts_the_trials_choice_on_train_and_validation(pipeline):
    """The tuned model is the trial's parameters boosted for its round count on the train and validation rows: the
    same trees as boosting them here, reported with the trial's validation RMSE."""
    from train_xgboost import NOT_KEPT, boost, quantised, spec_in

    selection = train_xgboost.Selection.read(pipeline.xgboost_root / "input" / "data" / "selection")
    spec = spec_in(pipeline.spec, selection.target_transform)
    rows = [pipeline.encoded("train"), pipeline.encoded("validation")]
    expected = boost({**selection.parameters, "nthread": 1}, quantised(rows, spec), selection.refit_rounds, NOT_KEPT,
                     "refit")
    saved = inference.model_fn(pipeline.xgboost_root / "model")
    assert saved.booster.num_boosted_rounds() == selection.refit_rounds
    assert saved.booster.get_dump() == expected.get_dump()
    assert saved.spec == spec
    row_count = sum(len(part) for part in rows)
    assert (f"refit on {row_count:,} train + validation rows for {selection.refit_rounds} rounds; target transform "
            "log1p") in pipeline.xgboost_log
    assert reported_rmse(pipeline.xgboost_log) == reported_rmse(pipeline.trial_log)


def test_the_refit_refuses_a_selection_that_is_not_a_trials(pipeline, tmp_path, capsys):
    stage_training_channels(pipeline.processing, tmp_path, encoded=True)
    pack_model(pipeline.baseline_root / "model", tmp_path / "input" / "data" / "selection" / "model.tar.gz")
    assert_fails_cleanly(tmp_path, refit_xgboost.main, [], "failure",
                         "holds no selection.json: it is not a train_xgboost.py trial's artefact; give the selection "
                         "channel the best tuning trial's model artefact", capsys)
    (tmp_path / "output" / "failure").unlink()
    shutil.rmtree(tmp_path / "input" / "data" / "selection")
    assert_fails_cleanly(tmp_path, refit_xgboost.main, [], "failure",
                         "holds 0 model.tar.gz files; give it the best tuning trial's model artefact", capsys)


def test_preprocess_encodes_train_and_validation_once_to_the_bits_serving_encodes(pipeline):
    from features import FeatureEncoder, with_absent_levels

    for name in ("train", "validation"):
        raw, encoded = pipeline.split(name), pipeline.encoded(name).whole()
        served = FeatureEncoder(with_absent_levels(pipeline.spec, "missing"))(raw)  # float64, as a request
        assert encoded.features.dtype == np.float32 and encoded.features.shape == served.shape
        cells = encoded.features.tocoo()  # explicit zeros (a number scaled to 0) are present cells too
        present = np.full(served.shape, np.nan, dtype=np.float32)
        present[cells.row, cells.col] = cells.data
        assert len(cells.data) == np.count_nonzero(~np.isnan(served))  # no cell twice, none missing
        np.testing.assert_array_equal(present, served.astype(np.float32))
        np.testing.assert_array_equal(encoded.targets, raw[TARGET].to_numpy(dtype=float))


def test_folds_partition_the_rows_the_same_way_in_every_job():
    import resampling

    folds = resampling.fold_indices(103)
    held_out = np.concatenate([part for _, part in folds])
    assert sorted(held_out) == list(range(103)) and len(folds) == resampling.FOLDS
    for fit_rows, part in folds:
        assert not set(fit_rows) & set(part) and len(fit_rows) + len(part) == 103
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, resampling.fold_indices(103)))


def test_xgboost_on_a_small_table_reports_the_out_of_fold_rmse(pipeline, tmp_path, monkeypatch):
    import resampling
    from train_xgboost import booster_parameters, cross_validated_fit, model_spec

    from encoded_rows import Encoded

    monkeypatch.setattr(resampling, "CROSS_VALIDATION_MAX_ROWS", 5000)
    stage_training_channels(pipeline.processing, tmp_path, encoded=True)
    fast = ["--nthread", "1", "--eta", "0.3"]  # a few dozen rounds per fold
    log = run_job(tmp_path, train_xgboost.main, fast)
    train, validation = pipeline.encoded("train").whole(), pipeline.encoded("validation").whole()
    arguments = train_xgboost.parse_arguments(fast)
    spec = model_spec(pipeline.spec, train.targets, arguments.target_transform)
    pooled = Encoded.joined([train, validation], train.features.shape[1])
    score, rounds = cross_validated_fit(pooled, spec, booster_parameters(arguments), arguments)
    assert reported_rmse(log) == pytest.approx(score, abs=1e-5)
    # Out of fold, through serving on the raw rows: the same error.
    raw = resampling.pooled_rows(pipeline.split("train"), pipeline.split("validation"))
    served = np.empty(len(raw))
    for fold, (fit_rows, held_out) in enumerate(resampling.fold_indices(len(raw))):
        fold_held_out = train_xgboost.HeldOut.of(pooled.take(held_out), spec)
        booster = train_xgboost.fit_booster(pooled.take(fit_rows), fold_held_out, spec, booster_parameters(arguments),
                                            arguments.num_round, arguments.early_stopping_rounds)
        served[held_out] = inference.predict(raw.iloc[held_out], inference.ServingModel(booster, spec))
    assert rmse(raw[TARGET], served) == pytest.approx(score, abs=1e-5)
    assert f"{resampling.FOLDS}-fold cross-validation: {rounds} rounds on average" in log
    selection = json.loads((tmp_path / "model" / "selection.json").read_text())
    assert selection["refit_rounds"] == round(rounds * resampling.FOLDS / (resampling.FOLDS - 1))


def test_xgboost_stops_early_at_the_best_round(pipeline, tmp_path):
    """Training goes exactly early_stopping_rounds past the best validation round and keeps up to it."""
    from checkpoints import Progress
    from train_xgboost import HeldOut, booster_parameters, fit_booster, model_spec

    arguments = train_xgboost.parse_arguments(["--nthread", "1"])
    train = pipeline.encoded("train").whole()
    spec = model_spec(pipeline.spec, train.targets, arguments.target_transform)
    progress = Progress(tmp_path)
    early_stopped = fit_booster(train, HeldOut.of(pipeline.encoded("validation").whole(), spec), spec,
                                booster_parameters(arguments), arguments.num_round, arguments.early_stopping_rounds,
                                progress=progress)
    best_rounds = early_stopped.num_boosted_rounds()
    assert best_rounds + arguments.early_stopping_rounds < arguments.num_round, "early stopping never triggered"
    history = progress.load("selection")["history"]
    assert int(np.argmin(history)) == best_rounds - 1
    assert len(history) == best_rounds + arguments.early_stopping_rounds


def test_xgboost_boosts_in_one_call_without_checkpoints_and_in_seeded_segments_with_them(pipeline, tmp_path):
    """Segments cost a prediction of every tree so far each, so only a job that keeps checkpoints pays for them."""
    from checkpoints import Progress
    from train_xgboost import NOT_KEPT, SEGMENT_ROUNDS, boost, booster_parameters, xgboost

    arguments = train_xgboost.parse_arguments(["--nthread", "1", "--max_depth", "3"])
    parameters = booster_parameters(arguments)
    train = pipeline.encoded("train").whole()
    matrix = xgboost.DMatrix(train.features, label=train.targets)
    num_round = SEGMENT_ROUNDS + 20
    one_call = xgboost.train(parameters, matrix, num_round)
    segmented = xgboost.train({**parameters, "seed": parameters["seed"] + SEGMENT_ROUNDS}, matrix, 20,
                              xgb_model=xgboost.train(parameters, matrix, SEGMENT_ROUNDS))
    assert one_call.get_dump() != segmented.get_dump()  # else this test could not tell them apart
    assert boost(parameters, matrix, num_round, NOT_KEPT, "refit").get_dump() == one_call.get_dump()
    assert boost(parameters, matrix, num_round, Progress(tmp_path), "refit").get_dump() == segmented.get_dump()


@pytest.mark.parametrize("loading", ["import train_xgboost", "import inference; inference.model_fn(MODEL_DIR)"])
def test_trials_evaluate_and_endpoints_load_xgboost_without_scikit_learn(loading, pipeline):
    """XGBoost would import scikit-learn and SciPy's statistics for estimators no script uses (1.6 s of a trial, of
    Evaluate and of an endpoint's start); hidden while XGBoost loads, scikit-learn still imports afterwards."""
    check = (f"import sys; MODEL_DIR = {str(pipeline.xgboost_root / 'model')!r}; {loading}; "
             "assert 'sklearn' not in sys.modules, 'imported'; import sklearn.linear_model; "
             "print(sys.modules['xgboost'].__version__)")
    done = subprocess.run([sys.executable, "-c", check], cwd=SCRIPTS_DIR, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == train_xgboost.xgboost.__version__


def test_xgboost_reads_a_large_table_in_batches_to_the_model_it_fits_in_memory(pipeline):
    """The path of tables too large to cross-validate: rows quantised a batch at a time, never held whole."""
    from train_xgboost import booster_parameters, holdout_fit, model_spec

    arguments = train_xgboost.parse_arguments(["--nthread", "1", "--eta", "0.3"])
    parameters = booster_parameters(arguments)
    train, validation = pipeline.encoded("train").whole(), pipeline.encoded("validation").whole()
    spec = model_spec(pipeline.spec, train.targets, arguments.target_transform)
    in_memory = holdout_fit(train, validation, spec, parameters, arguments)
    files = {name: pipeline.encoded(name, batch_rows=300) for name in ("train", "validation")}
    assert [len(batch) for batch in files["train"]] == [300] * 6 + [len(train) - 1800]
    assert holdout_fit([files["train"]], [files["validation"]], spec, parameters, arguments) == in_memory


def test_xgboost_fits_the_target_itself_when_asked_or_when_it_cannot_be_logged(pipeline):
    from train_xgboost import model_spec

    targets = pipeline.encoded("train").targets()
    assert model_spec(pipeline.spec, targets, "identity")["target_transform"] == "identity"
    assert model_spec({**pipeline.spec, "target_transform": "identity"}, targets - 200_000,
                      "log1p")["target_transform"] == "identity"


def assert_same_linear_model(model: dict, expected: dict) -> None:
    """The same model but for the order in which the job summed its rows (a batch each, or two channels)."""
    assert {key: value for key, value in model.items() if key not in ("coefficients", "intercept")} == \
        {key: value for key, value in expected.items() if key not in ("coefficients", "intercept")}
    scale = np.abs(expected["coefficients"]).max()
    assert np.allclose(model["coefficients"], expected["coefficients"], rtol=0, atol=1e-9 * scale)
    assert model["intercept"] == pytest.approx(expected["intercept"], rel=1e-9)


def test_baseline_chooses_its_transform_on_held_out_rows_and_alpha_by_cross_validation(pipeline):
    from linear_model import linear_model_from_json

    train, validation = pipeline.split("train"), pipeline.split("validation")
    model, spec, score, chosen = train_baseline.choose_and_refit(train, validation, pipeline.spec,
                                                                 train_baseline.ALPHAS)
    assert reported_rmse(pipeline.baseline_log) == pytest.approx(score, abs=1e-5)
    transforms = ("log1p", "identity")
    trials = dict(zip(transforms, train_baseline.held_out_rmses(
        train, validation, [{**pipeline.spec, "target_transform": transform} for transform in transforms],
        train_baseline.ALPHAS)))
    # Fitted alone, each transform scores as it does beside the other.
    assert train_baseline.held_out_rmses(train, validation, [{**pipeline.spec, "target_transform": "identity"}],
                                         train_baseline.ALPHAS) == [pytest.approx(trials["identity"], rel=1e-9)]
    assert score == pytest.approx(min(trials.values()))
    assert spec["target_transform"] == min(trials, key=trials.get)
    saved = linear_model_from_json((pipeline.baseline_root / "model" / "linear-model.json").read_text(), spec)
    assert_same_linear_model(saved, model)  # the refit on train + validation is what the artefact holds
    assert json.loads((pipeline.baseline_root / "model" / "features.json").read_text()) == spec
    assert chosen.startswith(f"target transform {spec['target_transform']}, alpha ")


def test_the_baseline_reads_a_large_table_in_batches_to_the_model_it_fits_in_memory(pipeline, monkeypatch):
    """Above the tables small enough to cross-validate, the job reads its rows a batch at a time for each pass and
    never holds them whole: the same choices, and the same model and score but for the order of the sums."""
    import container
    from container import TableBatches

    monkeypatch.setattr(container, "BATCH_ROWS", 300)
    tables = {name: TableBatches(pipeline.processing / "processing" / name, name) for name in ("train", "validation")}
    assert [len(batch) for batch in tables["train"].batches()] == [300] * 6 + [len(tables["train"]) - 1800]
    model, spec, score, chosen = train_baseline.choose_and_refit(
        pipeline.split("train"), pipeline.split("validation"), pipeline.spec, train_baseline.ALPHAS)
    batched = train_baseline.choose_and_refit([tables["train"]], [tables["validation"]], pipeline.spec,
                                              train_baseline.ALPHAS)
    assert batched[1:] == (spec, pytest.approx(score, rel=1e-9), chosen)
    assert_same_linear_model(batched[0], model)


def test_the_baseline_refits_from_the_train_sums_merged_with_the_validation_sums(pipeline):
    """The refit's sums over train + validation are the train rows' (summed to choose) merged with the validation
    rows': the same sums as over the pooled rows, hence the same alpha and model but for the order of the sums."""
    train, validation = pipeline.split("train"), pipeline.split("validation")
    specs = [{**pipeline.spec, "target_transform": transform} for transform in ("identity", "log1p")]
    merged = train_baseline.Moments.of(train, specs).target_column(1).merged(
        train_baseline.Moments.of(validation, specs[1:]))
    pooled_rows = pd.concat([train, validation], ignore_index=True)
    pooled = train_baseline.Moments.of(pooled_rows, specs[1:])
    assert merged.rows == pooled.rows == len(pooled_rows)
    np.testing.assert_array_equal(merged.target_ranges, pooled.target_ranges)
    for name in ("feature_means", "target_means", "features_cross", "target_cross"):
        expected = getattr(pooled, name)
        assert np.allclose(getattr(merged, name), expected, rtol=0, atol=1e-9 * np.abs(expected).max()), name
    [(from_merged, alpha)] = train_baseline.cross_validated_fits(pooled_rows, specs[1:], train_baseline.ALPHAS,
                                                                 merged)
    [(from_rows, alpha_from_rows)] = train_baseline.cross_validated_fits(pooled_rows, specs[1:],
                                                                         train_baseline.ALPHAS)
    assert alpha == alpha_from_rows
    assert_same_linear_model(from_merged, from_rows)
    model, spec, _, _ = train_baseline.choose_and_refit(train, validation, pipeline.spec, train_baseline.ALPHAS)
    [(refit, _)] = train_baseline.cross_validated_fits(pooled_rows, [spec], train_baseline.ALPHAS)
    assert_same_linear_model(model, refit)


def test_many_rows_are_predicted_a_batch_at_a_time_as_all_at_once(pipeline, monkeypatch):
    test = pipeline.split("test")
    models = [inference.model_fn(pipeline.xgboost_root / "model"), inference.model_fn(pipeline.baseline_root / "model")]
    at_once = [inference.predict(test, model) for model in models]
    monkeypatch.setattr(inference, "PREDICT_BATCH_ROWS", 100)
    for model, expected in zip(models, at_once):
        assert np.allclose(inference.predict(test, model), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("transform", ["log1p", "identity"])
def test_the_baseline_solves_ridge_from_sums_as_scikit_learn_does(pipeline, monkeypatch, transform):
    """Ridge from cross-products summed a batch at a time gives scikit-learn's leave-one-out errors (RidgeCV),
    hence its alpha, and its coefficients (Ridge), without holding the encoded matrix."""
    from sklearn.linear_model import Ridge, RidgeCV

    monkeypatch.setattr(train_baseline, "BATCH_ROWS", 500)  # the sums span several batches
    train, spec = pipeline.split("train"), {**pipeline.spec, "target_transform": transform}
    features, targets = transform_features(train, spec), encode_target(target_values(train, TARGET), spec)
    search = RidgeCV(alphas=train_baseline.ALPHAS, store_cv_results=True).fit(features, targets)
    # Beside the other transform's target, as the job fits them: the features' sums serve both.
    other = {**spec, "target_transform": "identity" if transform == "log1p" else "log1p"}
    moments = train_baseline.Moments.of(train, [other, spec])
    errors = train_baseline.leave_one_out_errors(moments, train, [other, spec], train_baseline.ALPHAS)[1]
    assert np.allclose(errors, search.cv_results_.mean(axis=0), rtol=1e-6, atol=0)
    _, (model, alpha) = train_baseline.cross_validated_fits(train, [other, spec], train_baseline.ALPHAS)
    assert alpha == search.alpha_
    ridge = Ridge(alpha=alpha).fit(features, targets)
    scale = np.abs(ridge.coef_).max()
    assert np.allclose(model["coefficients"], ridge.coef_, rtol=0, atol=1e-7 * scale)
    assert model["intercept"] == pytest.approx(ridge.intercept_, abs=1e-7 * scale)


def test_model_artifacts_hold_json_and_serving_code_but_no_pickle(pipeline):
    def members(root: Path, name: str) -> set[str]:
        with tarfile.open(root / "processing" / "input" / name / "model.tar.gz") as bundle:
            return {member.name for member in bundle.getmembers() if member.isfile()}

    serving_code = {f"code/{name}" for name in container.SERVING_MODULES}
    assert members(pipeline.evaluation_root, "baseline") == {"linear-model.json", "features.json", *serving_code}
    assert members(pipeline.evaluation_root, "xgboost") == {"xgboost-model.json", "features.json", *serving_code}
    booster = json.loads((pipeline.xgboost_root / "model" / "xgboost-model.json").read_text())
    assert "learner" in booster
    for root in (pipeline.xgboost_root, pipeline.baseline_root):
        for name in container.SERVING_MODULES:
            assert (root / "model" / "code" / name).read_bytes() == (SCRIPTS_DIR / name).read_bytes()


# --- evaluation --------------------------------------------------------------------------------

def test_evaluation_report_follows_the_model_metrics_format(pipeline):
    report = pipeline.evaluation
    assert set(report) == {"regression_metrics", "chosen", "candidates", "comparison", "readable", "data",
                           "champion", "gate", "report"}
    for metrics in [report["regression_metrics"], *(c["regression_metrics"] for c in report["candidates"].values())]:
        assert set(metrics) == {"rmse", "mae", "r2"}
        for entry in metrics.values():
            assert set(entry) == {"value", "standard_deviation"}
            assert math.isfinite(entry["value"]) and entry["standard_deviation"] > 0
    chosen = report["chosen"]["candidate"]
    assert report["regression_metrics"] == report["candidates"][chosen]["regression_metrics"]
    rmse_ratio = report["regression_metrics"]["rmse"]["value"] / \
        report["candidates"]["baseline"]["regression_metrics"]["rmse"]["value"]
    assert report["comparison"]["rmse_improvement_over_baseline"] == pytest.approx(1 - rmse_ratio)
    readable = report["readable"]
    assert readable["rmse"] == f"{report['regression_metrics']['rmse']['value']:,.0f}"
    assert readable["improvement_over_baseline"] == f"{1 - rmse_ratio:.1%}"
    assert report["data"] == {"warnings": [], "warning_count": "0", "suspected_leakage": "none"}
    assert report["champion"]["compared"] == "no" and readable["champion"] == "no approved champion"


class ReportPage(HTMLParser):
    """What a browser would load from the page, and the figures its tables show."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.links, self.cells, self.ids = [], [], {}, {}
        self._cell, self._id = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes)
        for reference in ("href", "src"):
            if reference in attributes:
                self.links.append(attributes[reference])
        if tag == "td" and "data-metric" in attributes:
            self._cell = (attributes["data-candidate"], attributes["data-metric"])
        self._id = attributes.get("id")

    def handle_endtag(self, tag):
        self._id = None

    def handle_data(self, data):
        if self._cell is not None:
            self.cells[self._cell] = data
            self._cell = None
        if self._id is not None:
            self.ids[self._id] = self.ids.get(self._id, "") + data


def test_the_evaluation_report_shows_evaluation_json_and_plots_stored_beside_it(pipeline):
    from PIL import Image

    from data_checks import format_number
    from evaluation_report import PLOT_SIZE

    report = pipeline.evaluation
    evaluation_dir = pipeline.evaluation_root / "processing" / "evaluation"
    page_path = evaluation_dir / report["report"]
    page = ReportPage(page_path.read_text(encoding="utf-8"))
    # Self-contained: every file the page loads lies beside it, and it loads nothing from a network.
    assert page.links and all(not re.match(r"[a-z]+:", link) and not link.startswith("/") for link in page.links)
    assert {image["src"] for image in page.images} == {path.name for path in page_path.parent.glob("*.png")}
    assert len(page.images) == 5
    for image in page.images:
        with Image.open(page_path.parent / image["src"]) as png:
            assert png.format == "PNG"
            assert png.size == (int(image["width"]), int(image["height"])) == PLOT_SIZE
    # The numbers on the page are evaluation.json's.
    shown = {**{(name, "validation_rmse"): format_number(c["validation_rmse"])
                for name, c in report["candidates"].items()}}
    for name, candidate in report["candidates"].items():
        for metric, entry in candidate["regression_metrics"].items():
            digits = (lambda value: f"{value:.3f}") if metric == "r2" else format_number
            shown[(name, metric)] = digits(entry["value"])
            shown[(name, f"{metric}_sd")] = digits(entry["standard_deviation"])
    assert page.cells == shown
    assert report["gate"]["passed"] is True
    assert page.ids["verdict"] == "The chosen model (xgboost) passes the quality gate."


def test_the_report_states_each_gate_condition_as_the_gate_decides_it():
    import evaluation_report

    report = {"regression_metrics": {"r2": {"value": 0.81}, "rmse": {"value": 30000.0}},
              "champion": {"compared": "yes", "worse_by": 0.05}}
    verdict = evaluation_report.gate_verdict(report, min_r2=0.8, max_rmse=25000, champion_tolerance=0.1)
    assert [check["passed"] for check in verdict["checks"]] == [True, False, True] and not verdict["passed"]
    assert verdict["failed"] == "MaxRmse"
    assert [check["value"] for check in verdict["checks"]] == ["0.810", "30,000", "+5.0%"]
    off = evaluation_report.gate_verdict({**report, "champion": {"compared": "no", "worse_by": 0.0}},
                                         min_r2=0.9, max_rmse=0, champion_tolerance=0.0)
    assert [check["passed"] for check in off["checks"]] == [False, True, True] and off["failed"] == "MinR2"


def test_feature_gains_name_the_spec_columns_largest_first(pipeline):
    import evaluation_report
    from features import feature_names

    model = inference.model_fn(pipeline.xgboost_root / "model")
    gains = evaluation_report.feature_gain(model.booster, feature_names(model.spec))
    assert gains and {name for name, _ in gains} <= set(feature_names(model.spec))
    assert [value for _, value in gains] == sorted((value for _, value in gains), reverse=True)


def test_the_candidate_with_the_lower_validation_rmse_is_chosen_and_copied(pipeline):
    report = pipeline.evaluation
    validation = {name: c["validation_rmse"] for name, c in report["candidates"].items()}
    chosen = min(validation, key=validation.get)
    assert report["chosen"]["candidate"] == chosen == "xgboost"
    assert report["chosen"]["reason"] == (f"lowest validation RMSE: xgboost {validation['xgboost']:,.0f} "
                                          f"against baseline {validation['baseline']:,.0f}")
    # Chosen by the validation RMSE each training job reported (the saved models have seen those rows).
    assert validation == {"xgboost": reported_rmse(pipeline.xgboost_log),
                          "baseline": reported_rmse(pipeline.baseline_log)}
    copied = pipeline.evaluation_root / "processing" / "model" / "model.tar.gz"
    original = pipeline.evaluation_root / "processing" / "input" / chosen / "model.tar.gz"
    assert copied.read_bytes() == original.read_bytes()


def test_choice_goes_to_the_baseline_when_it_validates_better():
    chosen, reason = evaluate.choose_candidate({"xgboost": 61234.5, "baseline": 60681.97})
    assert chosen == "baseline"
    assert reason == "lowest validation RMSE: baseline 60,682 against xgboost 61,234"
    assert evaluate.choose_candidate({"xgboost": 5.0, "baseline": 5.0})[0] == "xgboost"


def test_both_candidates_are_real_models_on_the_test_split(pipeline):
    candidates = pipeline.evaluation["candidates"]
    xgboost_metrics, baseline_metrics = (candidates[name]["regression_metrics"] for name in ("xgboost", "baseline"))
    # One untuned XGBoost fit and a cross-validated Ridge: either may win on a given split, but both
    # explain most of the variance and neither is far behind the other (the baseline is no straw man).
    assert xgboost_metrics["r2"]["value"] > 0.85 and baseline_metrics["r2"]["value"] > 0.85
    assert 0.7 < xgboost_metrics["rmse"]["value"] / baseline_metrics["rmse"]["value"] < 1.3
    assert baseline_metrics["mae"]["value"] < 1.15 * xgboost_metrics["mae"]["value"]


def test_evaluation_metrics_are_computed_in_dollars_from_the_predictions(pipeline):
    predictions, test = pipeline.predictions, pipeline.split("test")
    assert list(predictions.columns) == ["row", "actual", "xgboost", "baseline"]
    assert predictions["row"].tolist() == list(range(len(test)))
    assert np.allclose(predictions["actual"], test[TARGET])
    for name, candidate in pipeline.evaluation["candidates"].items():
        assert candidate["regression_metrics"]["rmse"]["value"] == pytest.approx(
            rmse(predictions["actual"], predictions[name]))


# --- serving -----------------------------------------------------------------------------------

SERVE_FROM_ARTIFACT = """
import json, sys
model_dir, csv_body, json_body = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
sys.path.insert(0, model_dir + "/code")  # run with -I: nothing else of the repository is importable
import inference
assert inference.__file__.startswith(model_dir), inference.__file__
model = inference.model_fn(model_dir)
def serve(body, content_type, accept):
    answer, media_type = inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), accept)
    assert media_type == accept.split(";")[0], media_type
    return answer
from_csv = json.loads(serve(csv_body.encode(), "text/csv", "application/json"))["predictions"]
from_json = [float(line) for line in serve(json_body, "application/json; charset=utf-8", "text/csv").splitlines()]
print(json.dumps({"csv": from_csv, "json": from_json}))
"""


@pytest.mark.parametrize("candidate", ["xgboost", "baseline"])
def test_serving_from_the_artifact_alone_reproduces_the_evaluation_predictions(pipeline, tmp_path, candidate):
    model_dir = tmp_path / "model"
    with tarfile.open(pipeline.evaluation_root / "processing" / "input" / candidate / "model.tar.gz") as bundle:
        bundle.extractall(model_dir, filter="data")
    test = pipeline.split("test")
    csv_request = tmp_path / "request.csv"
    csv_request.write_text(test.to_csv(index=False))
    json_request = tmp_path / "request.json"
    # Without the target: serving needs only the feature columns. to_json writes NaN as null.
    records = json.loads(test.drop(columns=[TARGET]).to_json(orient="records", double_precision=15))
    json_request.write_text(json.dumps({"instances": records}))
    completed = subprocess.run(
        [sys.executable, "-I", "-c", SERVE_FROM_ARTIFACT, str(model_dir), str(csv_request), str(json_request)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    served = json.loads(completed.stdout)
    expected = pipeline.predictions[candidate].to_numpy()
    assert len(served["csv"]) == len(served["json"]) == len(expected)
    assert np.allclose(served["csv"], expected, rtol=1e-9, atol=0)
    assert np.allclose(served["json"], expected, rtol=1e-9, atol=0)


def rejection(body, content_type, accept, model) -> tuple[int, str]:
    """What the handlers answer a request they cannot score: the status and the text sent back."""
    answer = inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), accept)
    assert isinstance(answer, inference.RejectedRequest), answer
    sent = {}
    chunks = answer({}, lambda status, headers: sent.update(status=status, headers=dict(headers)))
    assert sent["headers"]["Content-Type"].startswith("text/plain")
    assert int(sent["status"].split()[0]) == answer.status
    return answer.status, b"".join(chunks).decode()


def test_serving_answers_requests_it_cannot_score_with_a_4xx_and_one_line(pipeline):
    model = inference.model_fn(pipeline.xgboost_root / "model")
    rows = pipeline.split("test").head(3)
    cases = [
        (rows.drop(columns=["Gr Liv Area", "Neighborhood"]).to_csv(index=False), "text/csv", "text/csv",
         400, "'Gr Liv Area', 'Neighborhood'"),
        (rows.assign(**{"Gr Liv Area": "large"}).to_csv(index=False), "text/csv", "text/csv", 400, "Gr Liv Area"),
        ("<rows/>", "application/xml", "text/csv", 415, "unsupported content type 'application/xml'"),
        (json.dumps({"rows": []}), "application/json", "text/csv", 400, "list of records"),
        ('[{"Lot Area": 1', "application/json", "text/csv", 400, "not valid JSON"),
        ("", "text/csv", "text/csv", 400, "not valid CSV"),
        (rows.to_csv(index=False), "text/csv", "application/x-protobuf", 406, "unsupported accept type"),
    ]
    for body, content_type, accept, status, message in cases:
        answered_status, text = rejection(body, content_type, accept, model)
        assert (answered_status, text.count("\n")) == (status, 1), (message, text)
        assert message in text and "Traceback" not in text
    # The same steps raise for callers that want exceptions (Evaluate, training).
    with pytest.raises(inference.RejectedRequest, match="unsupported content type"):
        inference.read_rows("<rows/>", "application/xml")
    with pytest.raises(ValueError, match="'Gr Liv Area', 'Neighborhood'"):
        inference.predict(rows.drop(columns=["Gr Liv Area", "Neighborhood"]), model)


def test_any_request_size_and_format_gets_the_same_predictions(pipeline):
    """Small CSV bodies go through the csv module, large ones through pandas, JSON through records: the
    frames and predictions agree with each other, row by row, and with Evaluate's typed reading."""
    model = inference.model_fn(pipeline.xgboost_root / "model")
    text = pipeline.split("test").to_csv(index=False)
    assert len(text) > inference.SMALL_BODY_BYTES
    header, *lines = text.splitlines()
    large = inference.read_rows(text, "text/csv")
    small = pd.concat([inference.read_rows("\n".join([header, *lines[start:start + 20]]) + "\n", "text/csv")
                       for start in range(0, len(lines), 20)], ignore_index=True)
    pd.testing.assert_frame_equal(small, large)
    batch = inference.predict(large, model)
    assert np.array_equal(batch, inference.predict(pipeline.split("test"), model))
    one_by_one = [inference.predict(inference.read_rows(f"{header}\n{line}\n", "text/csv"), model)[0]
                  for line in lines[:40]]
    assert np.array_equal(one_by_one, batch[:40])
    records = json.loads(pipeline.split("test").to_json(orient="records", double_precision=15))
    assert np.allclose(inference.predict(inference.read_rows(json.dumps(records), "application/json"), model),
                       batch, rtol=1e-9, atol=0)


def test_numbers_in_requests_are_read_as_in_training(pipeline):
    model = inference.model_fn(pipeline.xgboost_root / "model")
    rows = pipeline.split("test").head(3).astype(str).replace("nan", "")
    plain = inference.predict(inference.read_rows(rows.to_csv(index=False), "text/csv"), model)
    formatted = rows.assign(**{"Lot Area": [f"{float(v):,.0f}" for v in rows["Lot Area"]]})
    assert np.array_equal(inference.predict(inference.read_rows(formatted.to_csv(index=False), "text/csv"), model),
                          plain)
    # Python reads '1_000' and non-ASCII digits as numbers; pandas, which training reads with, does not.
    for odd in ("1_000", "１０００"):
        status, text = rejection(rows.assign(**{"Lot Area": odd}).to_csv(index=False), "text/csv", "text/csv", model)
        assert status == 400 and "'Lot Area' must be numeric" in text


# --- images ------------------------------------------------------------------------------------

IMPORT_WITHOUT = """
import sys
sys.path.insert(0, sys.argv[1])
for missing in sys.argv[2].split(","):
    sys.modules[missing] = None  # makes `import missing` fail, as in an image without it
for module in sys.argv[3].split(","):
    __import__(module)
"""


@pytest.mark.parametrize("absent, modules", [
    ("xgboost", "preprocess,train_baseline,find_champion"),  # the scikit-learn image has no XGBoost
    ("sklearn", "train_xgboost,evaluate,inference"),  # fitted state must not need scikit-learn here
])
def test_scripts_import_in_their_image(absent, modules):
    completed = subprocess.run([sys.executable, "-I", "-c", IMPORT_WITHOUT, str(SCRIPTS_DIR), absent, modules],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


# --- bad input ---------------------------------------------------------------------------------

def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def assert_fails_cleanly(root: Path, main, argv, failure_file: str, expected: str, capsys) -> None:
    """One line naming the problem, on stderr and in the failure file, exit 1, nothing else written."""
    before = files_under(root)
    with pytest.raises(SystemExit) as exit_info:
        run_job(root, main, argv)
    assert exit_info.value.code == 1
    stderr_lines = capsys.readouterr().err.splitlines()
    assert len(stderr_lines) == 1 and expected in stderr_lines[0], stderr_lines
    failure = root / "output" / failure_file
    assert failure.read_text() == stderr_lines[0] + "\n"
    assert files_under(root) - before == {failure}


def write_rows(directory: Path, name: str, frame: pd.DataFrame) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / name, index=False)


@pytest.mark.parametrize("argv, expected", [
    (["--target-column", "Price"], "TargetColumn 'Price' is not a column of ames_housing.csv (closest: 'SalePrice')"),
    (["--target-column", "Neighborhood"], "TargetColumn 'Neighborhood' must hold numbers"),
    (["--target-column", TARGET, "--test-fraction", "1.5"], "invalid arguments"),
    (["--target-column", TARGET, "--validation-fraction", "0.5", "--test-fraction", "0.5"],
     "must leave rows for training"),
])
def test_preprocess_rejects_bad_input(tmp_path, capsys, argv, expected):
    stage(DATA, tmp_path / "processing" / "input" / "data" / DATA.name)
    assert_fails_cleanly(tmp_path, preprocess.main, argv, "message", expected, capsys)


def test_training_rejects_a_channel_missing_a_feature_column(pipeline, tmp_path, capsys):
    stage_training_channels(pipeline.processing, tmp_path)
    train_file = tmp_path / "input" / "data" / "train" / "train.parquet"
    pd.read_parquet(train_file).drop(columns=["Gr Liv Area"]).to_parquet(train_file, index=False)
    assert_fails_cleanly(tmp_path, train_baseline.main, [], "failure", "missing required column(s) 'Gr Liv Area'",
                         capsys)


def test_a_trial_rejects_rows_encoded_with_another_feature_spec(pipeline, tmp_path, capsys):
    """Rows and spec of different Preprocess runs would save a model whose spec describes other columns."""
    stage_training_channels(pipeline.processing, tmp_path, encoded=True)
    spec_file = tmp_path / "input" / "data" / "features" / "features.json"
    other = json.loads(spec_file.read_text())
    other["medians"]["Gr Liv Area"] += 1
    spec_file.write_text(json.dumps(other))
    assert_fails_cleanly(tmp_path, train_xgboost.main, ["--num_round", "5"], "failure",
                         "was not encoded with the features channel's feature spec; give the job the encoded rows "
                         "and the spec of one Preprocess run", capsys)


def test_training_rejects_a_missing_feature_spec(pipeline, tmp_path, capsys):
    stage_training_channels(pipeline.processing, tmp_path, encoded=True)
    (tmp_path / "input" / "data" / "features" / "features.json").unlink()
    assert_fails_cleanly(tmp_path, train_xgboost.main, ["--num_round", "5"], "failure",
                         "feature spec", capsys)


def test_evaluation_rejects_a_missing_model_archive(pipeline, tmp_path, capsys):
    inputs = tmp_path / "processing" / "input"
    stage(pipeline.evaluation_root / "processing" / "input" / "baseline", inputs / "baseline")
    stage(pipeline.processing / "processing" / "test", inputs / "test")
    assert_fails_cleanly(tmp_path, evaluate.main, validation_arguments(pipeline.baseline_log, pipeline.xgboost_log),
                         "message", "xgboost/model.tar.gz does not exist", capsys)


def test_a_champion_is_scored_on_the_same_test_rows_or_reported_as_not_comparable(pipeline, tmp_path):
    test = pipeline.split("test")
    actual = test[TARGET].to_numpy(float)
    chosen_rmse = pipeline.evaluation["regression_metrics"]["rmse"]["value"]
    champion_dir = pipeline.evaluation_root / "processing" / "input" / "baseline"  # the baseline as an old champion
    section, predictions = evaluate.champion_section(champion_dir, "v7", tmp_path, TARGET, test, actual,
                                                     chosen_rmse, 20, 0)
    baseline_rmse = pipeline.evaluation["candidates"]["baseline"]["regression_metrics"]["rmse"]["value"]
    assert (section["compared"], section["name"]) == ("yes", "v7")
    assert section["rmse"] == pytest.approx(baseline_rmse)
    worse_by = chosen_rmse / baseline_rmse - 1
    assert section["worse_by"] == pytest.approx(worse_by) and worse_by != 0
    assert section["verdict"] == (f"champion v7 test RMSE {baseline_rmse:,.0f}, the new model "
                                  f"{abs(worse_by):.1%} {'worse' if worse_by > 0 else 'better'}")
    assert np.allclose(predictions, pipeline.predictions["baseline"])

    narrower = test.drop(columns=["Gr Liv Area"])
    section, predictions = evaluate.champion_section(champion_dir, "v7", tmp_path / "again", TARGET, narrower,
                                                     actual, chosen_rmse, 20, 0)
    assert (section["compared"], section["worse_by"], predictions) == ("no", 0.0, None)
    assert section["verdict"].startswith("champion v7 cannot score these test rows (missing required column(s) "
                                         "'Gr Liv Area'")
    section, _ = evaluate.champion_section(tmp_path / "marker", "none", tmp_path, TARGET, test, actual, 1.0, 20, 0)
    assert section["verdict"] == "no approved champion"
