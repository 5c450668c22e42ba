"""The shared script modules on small frames: feature spec, metrics, container contract."""

import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPTS_DIR))

import container  # noqa: E402
import inference  # noqa: E402
from features import (  # noqa: E402
    MISSING_LEVEL, decode_target, encode_target, feature_names, fit_feature_spec, infer_feature_types,
    read_raw_csv, spec_from_json, transform_features,
)
from metrics import mae, r2, regression_metrics, rmse, validation_metric_line  # noqa: E402

TRAIN_CSV = """area,rooms,zone,flag,code,constant,price
100,3,A,True,20,7,1000
200,,B,False,60,7,2500
300,5,,True,20,7,3100
400,4,A,False,,7,4200
"""


@pytest.fixture
def train() -> pd.DataFrame:
    return read_raw_csv(io.StringIO(TRAIN_CSV))


@pytest.fixture
def spec(train) -> dict:
    # "code" is a category written as a number with gaps (read as 20.0), like Ames' MS SubClass.
    return fit_feature_spec(train, "price", ["area", "rooms"], ["zone", "flag", "code"])


def test_feature_types_follow_dtypes_without_target_and_dropped_columns(train):
    numeric, categorical = infer_feature_types(train, "price", drop=["constant"])
    assert (numeric, categorical) == (["area", "rooms", "code"], ["zone", "flag"])


def test_spec_holds_train_statistics_and_is_plain_json(train):
    spec = fit_feature_spec(train, "price", ["area", "rooms", "constant"], ["zone"])
    assert spec["medians"] == {"area": 250.0, "rooms": 4.0, "constant": 7.0}
    assert spec["means"]["rooms"] == pytest.approx(4.0)  # the gap is imputed before averaging
    assert spec["stds"]["area"] == pytest.approx(np.std([100, 200, 300, 400]))
    assert spec["stds"]["constant"] == 1.0
    assert spec["categories"]["zone"] == sorted(["A", "B", MISSING_LEVEL])
    assert spec["target_transform"] == "log1p"
    assert spec_from_json(json.dumps(spec, allow_nan=False)) == spec


def test_spec_refuses_target_among_features_and_absent_columns(train):
    with pytest.raises(ValueError, match="target column 'price' cannot also be a feature"):
        fit_feature_spec(train, "price", ["area", "price"], [])
    with pytest.raises(ValueError, match="'floor'"):
        fit_feature_spec(train, "price", ["area", "floor"], [])


def test_negative_targets_keep_identity_transform(train):
    train["price"] = train["price"] - 2000
    spec = fit_feature_spec(train, "price", ["area"], [])
    assert spec["target_transform"] == "identity"
    assert np.array_equal(encode_target(train["price"], spec), train["price"].to_numpy(dtype=float))


def test_target_round_trips_through_encoding(spec):
    prices = np.array([0.0, 1000.0, 755000.0])
    assert np.allclose(decode_target(encode_target(prices, spec), spec), prices)
    with pytest.raises(ValueError, match="log1p"):
        encode_target([-5.0], spec)


def test_transform_standardises_imputes_and_one_hot_encodes(spec, train):
    matrix = transform_features(train, spec)
    names = feature_names(spec)
    assert matrix.shape == (4, len(names))
    area = matrix[:, names.index("area")]
    assert np.isclose(area.mean(), 0) and np.isclose(area.std(), 1)
    imputed_rooms = (spec["medians"]["rooms"] - spec["means"]["rooms"]) / spec["stds"]["rooms"]
    assert matrix[1, names.index("rooms")] == pytest.approx(imputed_rooms)
    assert matrix[2, names.index(f"zone={MISSING_LEVEL}")] == 1.0
    assert matrix[3, names.index(f"code={MISSING_LEVEL}")] == 1.0
    assert "price" not in " ".join(names) and "constant" not in " ".join(names)


