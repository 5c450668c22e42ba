"""Preprocess on realistic malformed inputs, each as its own process: the exact outcome of every one.

A refused input ends with exit code 1, one line as the last line on stderr that names the input (the
S3 URI the user gave) and the fix, and no output files. An accepted one writes the splits and a data
report that says what was repaired or found.
"""

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = REPO / "scripts"
AMES = REPO / "data" / "ames_housing.csv"
INPUT_URI = "s3://team-bucket/incoming/sales.csv"
PREFIX_URI = "s3://team-bucket/incoming/"
COLUMNS = ["Order", "PID", "Lot Area", "Gr Liv Area", "Overall Qual", "Neighborhood", "Year Built", "SalePrice"]


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return pd.read_csv(AMES, usecols=COLUMNS, keep_default_na=False).head(300)[COLUMNS]


def as_csv(frame: pd.DataFrame, **options) -> str:
    return frame.to_csv(index=False, **options)


def run_preprocess(tmp_path: Path, files: dict[str, bytes], input_uri: str, argv=()):
    input_dir, output_dir = tmp_path / "input", tmp_path / "output"
    input_dir.mkdir()
    for name, content in files.items():
        (input_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (input_dir / name).write_bytes(content)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SM_")}
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / "preprocess.py"), "--target-column", "SalePrice",
         "--input-dir", str(input_dir), "--output-dir", str(output_dir), "--input-uri", input_uri, *argv],
        env={**environment, "SM_OPT_ML": str(tmp_path / "opt_ml")}, capture_output=True, text=True, timeout=120,
    )
    return completed, output_dir


# Each case: files (name -> bytes) from the sample, extra arguments, and the expected outcome:
# ("refused", text of the last stderr line) or ("accepted", check of the data report).
def case_utf8_bom(s):
    return {"sales.csv": b"\xef\xbb\xbf" + as_csv(s).encode()}, INPUT_URI, []


def case_latin1(s):
    s = s.assign(Neighborhood=s["Neighborhood"].where(s.index % 3 > 0, "Café Row"))
    return {"sales.csv": as_csv(s).encode("latin-1")}, INPUT_URI, []


def case_gzip_named_csv(s):
    return {"sales.csv": gzip.compress(as_csv(s).encode(), mtime=0)}, INPUT_URI, []


def case_gzip_suffix(s):
    return {"sales.csv.gz": gzip.compress(as_csv(s).encode(), mtime=0)}, INPUT_URI + ".gz", []


def case_semicolons(s):
    return {"sales.csv": as_csv(s, sep=";").encode()}, INPUT_URI, []


def case_decimal_commas(s):
    s = s.assign(**{"Lot Area": s["Lot Area"] / 10.5, "SalePrice": s["SalePrice"] / 1000})
    return {"sales.csv": as_csv(s, sep=";", decimal=",").encode()}, INPUT_URI, []


def case_tabs(s):
    return {"sales.tsv": as_csv(s, sep="\t").encode()}, "s3://team-bucket/incoming/sales.tsv", []


def case_upper_case_suffix(s):
    return {"SALES.CSV": as_csv(s).encode()}, "s3://team-bucket/incoming/SALES.CSV", []


def case_folder_of_files(s):
    return {"2026-01.csv": as_csv(s.iloc[:150]).encode(), "2026-02/part.CSV": as_csv(s.iloc[150:]).encode(),
            "README.md": b"monthly exports"}, PREFIX_URI, []


def case_neighbours_of_the_named_object(s):
    # S3 prefixes are plain string prefixes: the key incoming/sales.csv brings these along too.
    # Each object lands at its key with the input key taken off, as SageMaker downloads a prefix.
    return {"sales.csv": as_csv(s).encode(), ".old.csv": as_csv(s.iloc[:50]).encode(),
            "-v2/part.csv": as_csv(s.iloc[:70]).encode()}, INPUT_URI, []


def case_prefix_without_slash(s):
    return {"-2026/jan.csv": as_csv(s.iloc[:100]).encode(), "-2026/feb.csv": as_csv(s.iloc[100:]).encode(),
            "-2026/notes.md": b"two months"}, "s3://team-bucket/incoming/sales", []


