"""Processing job (scikit-learn image): read the user's table, check it, split it, fit the feature spec on train.

Reads every delimited file under the input directory (see tabular_input.py), keeps rows with a
usable target, decides which columns are features (data_checks.py), splits the rows by a seeded hash
of each row's identity and writes the raw cleaned rows of each split, the feature spec fitted on the training
split only, the train and validation rows encoded by it for the tuning trials (encoded_rows.py), and a data report
saying what was done to the data and what looks wrong.

On several processing instances (ProcessingInstanceCount), each reads and splits its own share of the files,
and the leader decides for all on the rows it gathers from them (``prepare_across_hosts``).
"""

import argparse
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
# How hash_pandas_object combines a frame's column hashes; public pandas offers no column-wise form.
from pandas.core.util.hashing import combine_hash_arrays

from container import (
    ContractArgumentParser, atomic_file, failure_reporting, frame_of_bytes, opt_ml_root, positive_whole_number,
    table_bytes, write_json_atomic, write_table_atomic,
)
from data_checks import (
    DATA_REPORT_FILE, ColumnFacts, TargetRows, TargetScale, evenly_spaced, format_number, leave_out_reasons,
    repair_numbers, resolve_column, resolve_columns, suspected_leaks, target_summary,
)
from encoded_rows import ENCODED_OUTPUTS, write_encoded
from features import (
    FEATURE_SPEC_FILE, fit_feature_spec, infer_feature_types, is_number_column, numeric_values, plain_number_text,
)
from processing_hosts import Exchange, ProcessingHosts
from tabular_input import (
    InputFile, TableRead, check_header, data_files, joined_frames, read_listed, read_tables, require_data_files,
)

SPLITS = ("train", "validation", "test")
MINIMUM_ROWS_PER_SPLIT = 5
FEW_TEST_ROWS = 100