def test_unseen_category_encodes_as_all_zeros_and_extra_columns_are_ignored(spec, train):
    rows = train.head(1).assign(zone="Z", unrelated="x").drop(columns=["price"])
    matrix = transform_features(rows[rows.columns[::-1]], spec)
    zone_columns = [index for index, name in enumerate(feature_names(spec)) if name.startswith("zone=")]
    assert not matrix[0, zone_columns].any()
    seen = transform_features(train.head(1), spec)
    assert np.array_equal(np.delete(matrix, zone_columns, axis=1), np.delete(seen, zone_columns, axis=1))


def test_categorical_columns_encode_like_the_same_values_as_objects(spec, train):
    """Batches read for training bring text as pandas categoricals; missing and unseen levels included."""
    rows = train.assign(zone=train["zone"].where(train.index != 1, "never seen").where(train.index != 2, None),
                        code=train["code"].astype(object))
    as_categories = rows.astype({"zone": "category", "flag": "category", "code": "category"})
    assert (as_categories["zone"].cat.codes == -1).any()
    np.testing.assert_array_equal(transform_features(as_categories, spec), transform_features(rows, spec))


def test_a_spec_fitted_on_categoricals_equals_one_fitted_on_the_same_objects(train):
    """Preprocess holds text as categoricals; the levels, their ranking beyond MAX_LEVELS and the missing
    level must come out as from plain objects."""
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"street": [f"s{i}" for i in rng.zipf(1.5, 3000) % 400],
                         "zone": rng.choice(["A", "B", None], 3000), "code": rng.choice([20.0, 60.0, np.nan], 3000),
                         "price": rng.uniform(1, 9, 3000)})
    as_categories = rows.astype({"street": "category", "zone": "category", "code": "category"})
    objects = fit_feature_spec(rows, "price", [], ["street", "zone", "code"])
    assert len(objects["categories"]["street"]) == 100 and MISSING_LEVEL in objects["categories"]["zone"]
    assert fit_feature_spec(as_categories, "price", [], ["street", "zone", "code"]) == objects


def test_transform_names_every_missing_column_and_non_numeric_value(spec, train):
    with pytest.raises(ValueError, match="'area', 'zone'"):
        transform_features(train.drop(columns=["area", "zone"]), spec)
    with pytest.raises(ValueError, match="column 'rooms' must be numeric but holds 'three'"):
        transform_features(train.astype({"rooms": object}).assign(rooms="three"), spec)


def test_json_requests_encode_like_the_same_rows_in_csv(spec):
    csv_body = "area,rooms,zone,flag,code\n150,NA,B,True,20\n,4,None,False,60\n"
    records = [
        {"area": 150, "rooms": "NA", "zone": "B", "flag": True, "code": 20},
        {"area": None, "rooms": "4", "zone": None, "flag": False, "code": 60.0},
    ]
    from_csv = transform_features(inference.read_rows(csv_body, "text/csv"), spec)
    from_json = transform_features(inference.read_rows(json.dumps(records), "application/json"), spec)
    assert np.array_equal(from_csv, from_json)
    assert from_json[:, feature_names(spec).index("code=20")].tolist() == [1.0, 0.0]


def test_a_file_with_spaces_after_its_delimiters_serves_its_own_rows(tmp_path):
    """Preprocess skips the spaces after each comma and reads TRUE/FALSE as booleans; a request in the file's
    own format, or as JSON, must land every row in the level its training rows did."""
    from tabular_input import read_tables

    rng = np.random.default_rng(0)
    cities, flags = rng.choice(["Ames", "Story City"], 4_000), rng.choice(["TRUE", "FALSE"], 4_000)
    lines = ["price, city, flag, area"] + [f"{100 + i % 7}, {city}, {flag}, {i % 50}"
                                          for i, (city, flag) in enumerate(zip(cities, flags))]
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    train = read_tables(tmp_path).frame
    assert train["flag"].dtype == bool
    spec = fit_feature_spec(train, "price", ["area"], ["city", "flag"])
    assert spec["categories"] == {"city": ["Ames", "Story City"], "flag": ["False", "True"]}
    expected = transform_features(train, spec)
    body = "\n".join(lines) + "\n"
    assert len(body) > inference.SMALL_BODY_BYTES  # pandas reads it; the csv module reads the small one
    assert np.array_equal(transform_features(inference.read_rows(body, "text/csv"), spec), expected)
    small = "\n".join(lines[:30]) + "\n"
    assert np.array_equal(transform_features(inference.read_rows(small, "text/csv"), spec), expected[:29])
    records = [{"city": f" {city} ", "flag": flag == "TRUE", "area": i % 50} for i, (city, flag) in
               enumerate(zip(cities[:29], flags[:29]))]
    assert np.array_equal(transform_features(inference.read_rows(json.dumps(records), "application/json"), spec),
                          expected[:29])
    # Every row in a level seen in training: one 1 among each feature's level columns.
    assert (expected[:, 1:].sum(axis=1) == 2).all()