def case_mixed_headers(s):
    return {"a.csv": as_csv(s.iloc[:150]).encode(),
            "b.csv": as_csv(s.iloc[150:].drop(columns=["Year Built"])).encode()}, PREFIX_URI, []


def case_ragged_row(s):
    lines = as_csv(s).splitlines()
    lines[17] += ",surplus"
    return {"sales.csv": "\n".join(lines).encode()}, INPUT_URI, []


def case_duplicate_header(s):
    return {"sales.csv": as_csv(s).replace("Year Built", "Lot Area", 1).encode()}, INPUT_URI, []


def case_blank_header(s):
    return {"sales.csv": s.to_csv(index=True).encode()}, INPUT_URI, []


def case_stray_spaces(s):
    renamed = s.rename(columns={"Order": " Order ", "SalePrice": "SalePrice  "})
    return {"sales.csv": as_csv(renamed).encode()}, INPUT_URI, ["--id-columns", "Order ,PID"]


def case_missing_target_column(s):
    return {"sales.csv": as_csv(s.rename(columns={"SalePrice": "Sale Price"})).encode()}, INPUT_URI, []


def case_text_target(s):
    return {"sales.csv": as_csv(s.assign(SalePrice=s["Neighborhood"])).encode()}, INPUT_URI, []


def case_constant_target(s):
    return {"sales.csv": as_csv(s.assign(SalePrice=250000)).encode()}, INPUT_URI, []


def case_empty_target(s):
    return {"sales.csv": as_csv(s.assign(SalePrice="")).encode()}, INPUT_URI, []


def case_some_targets_missing(s):
    return {"sales.csv": as_csv(s.assign(SalePrice=s["SalePrice"].where(s.index % 10 > 0, ""))).encode()}, \
        INPUT_URI, []


def case_infinite_targets(s):
    target = s["SalePrice"].astype(object)
    target.iloc[[3, 40]] = ["inf", "-inf"]
    return {"sales.csv": as_csv(s.assign(SalePrice=target)).encode()}, INPUT_URI, []


def case_infinite_feature(s):
    area = s["Lot Area"].astype(object)
    area.iloc[[5, 6, 7]] = "inf"
    return {"sales.csv": as_csv(s.assign(**{"Lot Area": area})).encode()}, INPUT_URI, []


def case_empty_file(s):
    return {"sales.csv": b""}, INPUT_URI, []


def case_header_only(s):
    return {"sales.csv": as_csv(s.head(0)).encode()}, INPUT_URI, []


def case_absurd_targets(s):
    target = s["SalePrice"].astype(float)
    target.iloc[[10, 200]] = 1e12
    return {"sales.csv": as_csv(s.assign(SalePrice=target)).encode()}, INPUT_URI, []


def case_free_text_column(s):
    notes = [f"viewed on day {i}, {'quiet' if i % 2 else 'busy'} street, agent {i % 37}" for i in range(len(s))]
    notes[0] = notes[1]  # not one-per-row: free text, not an id
    return {"sales.csv": as_csv(s.assign(Remarks=notes)).encode()}, INPUT_URI, []


def case_thousands_of_columns(s):
    noise = pd.DataFrame(np.random.default_rng(0).normal(size=(len(s), 2000)).round(3),
                         columns=[f"sensor_{i}" for i in range(2000)])
    return {"sales.csv": as_csv(pd.concat([s, noise], axis=1)).encode()}, INPUT_URI, []


def case_quoted_newlines(s):
    remarks = ["first line\nsecond line, with a comma" if i % 4 == 0 else "plain" for i in range(len(s))]
    return {"sales.csv": s.assign(Remarks=remarks).to_csv(index=False, quoting=csv.QUOTE_MINIMAL).encode()}, \
        INPUT_URI, []


def case_currency_target(s):
    return {"sales.csv": as_csv(s.assign(SalePrice=s["SalePrice"].map(lambda v: f"${v:,}"))).encode()}, \
        INPUT_URI, []