def identity_hashes(column: pd.Series, key: str) -> np.ndarray:
    """The keyed hash of each value of an identity column as canonical text: a number is written the same
    whether its column was read as integers or floats (20 and 20.0 alike), a missing value as nothing.
    Each distinct value is written and hashed once: columns repeat their values."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, distinct = column.cat.codes.to_numpy(), column.cat.categories
    elif is_number_column(column):
        codes, distinct = pd.factorize(column.astype(float), use_na_sentinel=True)
    elif pd.api.types.infer_dtype(column, skipna=True) == "string":
        codes, distinct = pd.factorize(column, use_na_sentinel=True)
    else:  # factorizing would merge True and 1
        canonical = column.astype(str).where(column.notna(), "").to_numpy(dtype=object)
        return pd.util.hash_array(canonical, hash_key=key)
    canonical = np.array(_texts(distinct) + [""], dtype=object)  # code -1 (missing): ""
    return pd.util.hash_array(canonical, hash_key=key, categorize=False)[codes]


def _texts(distinct) -> list[str]:
    """str() of each distinct value; a float first rounded to 15 significant digits, so that a parser's
    last-digit rounding (pandas' and Arrow's differ there) cannot move a row. Whole floats (identifiers run
    to millions) are formatted as integers: three times faster, and the same text below 10^15 (but -0.0)."""
    distinct = np.asarray(distinct)
    if distinct.dtype == float:
        whole = (np.mod(distinct, 1) == 0) & (np.abs(distinct) < 1e15) & ~((distinct == 0) & np.signbit(distinct))
        if whole.all():
            return [f"{value}.0" for value in distinct.astype(np.int64).tolist()]
        return [str(float(f"{value:.15g}")) for value in distinct.tolist()]
    return [str(value) for value in distinct]


def split_fractions(frame: pd.DataFrame, identity_columns: list[str], seed: int) -> np.ndarray:
    """Where each row falls in [0, 1): a seeded hash of its identity, so the same row always falls in the
    same place, whatever else the table holds and in whatever order.

    The hash is pandas' ``hash_pandas_object`` of the identity columns as canonical text, column by
    column, so no canonical copy of the table is ever held."""
    key = hashlib.blake2b(f"split-seed-{seed}".encode(), digest_size=8).hexdigest()  # the 16 characters it takes
    hashes = combine_hash_arrays((identity_hashes(frame[name], key) for name in identity_columns),
                                 len(identity_columns))
    return hashes / float(2 ** 64)


def split_by_identity(frame: pd.DataFrame, identity_columns: list[str], validation_fraction: float,
                      test_fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """Disjoint splits by each row's hashed identity (test below test_fraction, validation next, train
    the rest): a row keeps its split when the table grows, and rows alike fall together. Each split
    keeps the input's row order. Row by row, so a table's shards split as the table does."""
    fractions = split_fractions(frame, identity_columns, seed)
    chosen = {"train": fractions >= test_fraction + validation_fraction,
              "validation": (fractions >= test_fraction) & (fractions < test_fraction + validation_fraction),
              "test": fractions < test_fraction}
    return {name: frame[rows].reset_index(drop=True) for name, rows in chosen.items()}


def check_split_sizes(sizes: dict[str, int], where: str) -> None:
    if min(sizes.values()) < MINIMUM_ROWS_PER_SPLIT:
        raise ValueError(
            f"too few rows: {sum(sizes.values()):,} row(s) with a usable target in {where} give split sizes "
            f"{', '.join(f'{name} {size}' for name, size in sizes.items())}, and every split needs at "
            f"least {MINIMUM_ROWS_PER_SPLIT}; supply more rows")


def split_rows(frame: pd.DataFrame, identity_columns: list[str], validation_fraction: float,
               test_fraction: float, seed: int, where: str) -> dict[str, pd.DataFrame]:
    splits = split_by_identity(frame, identity_columns, validation_fraction, test_fraction, seed)
    check_split_sizes({name: len(split) for name, split in splits.items()}, where)
    return splits


def _where(table: TableRead, input_uri: str) -> str:
    return input_uri or (table.files[0].display if len(table.files) == 1 else "the input")


def choose_columns(table: TableRead, where: str, target_column: str, id_columns: list[str] | None,
                   exclude_columns: list[str]) -> tuple[str, list[str] | None, list[str]]:
    columns = list(table.frame.columns)
    target = resolve_column(target_column, columns, "TargetColumn", where)
    ids = None if id_columns is None else resolve_columns(id_columns, columns, "IdColumns", where)
    excluded = resolve_columns(exclude_columns, columns, "ExcludeColumns", where)
    for parameter, names in (("IdColumns", ids or []), ("ExcludeColumns", excluded)):
        if target in names:
            raise ValueError(f"{parameter} includes the target {target!r}; remove it from {parameter}")
    return target, ids, excluded


@dataclass(frozen=True)
class Plan:
    """What was decided on a table that each of its shards applies to its own rows: the target, the scale its
    far-off values are judged on, the columns read as numbers and the columns that make a row's identity."""

    columns: list[str]
    target: str
    scale: dict
    numbers: list[str]
    identity: list[str]


@dataclass(frozen=True)
class Prepared:
    splits: dict[str, pd.DataFrame]
    spec: dict
    report: dict
    plan: Plan