def test_a_spec_saved_with_padded_levels_still_finds_its_rows():
    """Models registered before levels lost their surrounding spaces (Ames' 'WD ') and booleans their case keep
    scoring their rows as they were trained: an approved champion is compared on the same footing."""
    old = {"version": 1, "target": "price", "target_transform": "identity", "numeric": [], "medians": {},
           "means": {}, "stds": {}, "categorical": ["sale", "new"],
           "categories": {"sale": ["COD", "WD "], "new": ["FALSE", "TRUE"]}}
    rows = pd.DataFrame({"sale": ["WD ", "COD", "WD", None], "new": [True, "FALSE", " TRUE", "false"]})
    assert transform_features(rows, spec_from_json(json.dumps(old))).tolist() == [
        [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]]


def test_trees_given_absent_levels_as_missing_are_the_trees_given_zeros():
    """XGBoost skips missing cells, so a one-hot column of 1s and missing splits exactly where 1s and 0s do: the
    same model for a third of the histogram work. Serving follows the spec the model saved."""
    import xgboost
    import train_xgboost
    from features import with_absent_levels

    ames = pd.read_csv(SCRIPTS_DIR.parent / "data" / "ames_housing.csv", keep_default_na=False, na_values=[""])
    rows = ames.drop(columns=["Order", "PID"]).head(1_000)
    numeric, categorical = infer_feature_types(rows, "SalePrice", drop=[])
    zeros = fit_feature_spec(rows, "SalePrice", numeric, categorical)
    missing = with_absent_levels(zeros, "missing")
    matrix = transform_features(rows, missing)
    one_hot = matrix[:, len(numeric):]
    assert np.isnan(one_hot).any() and set(np.unique(one_hot[~np.isnan(one_hot)])) == {1.0}
    parameters = train_xgboost.booster_parameters(train_xgboost.parse_arguments(["--nthread", "1"]))
    labels = encode_target(rows["SalePrice"], zeros)
    predictions = []
    for spec in (zeros, missing):
        booster = xgboost.train(parameters, xgboost.QuantileDMatrix(transform_features(rows, spec, np.float32),
                                                                    label=labels), 60)
        predictions.append(booster.inplace_predict(transform_features(rows, spec, np.float32)))
    assert np.array_equal(predictions[0], predictions[1])
    assert spec_from_json(json.dumps(missing, allow_nan=False))["absent_levels"] == "missing"
    with pytest.raises(ValueError, match="absent_levels 'blank'"):
        spec_from_json(json.dumps({**zeros, "absent_levels": "blank"}))


def test_metrics_agree_with_scikit_learn():
    actual, predicted = np.array([100.0, 250.0, 330.0, 80.0]), np.array([110.0, 240.0, 300.0, 95.0])
    assert rmse(actual, predicted) == pytest.approx(np.sqrt(mean_squared_error(actual, predicted)))
    assert mae(actual, predicted) == pytest.approx(mean_absolute_error(actual, predicted))
    assert r2(actual, predicted) == pytest.approx(r2_score(actual, predicted))
    assert r2([5.0, 5.0], [5.0, 5.0]) == 1.0 and r2([5.0, 5.0], [4.0, 6.0]) == 0.0