def case_copy_of_target(s):
    rng = np.random.default_rng(1)
    list_price = (s["SalePrice"] * rng.uniform(1.0, 1.03, len(s))).round(-2)
    return {"sales.csv": as_csv(s.assign(ListPrice=list_price)).encode()}, INPUT_URI, []


def case_ratio_of_target(s):
    per_square_foot = (s["SalePrice"] / s["Gr Liv Area"]).round(2)
    return {"sales.csv": as_csv(s.assign(PricePerSqFt=per_square_foot)).encode()}, INPUT_URI, []


def case_unknown_id_column(s):
    return {"sales.csv": as_csv(s).encode()}, INPUT_URI, ["--id-columns", "Order,Parcel"]


def case_too_few_rows(s):
    return {"sales.csv": as_csv(s.head(15)).encode()}, INPUT_URI, []


def case_no_csv_under_prefix(s):
    return {"README.md": b"exports go here", "schema.json": b"{}"}, PREFIX_URI, []


def case_corrupt_gzip(s):
    return {"sales.csv.gz": gzip.compress(as_csv(s).encode())[:200]}, INPUT_URI + ".gz", []


def case_single_column(s):
    return {"sales.csv": as_csv(s[["SalePrice"]]).encode()}, INPUT_URI, []


def case_target_excluded(s):
    return {"sales.csv": as_csv(s).encode()}, INPUT_URI, ["--exclude-columns", "SalePrice"]


def case_no_features_left(s):
    return {"sales.csv": as_csv(s[["Order", "PID", "SalePrice"]]).encode()}, INPUT_URI, []


NEIGHBOUR = ("its key only begins with the input key, which names the object sales.csv; to read several files, "
             "end InputDataKey with /")


def refused(text):
    return ("refused", text)


def accepted(check):
    return ("accepted", check)