def prepare(table: TableRead, *, target_column: str, id_columns: list[str] | None, exclude_columns: list[str],
            validation_fraction: float, test_fraction: float, seed: int, input_uri: str = "",
            whole: dict[str, ColumnFacts] | None = None) -> Prepared:
    """The splits, the feature spec fitted on train, the data report, and the plan that made them. When the table
    is a sample of the rows, ``whole`` holds each column's facts over all of them."""
    where = _where(table, input_uri)
    target, ids, excluded = choose_columns(table, where, target_column, id_columns, exclude_columns)
    rows = TargetRows(table.frame, target, where)
    notes = [*table.findings, *repair_numbers(rows.frame, target)]
    left_out = leave_out_reasons(rows.frame, target, ids, excluded, whole)
    # The splits keep every column, left-out ones too: an approved champion trained on other columns
    # is scored on exactly these rows, and the feature spec decides what each model reads.
    cleaned = rows.frame
    numeric, categorical = infer_feature_types(cleaned, target, drop=list(left_out))
    if not numeric and not categorical:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in list(left_out.items())[:5])
        raise ValueError(f"no feature columns are left in {where} besides TargetColumn {target!r} "
                         f"({reasons or 'the table has no other column'}); supply columns to learn from")
    # A row is what IdColumns name, else everything but the target (a corrected target moves no row).
    identity = ids or [name for name in cleaned.columns if name != target]
    splits = split_rows(cleaned, identity, validation_fraction, test_fraction, seed, where)
    spec = fit_feature_spec(splits["train"], target, numeric, categorical)
    leaks = suspected_leaks(splits["train"], splits["validation"], target, numeric, categorical)
    warnings = [*(leak["message"] for leak in leaks), *rows.warnings]
    if len(splits["test"]) < FEW_TEST_ROWS:
        warnings.append(f"only {len(splits['test'])} test rows: the test metrics are rough; supply more rows")
    report = {
        "input": where,
        "files": [source.facts() for source in table.files],
        "files_left_out": table.left_out,
        "rows": {"read": len(table.frame), "used": len(cleaned),
                 "dropped": {reason: count for reason, count in rows.dropped.items() if count}},
        "splits": {name: len(frame) for name, frame in splits.items()},
        "target": {"column": target, "transform": spec["target_transform"],
                   **target_summary(cleaned[target].to_numpy(dtype=float)),
                   "suspected_outliers": rows.suspected_outliers},
        "columns": {"numeric": numeric, "categorical": categorical, "left_out": left_out},
        "leakage": leaks,
        "warnings": warnings,
        "notes": [*_file_notes(table), *notes, *rows.notes],
    }
    report["summary"] = summary_lines(report)
    numbers = [name for name in cleaned.columns if name != target and is_number_column(cleaned[name])]
    return Prepared(splits, spec, report, Plan(list(cleaned.columns), target, dataclasses.asdict(rows.scale), numbers,
                                                 identity))


def _file_notes(table: TableRead) -> list[str]:
    """Every object read (when there are several) and every object under the input left out, by name."""
    shown = 20
    read = [f"read {source.display} ({source.rows:,} rows)" for source in table.files] if len(table.files) > 1 else []
    skipped = [f"left out {item['name']}: {item['reason']}" for item in table.left_out]
    lines = read[:shown] + skipped[:shown]
    hidden = max(0, len(read) - shown) + max(0, len(skipped) - shown)
    return lines + ([f"... and {hidden:,} more files (all in the data report)"] if hidden else [])


def summary_lines(report: dict) -> list[str]:
    """What a person reads after the run: rows, features, target, split."""
    files = report["files"]
    read_as = ", ".join(sorted({f"{f['encoding']}, {f['delimiter']}-separated"
                                + (", decimal comma" if f["decimal"] == "," else "") + (", gzip" if f["gzip"] else "")
                                for f in files}))
    source = report["input"] + (f" ({len(files)} files)" if len(files) > 1 else "")
    rows = report["rows"]
    dropped = "".join(f", dropped {count:,} ({reason})" for reason, count in rows["dropped"].items())
    columns, target = report["columns"], report["target"]
    left_out = ", ".join(f"{name} ({reason.split(':')[0].split(' (')[0]})"
                         for name, reason in list(columns["left_out"].items())[:8])
    more = len(columns["left_out"]) - 8
    splits = ", ".join(f"{name} {count:,}" for name, count in report["splits"].items())
    return [
        f"read {rows['read']:,} rows from {source} ({read_as}); used {rows['used']:,}{dropped}",
        f"features: {len(columns['numeric'])} numeric, {len(columns['categorical'])} categorical"
        + (f"; left out: {left_out}" + (f" and {more} more" if more > 0 else "") if left_out else ""),
        f"target {target['column']}: median {format_number(target['median'])}, 1st to 99th percentile "
        f"{format_number(target['p1'])} to {format_number(target['p99'])}"
        + ("; never negative, so the models may fit its logarithm" if target["transform"] == "log1p" else ""),
        f"rows per split: {splits}",
    ]