def test_bootstrap_standard_deviation_is_seeded():
    rng = np.random.default_rng(1)
    actual = rng.normal(200_000, 50_000, 300)
    predicted = actual + rng.normal(0, 20_000, 300)
    first = regression_metrics(actual, predicted, resamples=200, seed=3)
    assert first == regression_metrics(actual, predicted, resamples=200, seed=3)
    assert first != regression_metrics(actual, predicted, resamples=200, seed=4)
    # The bootstrap spread of RMSE on 300 rows is a few percent of it, not zero and not all of it.
    assert 0.01 < first["rmse"]["standard_deviation"] / first["rmse"]["value"] < 0.2
    # The draws are numpy's default_rng(seed) resamples, whether drawn one at a time or all at once.
    draws = np.random.default_rng(3).integers(0, 300, size=(200, 300))
    assert first["mae"]["standard_deviation"] == pytest.approx(
        np.std([np.mean(np.abs(actual[rows] - predicted[rows])) for rows in draws], ddof=1), rel=1e-12)


def test_validation_metric_line_never_uses_exponent_notation():
    assert validation_metric_line(1.5e-7) == "validation-rmse: 0.000000"
    assert validation_metric_line(123456789.25) == "validation-rmse: 123456789.250000"


def test_default_paths_follow_sm_opt_ml_and_toolkit_variables_win(monkeypatch, tmp_path):
    monkeypatch.setenv("SM_OPT_ML", str(tmp_path))
    monkeypatch.delenv("SM_MODEL_DIR", raising=False)
    monkeypatch.setenv("SM_CHANNEL_TRAIN", "/data/train")
    monkeypatch.delenv("SM_CHANNEL_VALIDATION", raising=False)
    assert container.model_dir() == tmp_path / "model"
    assert container.channel_dir("validation") == tmp_path / "input" / "data" / "validation"
    assert container.channel_dir("train") == Path("/data/train")


@pytest.mark.parametrize("kind, file_name", [("processing", "message"), ("training", "failure")])
def test_report_failure_writes_one_line_where_sagemaker_reads_it(monkeypatch, tmp_path, capsys, kind,
                                                                  file_name):
    monkeypatch.setenv("SM_OPT_ML", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        container.report_failure("bad input:\n  fix it", kind)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "bad input: fix it\n"
    assert (tmp_path / "output" / file_name).read_text() == "bad input: fix it\n"


def test_atomic_writes_leave_only_the_finished_file(tmp_path):
    container.write_json_atomic(tmp_path / "out" / "report.json", {"value": 1.5})
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["report.json"]
    with pytest.raises(TypeError):
        container.write_bytes_atomic(tmp_path / "out" / "report.json", "text, not bytes: fails mid-write")
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["report.json"]
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == {"value": 1.5}


def test_integer_hyperparameters_accept_integral_floats_from_tuners():
    assert container.whole_number("6") == 6 and container.whole_number("6.0") == 6
    with pytest.raises(Exception, match="not a whole number"):
        container.whole_number("6.5")
    with pytest.raises(Exception, match="at least 1"):
        container.positive_whole_number("0")


def test_linear_predictions_stay_within_the_training_target_range(train, spec):
    from linear_model import linear_model_json, predict_linear

    encoded = encode_target(train["price"].to_numpy(), spec)
    coefficients = np.zeros(len(feature_names(spec)))
    coefficients[feature_names(spec).index("area")] = 0.05  # extrapolates far only for absurd areas
    model = linear_model_json(coefficients, float(encoded.mean()), spec, encoded)
    far_outside = train.assign(area=[-1e6, 1e6, 300, 400])
    predictions = predict_linear(model, spec, far_outside)
    assert predictions[0] == pytest.approx(train["price"].min())
    assert predictions[1] == pytest.approx(train["price"].max())
    assert train["price"].min() < predictions[2] < train["price"].max()