CASES = {
    "utf8_bom": (case_utf8_bom, accepted(lambda r: r["files"][0]["encoding"] == "utf-8"
                                         and r["columns"]["left_out"].keys() == {"Order", "PID"})),
    "latin1": (case_latin1, accepted(lambda r: r["files"][0]["encoding"] == "cp1252"
                                     and any("not UTF-8" in note for note in r["notes"]))),
    "gzip_named_csv": (case_gzip_named_csv, accepted(lambda r: r["files"][0]["gzip"] and r["rows"]["used"] == 300)),
    "gzip_suffix": (case_gzip_suffix, accepted(lambda r: r["files"][0]["gzip"])),
    "semicolons": (case_semicolons, accepted(lambda r: r["files"][0]["delimiter"] == "semicolon"
                                             and len(r["columns"]["numeric"]) == 4)),
    "decimal_commas": (case_decimal_commas, accepted(
        lambda r: r["files"][0]["decimal"] == "," and "Lot Area" in r["columns"]["numeric"]
        and abs(r["target"]["median"] - pd.read_csv(AMES)["SalePrice"].head(300).median() / 1000) < 1e-9)),
    "tabs": (case_tabs, accepted(lambda r: r["files"][0]["delimiter"] == "tab")),
    "upper_case_suffix": (case_upper_case_suffix, accepted(lambda r: r["rows"]["read"] == 300)),
    "folder_of_files": (case_folder_of_files, accepted(
        lambda r: [f["name"] for f in r["files"]] == [PREFIX_URI + "2026-01.csv", PREFIX_URI + "2026-02/part.CSV"]
        and r["rows"]["read"] == 300)),
    "neighbours_of_the_named_object": (case_neighbours_of_the_named_object, accepted(
        lambda r: [f["name"] for f in r["files"]] == [INPUT_URI] and r["rows"]["read"] == 300
        and r["files_left_out"] == [{"name": f"{INPUT_URI}-v2/part.csv", "reason": NEIGHBOUR},
                                    {"name": f"{INPUT_URI}.old.csv", "reason": NEIGHBOUR}]
        and f"left out {INPUT_URI}.old.csv: {NEIGHBOUR}" in r["notes"])),
    "prefix_without_slash": (case_prefix_without_slash, accepted(
        lambda r: [f["name"] for f in r["files"]] == [PREFIX_URI + "sales-2026/feb.csv", PREFIX_URI + "sales-2026/jan.csv"]
        and r["notes"][:2] == [f"read {PREFIX_URI}sales-2026/feb.csv (200 rows)",
                               f"read {PREFIX_URI}sales-2026/jan.csv (100 rows)"]
        and r["files_left_out"][0]["name"] == PREFIX_URI + "sales-2026/notes.md")),
    "mixed_headers": (case_mixed_headers, refused(
        f"{PREFIX_URI}b.csv has other columns than {PREFIX_URI}a.csv (differing: 'Year Built'); give every file")),
    "ragged_row": (case_ragged_row, refused(
        f"{INPUT_URI}: line 18 has 9 fields but the header has 8; quote values that contain a comma")),
    "duplicate_header": (case_duplicate_header, refused(
        f"{INPUT_URI}: the header names 'Lot Area' twice (columns 3 and 7); give every column a unique name")),
    "blank_header": (case_blank_header, accepted(
        lambda r: "unnamed_1" in r["columns"]["left_out"] and any("no header name" in n for n in r["notes"]))),
    "stray_spaces": (case_stray_spaces, accepted(
        lambda r: r["target"]["column"] == "SalePrice" and r["columns"]["left_out"] == {
            "Order": "named in IdColumns", "PID": "named in IdColumns"})),
    "missing_target_column": (case_missing_target_column, refused(
        f"TargetColumn 'SalePrice' is not a column of {INPUT_URI} (closest: 'Sale Price'); set TargetColumn")),
    "text_target": (case_text_target, refused(
        f"TargetColumn 'SalePrice' must hold numbers, but 300 of 300 values in {INPUT_URI} are text")),
    "constant_target": (case_constant_target, refused(
        f"TargetColumn 'SalePrice' has the same value (250,000) in every row of {INPUT_URI}")),
    "empty_target": (case_empty_target, refused(f"TargetColumn 'SalePrice' is empty in every row of {INPUT_URI}")),
    "some_targets_missing": (case_some_targets_missing, accepted(
        lambda r: r["rows"] == {"read": 300, "used": 270, "dropped": {"target missing": 30}})),
    "infinite_targets": (case_infinite_targets, accepted(
        lambda r: r["rows"]["dropped"] == {"target infinite": 2})),
    "infinite_feature": (case_infinite_feature, accepted(
        lambda r: "treated 3 infinite value(s) in 'Lot Area' as missing" in r["notes"]
        and "Lot Area" in r["columns"]["numeric"])),
    "empty_file": (case_empty_file, refused(f"{INPUT_URI} is empty; upload a CSV file")),
    "header_only": (case_header_only, refused(f"{INPUT_URI} has a header but no data rows")),
    "absurd_targets": (case_absurd_targets, accepted(
        lambda r: r["rows"]["dropped"] == {"target far outside the rest": 2}
        and any("far outside the rest (1,000,000,000,000" in w for w in r["warnings"]))),
    "free_text_column": (case_free_text_column, accepted(
        lambda r: r["columns"]["left_out"]["Remarks"].startswith("too many distinct text values"))),
    "thousands_of_columns": (case_thousands_of_columns, accepted(lambda r: len(r["columns"]["numeric"]) == 2004)),
    "quoted_newlines": (case_quoted_newlines, accepted(
        lambda r: r["rows"]["read"] == 300 and "Remarks" in r["columns"]["categorical"])),
    "currency_target": (case_currency_target, accepted(
        lambda r: r["target"]["median"] == float(pd.read_csv(AMES)["SalePrice"].head(300).median()))),
    "copy_of_target": (case_copy_of_target, accepted(
        lambda r: [leak["columns"] for leak in r["leakage"]] == [["ListPrice"]]
        and any("'ListPrice' alone predicts SalePrice" in w for w in r["warnings"]))),
    "ratio_of_target": (case_ratio_of_target, accepted(
        lambda r: [sorted(leak["columns"]) for leak in r["leakage"]] == [["Gr Liv Area", "PricePerSqFt"]])),
    "unknown_id_column": (case_unknown_id_column, refused(
        f"IdColumns 'Parcel' is not a column of {INPUT_URI}; set IdColumns to a name from the header")),
    "too_few_rows": (case_too_few_rows, refused("too few rows: 15 row(s) with a usable target")),
    "no_csv_under_prefix": (case_no_csv_under_prefix, refused(
        f"no CSV file at {PREFIX_URI} (found only README.md, schema.json); set InputDataKey")),
    "corrupt_gzip": (case_corrupt_gzip, refused(f"{INPUT_URI}.gz is gzip-compressed but cannot be decompressed")),
    "single_column": (case_single_column, refused(f"{INPUT_URI} has a single column ('SalePrice' at most)")),
    "target_excluded": (case_target_excluded, refused("ExcludeColumns includes the target 'SalePrice'")),
    "no_features_left": (case_no_features_left, refused(
        f"no feature columns are left in {INPUT_URI} besides TargetColumn 'SalePrice' (Order: id-like")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input(name, sample, tmp_path):
    build, (outcome, expected) = CASES[name]
    files, input_uri, argv = build(sample.copy())
    completed, output_dir = run_preprocess(tmp_path, files, input_uri, argv)
    if outcome == "refused":
        assert completed.returncode == 1, completed.stdout
        last_line = completed.stderr.strip().splitlines()[-1]
        assert expected in last_line, last_line
        assert "\n" not in last_line and str(tmp_path) not in last_line, "the user's names, not the sandbox's"
        assert not output_dir.exists() or not any(p.is_file() for p in output_dir.rglob("*"))
        assert (tmp_path / "opt_ml" / "output" / "message").read_text().strip() == last_line
    else:
        assert completed.returncode == 0, completed.stderr
        report = json.loads((output_dir / "report" / "data-report.json").read_text())
        assert expected(report), json.dumps(report, indent=1)[:3000]
        for split in ("train", "validation", "test"):
            assert len(pd.read_parquet(output_dir / split / f"{split}.parquet")) == report["splits"][split]
        assert sum(report["splits"].values()) == report["rows"]["used"]


def test_the_table_covers_at_least_25_inputs():
    assert len(CASES) >= 25


# Cells that pandas and Arrow's inference could read differently, and types that change only past
# Arrow's first block: a word at the end of a column of numbers, a number at the end of an empty column.
EDGE_TABLE = (
    "when,count,flag,name,blank,amount,stamp,rooms,later,padded\n"
    "2020-01-01, 12,True, Ames,,\"1.5\",2020-01-01T10:00,3,, TRUE\n"
    "2020-02-03, NA,false,Boone,, 2,2021-01-01 11:00,4,,FALSE\n"
    + "".join(f"2021-03-04,{i},TRUE, Story City ,,{i}.25,,{i % 9},, FALSE\n" for i in range(120_000))
    + "2021-03-05,many,FALSE,Ames,,3,,several,7,NA\n"
)


def pandas_reading(source, names: list[str]) -> pd.DataFrame:
    """The table as pandas reads it with the rules tabular_input documents."""
    from features import MISSING_VALUE_MARKERS
    return pd.read_csv(source.path, header=0, names=names, sep=source.delimiter, decimal=source.decimal,
                       encoding="utf-8-sig" if source.encoding == "utf-8" else source.encoding,
                       compression="gzip" if source.compressed else None, keep_default_na=False,
                       na_values=list(MISSING_VALUE_MARKERS), skipinitialspace=True, low_memory=False)


def assert_same_values(fast: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(fast.columns) == list(expected.columns)
    for name in expected.columns:
        ours, theirs = fast[name], expected[name]
        if pd.api.types.is_float_dtype(theirs) and pd.api.types.is_float_dtype(ours):
            # Arrow rounds every decimal correctly; pandas' fast parser may be an ulp off.
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, equal_nan=True, err_msg=name)
            continue
        assert ours.dtype == theirs.dtype or isinstance(ours.dtype, pd.CategoricalDtype), name
        ours, theirs = ours.astype(object), theirs.astype(object)
        assert ours.where(ours.notna(), None).tolist() == theirs.where(theirs.notna(), None).tolist(), name


@pytest.mark.parametrize("reader", ["whole file", "block by block"])
def test_a_row_longer_than_a_block_is_still_read_by_arrow(reader, tmp_path, monkeypatch):
    """Arrow refuses a row longer than its block; the file is read again in blocks as large as the typing one,
    not handed to pandas (which holds several times the file)."""
    sys.path.insert(0, str(SCRIPTS_DIR))
    import tabular_input
    from tabular_input import data_files, read_file

    monkeypatch.setattr(tabular_input, "_BLOCK_BYTES", 1 << 12)
    monkeypatch.setattr(tabular_input, "_TYPING_BYTES", 1 << 16)
    monkeypatch.setattr(tabular_input, "_WHOLE_FILE_BYTES", 1 << 30 if reader == "whole file" else 0)

    def pandas_would_read(*_):
        raise AssertionError("read by pandas")

    monkeypatch.setattr(tabular_input, "_parse_with_pandas", pandas_would_read)
    notes = "word " * 3000  # 15 kB, several blocks long
    rows = [f"{i},{i * 2.5},short" for i in range(2000)] + [f"2000,1.5,{notes}"] + ["2001,3.5,short"]
    (tmp_path / "long.csv").write_text("id,price,notes\n" + "\n".join(rows) + "\n")
    frame = read_file(data_files(tmp_path, "")[0][0], [])
    assert len(frame) == 2002 and frame["notes"].iloc[2000] == notes and frame["price"].iloc[-1] == 3.5


@pytest.mark.parametrize("reader", ["whole file", "block by block"])
def test_the_fast_reader_reads_every_accepted_input_as_pandas_does(reader, sample, tmp_path, monkeypatch):
    sys.path.insert(0, str(SCRIPTS_DIR))
    import tabular_input
    from tabular_input import data_files, read_file

    for size in ("_BLOCK_BYTES", "_TYPING_BYTES"):  # blocks the tables span, as large files do
        monkeypatch.setattr(tabular_input, size, 1 << 16)
    if reader == "block by block":  # as a file above _WHOLE_FILE_BYTES is read
        monkeypatch.setattr(tabular_input, "_WHOLE_FILE_BYTES", 0)

    tables = {name: build(sample.copy())[0] for name, (build, (outcome, _)) in CASES.items() if outcome == "accepted"}
    tables["edge_cases"] = {"edge.csv": EDGE_TABLE.encode()}
    compared = 0
    for name, files in tables.items():
        for file_name, content in files.items():
            (tmp_path / name / file_name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / file_name).write_bytes(content)
        for source in data_files(tmp_path / name, "")[0]:
            frame = read_file(source, [])
            assert_same_values(frame, pandas_reading(source, list(frame.columns)))
            compared += 1
    assert compared >= 25
    edge = read_file(data_files(tmp_path / "edge_cases", "")[0][0], [])
    # Text stays text (dates too), in categories; the word past the first block makes its column text.
    assert isinstance(edge["count"].dtype, pd.CategoricalDtype) and edge["count"].iloc[-1] == "many"
    assert isinstance(edge["when"].dtype, pd.CategoricalDtype) and edge["amount"].dtype == float
    assert edge["name"].iloc[0] == "Ames" and edge["blank"].isna().all()
    assert isinstance(edge["rooms"].dtype, pd.CategoricalDtype) and edge["rooms"].iloc[-1] == "several"
    assert edge["later"].dtype == float and edge["later"].iloc[-1] == 7
    # Booleans padded with spaces (as R writes them) are booleans; a missing one stays missing.
    assert edge["padded"].iloc[:2].tolist() == [True, False] and pd.isna(edge["padded"].iloc[-1])