# The splits a training job reads; with more than one training instance each is written in one part per instance,
# and the jobs' ShardedByS3Key channels give each instance a part of its own. Evaluate reads the test split whole.
SHARDED_SPLITS = ("train", "validation")


def split_files(name: str, frame: pd.DataFrame, shards: int, host: str = "") -> list[tuple[str, pd.DataFrame]]:
    """(file name, rows) of one split: whole, or ``shards`` consecutive parts of near-equal size. The host of a
    multi-host job names its own files, and writes each of them even when it is empty: a later run onto the same
    output (new data under the same key) then replaces every one."""
    stem = f"{name}-{host}" if host else name
    if shards == 1 or name not in SHARDED_SPLITS:
        files = [(f"{stem}.parquet", frame)]
    else:
        bounds = np.linspace(0, len(frame), shards + 1).round().astype(int)
        files = [(f"{stem}-{index + 1}-of-{shards}.parquet", frame.iloc[start:end])
                 for index, (start, end) in enumerate(zip(bounds[:-1], bounds[1:]))]
    return files


def write_splits(output_dir: Path, splits: dict[str, pd.DataFrame], spec: dict, shards: int = 1,
                 host: str = "") -> None:
    """Each split's raw rows, and the train and validation rows encoded once for every tuning trial (in the
    same parts as the raw ones)."""
    for name, frame in splits.items():
        for file_name, rows in split_files(name, frame, shards, host):
            write_table_atomic(output_dir / name / file_name, rows)
            if name in ENCODED_OUTPUTS:
                with atomic_file(output_dir / ENCODED_OUTPUTS[name] / file_name) as stream:
                    write_encoded(stream, rows, spec)


def write_outputs(output_dir: Path, splits: dict[str, pd.DataFrame], spec: dict, report: dict,
                  shards: int = 1) -> None:
    write_splits(output_dir, splits, spec, shards)
    write_json_atomic(output_dir / "features" / FEATURE_SPEC_FILE, spec)
    write_json_atomic(output_dir / "report" / DATA_REPORT_FILE, report)


def check_shards(sizes: dict[str, int], shards: int) -> None:
    smallest = min(sizes[name] for name in SHARDED_SPLITS)
    if smallest < shards:
        raise ValueError(f"--shards {shards} (TrainingInstanceCount) is more than the rows of the "
                         f"smallest split ({smallest:,}); use fewer training instances")


# With several processing instances, the leader decides (columns, target scale, feature spec, leakage) on at most
# this many rows, evenly spaced in each input file; all rows when the table is no larger. A million rows decide
# medians, levels and leakage as well as ten, and keep the leader's memory what one instance needs for them.
DECISION_ROWS = 1_000_000


def read_shard(directory: Path, input_uri: str) -> TableRead:
    """This host's share of the input files: perhaps none, as ShardedByS3Key may give it none, or only objects
    that are not data files (a lone README is left out here, where one instance would be handed all objects)."""
    return read_listed(*data_files(directory, input_uri, lone_file_any_name=False))


def file_rows(table: TableRead) -> list[tuple[InputFile, pd.DataFrame]]:
    """Each file read and its rows (the table holds them one file after the other)."""
    bounds = np.cumsum([0, *(source.rows for source in table.files)])
    return [(source, table.frame.iloc[start:end]) for source, start, end in zip(table.files, bounds[:-1], bounds[1:])]


def decision_quotas(rows_per_file: dict[str, int], limit: int) -> dict[str, int]:
    """How many of each file's rows the decisions are made on: all of them up to ``limit`` rows in all, else
    each file's share of ``limit``."""
    total = sum(rows_per_file.values())
    if total <= limit:
        return dict(rows_per_file)
    return {name: max(1, round(limit * rows / total)) if rows else 0 for name, rows in rows_per_file.items()}


def numbers_as_planned(column: pd.Series) -> np.ndarray:
    """A column the plan reads as numbers. Infinite values are missing, as Preprocess repairs them; so is text that
    is no number, which a shard can hold in rows the plan was not decided on."""
    try:
        return numeric_values(column, "")
    except ValueError:
        values = pd.to_numeric(column.astype(object).map(plain_number_text), errors="coerce").to_numpy(dtype=float)
        values[np.isinf(values)] = np.nan
        return values


def apply_plan(table: TableRead, plan: Plan, *, validation_fraction: float, test_fraction: float, seed: int,
               input_uri: str) -> tuple[dict[str, pd.DataFrame], dict]:
    """A shard's splits under the plan decided for the whole table, and its counts for the data report."""
    rows = TargetRows(table.frame, plan.target, _where(table, input_uri), TargetScale(**plan.scale))
    frame = rows.frame
    for name in plan.numbers:
        if pd.api.types.is_float_dtype(frame[name]) or not is_number_column(frame[name]):
            frame[name] = numbers_as_planned(frame[name])
    splits = split_by_identity(frame, plan.identity, validation_fraction, test_fraction, seed)
    counts = {"read": len(table.frame), "used": len(frame), "dropped": rows.dropped,
              "splits": {name: len(split) for name, split in splits.items()}}
    return splits, counts


def merged_report(report: dict, counts: list[dict], decided_on: int, hosts: int) -> dict:
    """The leader's data report with the rows of every host: the counts are exact; when the decisions were made on
    a sample of the rows, a note says so."""
    read = sum(count["read"] for count in counts)
    reasons = dict.fromkeys(reason for count in counts for reason in count["dropped"])  # in TargetRows' order
    dropped = {reason: sum(count["dropped"].get(reason, 0) for count in counts) for reason in reasons}
    report = {**report, "rows": {"read": read, "used": sum(count["used"] for count in counts),
                                 "dropped": {reason: total for reason, total in dropped.items() if total}},
              "splits": {name: sum(count["splits"][name] for count in counts) for name in SPLITS},
              "instances": hosts}
    if decided_on < read:
        report["notes"] = [*report["notes"], f"the columns, the target's outliers, the feature spec and the leakage "
                           f"scan were decided on {decided_on:,} of the {read:,} rows read, evenly spaced in each "
                           "file; the row counts and the splits cover every row"]
    report["summary"] = summary_lines(report)
    return report


def prepare_across_hosts(arguments: argparse.Namespace, exchange: Exchange) -> dict | None:
    """Preprocess on one of several processing instances: each reads and splits its own files, and the leader
    decides for all on the rows it gathers (``--decision-rows``). Returns the data report on the leader."""
    leader = exchange.hosts.is_leader
    shard = read_shard(arguments.input_dir, arguments.input_uri)
    pieces = file_rows(shard)
    shares = exchange.gather([json.dumps({
        "files": [{**dataclasses.asdict(source), "path": str(source.path)} for source, _ in pieces],
        "findings": shard.findings, "left_out": shard.left_out}).encode()])
    shares = [json.loads(blobs[0]) for blobs in shares]
    sampling = json.loads(exchange.broadcast(_sampling(shares, arguments) if leader else b""))
    # Sampled, the decisions need what only every row can tell about each column.
    facts = {name: dataclasses.asdict(ColumnFacts.of(shard.frame[name])) for name in shard.frame.columns} \
        if sampling["sampled"] else {}
    gathered = exchange.gather([
        json.dumps({"files": [source.display for source, _ in pieces], "facts": facts}).encode(),
        *(table_bytes(evenly_spaced(rows, sampling["quotas"][source.display])) for source, rows in pieces)])
    decided = _decided(arguments, shares, gathered, sampling["sampled"]) if leader else None
    decisions = json.loads(exchange.broadcast(
        json.dumps({"plan": dataclasses.asdict(decided.plan), "spec": decided.spec}).encode() if leader else b""))
    plan, spec = Plan(**decisions["plan"]), decisions["spec"]
    if not shard.files:
        splits = dict.fromkeys(SPLITS, pd.DataFrame(columns=plan.columns))
        counts = {"read": 0, "used": 0, "dropped": {}, "splits": dict.fromkeys(SPLITS, 0)}
    else:
        splits, counts = apply_plan(shard, plan, validation_fraction=arguments.validation_fraction,
                                    test_fraction=arguments.test_fraction, seed=arguments.seed,
                                    input_uri=arguments.input_uri)
    everyone = [json.loads(blobs[0]) for blobs in exchange.gather([json.dumps(counts).encode()])]
    report = _checked_report(decided, everyone, shares, arguments.shards) if leader else None
    exchange.broadcast()  # the go-ahead: nothing is written until every host's rows passed the checks
    write_splits(arguments.output_dir, splits, spec, arguments.shards, exchange.hosts.current_host)
    if leader:
        write_json_atomic(arguments.output_dir / "features" / FEATURE_SPEC_FILE, spec)
        write_json_atomic(arguments.output_dir / "report" / DATA_REPORT_FILE, report)
    print(f"{exchange.hosts.current_host}: {counts['read']:,} rows from {len(pieces):,} file(s); "
          + ", ".join(f"{name} {size:,}" for name, size in counts["splits"].items()))
    return report


def _files(shares: list[dict]) -> list[InputFile]:
    """Every host's files, in key order as one instance reads them."""
    return sorted((InputFile(**{**fact, "path": Path(fact["path"])}) for share in shares for fact in share["files"]),
                  key=lambda source: source.display)


def _sampling(shares: list[dict], arguments: argparse.Namespace) -> bytes:
    """The leader's word on how many rows of each file it decides on, and whether that is fewer than all."""
    files = _files(shares)
    require_data_files(files, [item for share in shares for item in share["left_out"]],
                       arguments.input_uri or str(arguments.input_dir))
    rows = {source.display: source.rows for source in files}
    quotas = decision_quotas(rows, arguments.decision_rows)
    return json.dumps({"quotas": quotas, "sampled": sum(quotas.values()) < sum(rows.values())}).encode()


@dataclass(frozen=True)
class Decided:
    spec: dict
    report: dict
    plan: Plan
    rows: int  # the rows decided on


def _decided(arguments: argparse.Namespace, shares: list[dict], gathered: list[list[bytes]], sampled: bool) -> Decided:
    """What the leader decides for every host, on the rows gathered from all of them (kept no longer than this)."""
    headers = [json.loads(blobs[0]) for blobs in gathered]
    by_file = {name: blob for header, blobs in zip(headers, gathered) for name, blob in zip(header["files"], blobs[1:])}
    files = _files(shares)
    frames = [frame_of_bytes(by_file[source.display]) for source in files]
    for source, frame in zip(files, frames):
        check_header(files[0], frames[0].columns, source, frame.columns)
    rows = joined_frames(frames)
    whole = {name: ColumnFacts.merged([ColumnFacts(**header["facts"][name]) for header in headers if header["facts"]])
             for name in rows.columns} if sampled else None
    table = TableRead(rows, files, list(dict.fromkeys(finding for share in shares for finding in share["findings"])),
                      [item for share in shares for item in share["left_out"]])
    prepared = prepare(table, target_column=arguments.target_column, id_columns=arguments.id_columns,
                       exclude_columns=arguments.exclude_columns, validation_fraction=arguments.validation_fraction,
                       test_fraction=arguments.test_fraction, seed=arguments.seed, input_uri=arguments.input_uri,
                       whole=whole)
    return Decided(prepared.spec, prepared.report, prepared.plan, len(rows))


def _checked_report(decided: Decided, counts: list[dict], shares: list[dict], shards: int) -> dict:
    """The data report with every host's counts; raises when the splits of all the rows break a rule."""
    report = merged_report(decided.report, counts, decided.rows, len(shares))
    idle = sum(1 for share in shares if not share["files"])
    if idle:
        report["warnings"].append(
            f"{idle} of {len(shares)} processing instances received no input file and idled; give the input "
            f"at least as many files as ProcessingInstanceCount ({len(shares)})")
    check_split_sizes(report["splits"], report["input"])
    check_shards(report["splits"], shards)
    return report


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def column_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


# IdColumns' value for "no column identifies a row": none is guessed id-like, so every column may be a feature.
NO_ID_COLUMNS = "none"


def optional_column_list(text: str) -> list[str] | None:
    """None (guess id-like columns) for an empty value; no columns for NO_ID_COLUMNS."""
    return [] if text.strip().lower() == NO_ID_COLUMNS else column_list(text) or None


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("processing", description=__doc__.splitlines()[0])
    parser.add_argument("--target-column", required=True, help="the TargetColumn parameter")
    parser.add_argument("--id-columns", type=optional_column_list, default=None,
                        help="IdColumns: comma-separated row identifiers; empty: guess id-like columns; "
                        f"{NO_ID_COLUMNS}: guess none")
    parser.add_argument("--exclude-columns", type=column_list, default=[],
                        help="ExcludeColumns: comma-separated columns that must not be features")
    parser.add_argument("--input-uri", default="", help="where the input comes from, as the user knows it")
    parser.add_argument("--validation-fraction", type=fraction, default=0.15)
    parser.add_argument("--test-fraction", type=fraction, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--shards", type=positive_whole_number, default=1,
                        help="TrainingInstanceCount: write the train and validation splits in this many parts")
    parser.add_argument("--decision-rows", type=positive_whole_number, default=DECISION_ROWS,
                        help="with several processing instances, the rows the leader decides on at most")
    parser.add_argument("--input-dir", type=Path, default=opt_ml_root() / "processing" / "input" / "data")
    parser.add_argument("--output-dir", type=Path, default=opt_ml_root() / "processing",
                        help="parent of the train/, validation/, test/, encoded-train/, encoded-validation/, "
                        "features/ and report/ outputs")
    arguments = parser.parse_args(argv)
    if arguments.validation_fraction + arguments.test_fraction >= 1:
        parser.error("--validation-fraction plus --test-fraction must leave rows for training (sum below 1)")
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    hosts = ProcessingHosts.of_this_job(opt_ml_root() / "config")
    with failure_reporting("processing"):
        if hosts.distributed:
            with hosts.exchange() as exchange:
                report = prepare_across_hosts(arguments, exchange)
        else:
            # The table read is not kept: once split, its rows live on in the splits.
            prepared = prepare(
                read_tables(arguments.input_dir, arguments.input_uri), target_column=arguments.target_column,
                id_columns=arguments.id_columns, exclude_columns=arguments.exclude_columns,
                validation_fraction=arguments.validation_fraction, test_fraction=arguments.test_fraction,
                seed=arguments.seed, input_uri=arguments.input_uri,
            )
            check_shards(prepared.report["splits"], arguments.shards)
            write_outputs(arguments.output_dir, prepared.splits, prepared.spec, prepared.report, arguments.shards)
            report = prepared.report
        for line in report["summary"] if report else []:
            print(line)
        for warning in report["warnings"] if report else []:
            print(f"warning: {warning}")


if __name__ == "__main__":
    main()
