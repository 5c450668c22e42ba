"""Reading a user's delimited text files: whatever a spreadsheet or database exports, or one sentence why not.

Every message names the file as the user knows it (the S3 URI of the input, not the container's
download path) and says what to change. Compression is recognised by content, the encoding is UTF-8
(with or without BOM), UTF-16 with a BOM, else Windows-1252; the delimiter is sniffed among
comma, semicolon, tab and pipe; header names are trimmed.

The rows are read by Arrow's CSV reader with pandas' rules (which cells are missing, numbers, booleans
or text; leading spaces skipped; dates left as text), in a quarter of pandas' time and a third of its
memory; a file Arrow refuses goes through pandas, which reads it or names the line at fault. Text
columns come back as pandas categoricals.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pandas.api.types import union_categoricals

from features import FALSE_TEXTS, MISSING_VALUE_MARKERS, TRUE_TEXTS

DATA_FILE_SUFFIXES = (".csv", ".tsv", ".txt")
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_LINES = 200
_HEAD_BYTES = 1 << 20
_CHUNK_BYTES = 16 << 20
_TYPING_BYTES = 16 << 20
# Small enough to stay in the processor's cache between parsing a block and converting its columns: a 1M-row file
# read one 16 MB block at a time took 14.9 s, in 2 MB blocks 5.1 s.
_BLOCK_BYTES = 2 << 20
_WHOLE_FILE_BYTES = 64 << 20
_GZIP_RATIO = 5  # how much text a gzip file is taken to hold per byte
_RAGGED_ROW = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")
_DECIMAL_POINT = re.compile(r"^-?\d+\.\d+$")


@dataclass
class InputFile:
    path: Path
    display: str  # how the user knows it: an S3 URI or their own file name
    encoding: str = ""
    delimiter: str = ""
    compressed: bool = False
    decimal: str = "."
    rows: int = 0

    def facts(self) -> dict:
        return {"name": self.display, "rows": self.rows, "encoding": self.encoding,
                "delimiter": DELIMITER_NAMES[self.delimiter], "decimal": self.decimal, "gzip": self.compressed}


@dataclass
class TableRead:
    frame: pd.DataFrame
    files: list[InputFile]
    findings: list[str] = field(default_factory=list)  # repairs made while reading, one sentence each
    # Objects the input's S3 prefix matched that were not read: {"name": ..., "reason": ...}
    left_out: list[dict] = field(default_factory=list)


def display_name(path: Path, directory: Path, input_uri: str) -> str:
    """The user's name for a downloaded file. An S3 input puts each object at its key with the input's
    key taken off: under `incoming/` or `incoming`, `a.csv` is `incoming/a.csv`; next to the object
    `sales.csv`, `.old` is `sales.csv.old`; the object named exactly keeps its file name."""
    relative = path.relative_to(directory).as_posix()
    if not input_uri:
        return relative
    if input_uri.endswith("/"):
        return input_uri + relative
    if relative == input_uri.rsplit("/", 1)[-1]:
        return input_uri
    return f"{input_uri}/{relative}" if relative[0].isalnum() else input_uri + relative


def _is_data_file(path: Path) -> bool:
    name = path.name.lower()
    if name.startswith(".") or not path.is_file():
        return False
    name = name[:-3] if name.endswith(".gz") else name
    return name.endswith(DATA_FILE_SUFFIXES)


def data_files(directory: Path, input_uri: str, lone_file_any_name: bool = True) -> tuple[list[InputFile], list[dict]]:
    """The delimited files to read under directory, in path order (perhaps none), and what was left out and why.

    An S3 prefix is a plain string prefix, so the key `data/x.csv` also brings `data/x.csv.old` and
    `data/x.csv-v2/part.csv` along: when the input names an object that exists, only that object is
    read. A single downloaded file is read whatever its name, unless ``lone_file_any_name`` is off (an
    instance's share of a sharded input, which may be a lone README of many objects).
    """
    everything = sorted(path for path in directory.rglob("*") if path.is_file()) if directory.is_dir() else []
    named = input_uri.rsplit("/", 1)[-1] if input_uri and not input_uri.endswith("/") else ""
    exact = [path for path in everything if path.relative_to(directory).as_posix() == named]
    if exact:
        chosen, reason = exact, (f"its key only begins with the input key, which names the object {named}; "
                                 "to read several files, end InputDataKey with /")
    elif len(everything) == 1 and lone_file_any_name:
        chosen, reason = everything, ""
    else:
        chosen = [path for path in everything if _is_data_file(path)]
        reason = f"not a {', '.join(DATA_FILE_SUFFIXES)} file (optionally gzipped)"
    left_out = [{"name": display_name(path, directory, input_uri), "reason": reason}
                for path in everything if path not in chosen]
    return [InputFile(path, display_name(path, directory, input_uri)) for path in chosen], left_out


def require_data_files(files: list[InputFile], left_out: list[dict], where: str) -> None:
    if not files:
        names = [item["name"].rsplit("/", 1)[-1] for item in left_out[:3]]
        found = f" (found only {', '.join(names)})" if names else ""
        raise ValueError(
            f"no CSV file at {where}{found}; set InputDataKey to a CSV file or to a prefix holding "
            f"*.csv files (optionally gzipped)"
        )


def check_header(first: InputFile, first_columns: list, source: InputFile, columns: list) -> None:
    """Every file of a table has the first file's header."""
    if list(columns) != list(first_columns):
        differing = sorted(set(columns) ^ set(first_columns))
        detail = f"differing: {', '.join(map(repr, differing[:5]))}" if differing else "same names, other order"
        raise ValueError(
            f"{source.display} has other columns than {first.display} ({detail}); give every file "
            "under the input the same header, or point InputDataKey at one of them"
        )


def _opened(source: InputFile) -> BinaryIO:
    """The file's bytes, decompressed when its content is gzip (whatever its name)."""
    with open(source.path, "rb") as file:
        source.compressed = file.read(2) == _GZIP_MAGIC
    return gzip.open(source.path, "rb") if source.compressed else open(source.path, "rb")


def _chunks(source: InputFile) -> Iterator[bytes]:
    try:
        with _opened(source) as file:
            while chunk := file.read(_CHUNK_BYTES):
                yield chunk
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"{source.display} is gzip-compressed but cannot be decompressed ({error}); upload it again "
            "or upload it uncompressed"
        ) from None


def _decodes_as(source: InputFile, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        for chunk in _chunks(source):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _encoding(source: InputFile, head: bytes, findings: list[str]) -> str:
    """UTF-16 with a BOM, else UTF-8 (BOM or not) when every byte decodes as such, else the Windows code page."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if _decodes_as(source, "utf-8-sig"):
        return "utf-8"
    # Spreadsheets on Windows save "CSV" in the ANSI code page; Latin-1 decodes anything else.
    encoding = "cp1252" if _decodes_as(source, "cp1252") else "latin-1"
    findings.append(f"{source.display} is not UTF-8; read it as {encoding} (save it as UTF-8 to be sure "
                    "accented text is read as meant)")
    return encoding


def _head(source: InputFile) -> bytes:
    """The file's start to sniff its layout from: at least the header line."""
    with _opened(source) as file:
        try:
            head = file.read(_HEAD_BYTES)
            while b"\n" not in head and (more := file.read(_HEAD_BYTES)):
                head += more
        except (OSError, EOFError, zlib.error):
            return b""  # _encoding reads the whole file and says it cannot be decompressed
    return head


def _head_text(head: bytes, encoding: str) -> str:
    """The head's whole lines as text (a cut line or character would sway the sniffing)."""
    text = head.decode("utf-8-sig" if encoding == "utf-8" else encoding, errors="ignore")
    if len(head) >= _HEAD_BYTES and "\n" in text:
        text = text[:text.rindex("\n") + 1]
    return text


def sniff_delimiter(text: str) -> str:
    """The candidate that splits the header into the most fields and every sampled row into as many."""
    sample = list(_first_records(text))
    best, best_score = ",", (-1, -1)
    for delimiter in DELIMITERS:
        try:
            rows = list(csv.reader(sample, delimiter=delimiter))
        except csv.Error:
            continue
        rows = [row for row in rows if row]
        if not rows:
            continue
        width = len(rows[0])
        consistent = sum(len(row) == width for row in rows[1:])
        score = (consistent if width > 1 else -1, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def sniff_decimal(text: str, delimiter: str) -> str:
    """',' when the sampled fields write numbers with a decimal comma (as spreadsheets in much of Europe do)."""
    if delimiter == ",":
        return "."
    fields = [field.strip() for row in csv.reader(list(_first_records(text))[1:], delimiter=delimiter)
              for field in row]
    commas = sum(bool(_DECIMAL_COMMA.match(field)) for field in fields)
    points = sum(bool(_DECIMAL_POINT.match(field)) for field in fields)
    return "," if commas > points else "."


def _first_records(text: str):
    for number, line in enumerate(io.StringIO(text)):
        if number >= _SNIFF_LINES:
            return
        yield line


def _header(text: str, delimiter: str, source: InputFile, findings: list[str]) -> list[str]:
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    except csv.Error as error:
        raise ValueError(f"{source.display}: the header row cannot be parsed ({error}); fix its quoting") from None
    names = [name.strip() for name in header]
    if len(names) < 2:
        raise ValueError(
            f"{source.display} has a single column ({names[0]!r} at most); give it a header row and at "
            "least two columns separated by commas, semicolons, tabs or pipes"
        )
    for position, name in enumerate(names):
        if not name:
            names[position] = f"unnamed_{position + 1}"
            findings.append(f"column {position + 1} of {source.display} has no header name; called it "
                            f"{names[position]!r}")
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in seen:
            raise ValueError(
                f"{source.display}: the header names {name!r} twice (columns {seen[name] + 1} and "
                f"{position + 1}); give every column a unique name"
            )
        seen[name] = position
    return names


def _parse_with_pandas(source: InputFile, names: list[str]) -> pd.DataFrame:
    """The whole file through pandas: what Arrow refuses, pandas either reads or names in a precise message."""
    text = b"".join(_chunks(source)).decode("utf-8-sig" if source.encoding == "utf-8" else source.encoding)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=source.delimiter, header=0, names=names, decimal=source.decimal,
            keep_default_na=False, na_values=list(MISSING_VALUE_MARKERS),
            skipinitialspace=True, skip_blank_lines=True,
        )
    except pd.errors.ParserError as error:
        ragged = _RAGGED_ROW.search(str(error))
        if ragged:
            expected, line, seen = ragged.groups()
            raise ValueError(
                f"{source.display}: line {line} has {seen} fields but the header has {expected}; quote values "
                f"that contain a {DELIMITER_NAMES[source.delimiter]} or remove the extra fields"
            ) from None
        raise ValueError(f"{source.display} cannot be parsed as a {DELIMITER_NAMES[source.delimiter]}-separated "
                         f"table ({' '.join(str(error).split())}); check its quoting") from None
    return frame


TEXT = pa.dictionary(pa.int32(), pa.string())  # how text is kept while reading: a code per cell
_FAILING_COLUMN = re.compile(r"In CSV column #(\d+):")
_LONGER_THAN_A_BLOCK = "straddles two block boundaries"  # Arrow's words for a row longer than its block


def _csv_options(source: InputFile, names: list[str], as_text: set[str], block_bytes: int) -> dict:
    return {
        "read_options": pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=block_bytes,
                                          encoding="utf8" if source.encoding == "utf-8" else source.encoding),
        "parse_options": pacsv.ParseOptions(delimiter=source.delimiter, newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(
            null_values=list(MISSING_VALUE_MARKERS), strings_can_be_null=True, decimal_point=source.decimal,
            # What pandas reads as booleans; Arrow would also take 0 and 1.
            true_values=list(TRUE_TEXTS), false_values=list(FALSE_TEXTS),
            auto_dict_encode=True, auto_dict_max_cardinality=2 ** 31 - 1,
            column_types={name: TEXT for name in as_text}),
    }


def _stream(source: InputFile) -> pa.NativeFile:
    return pa.input_stream(str(source.path), compression="gzip" if source.compressed else None)


def _dated(schema: pa.Schema) -> set[str]:
    """Columns Arrow typed as dates or times, which pandas leaves as text."""
    return {kind.name for kind in schema if _arrow_parses_beyond_pandas(kind.type)}


def _first_block_types(source: InputFile, names: list[str]) -> pa.Schema:
    """The column types Arrow infers from the file's first _TYPING_BYTES."""
    return pacsv.open_csv(_stream(source), **_csv_options(source, names, set(), _TYPING_BYTES)).schema


def _arrow_table(source: InputFile, names: list[str]) -> tuple[pa.Table, set[str]]:
    """The rows in Arrow. Up to _WHOLE_FILE_BYTES, Arrow's reader parses blocks on every core, typing each column
    over all its blocks, and holds about three times the file meanwhile; a larger file is read one block at a time,
    in the types of its first _TYPING_BYTES (a 1M-row file of 320 MB: 0.7 GB instead of 1.4 GB, in as much time).

    A column with a date, or read block by block with a value further on that its type cannot hold (a word among
    numbers), is read as text and typed over all its values afterwards: the table comes with the names of those
    columns."""
    first_block_types = _first_block_types(source, names)
    as_text = _dated(first_block_types)
    whole = source.path.stat().st_size * (_GZIP_RATIO if source.compressed else 1) <= _WHOLE_FILE_BYTES
    block_bytes = _BLOCK_BYTES
    while True:
        options = _csv_options(source, names, as_text, block_bytes)
        try:
            if whole:
                table = pacsv.read_csv(_stream(source), **options)
            else:
                options["convert_options"].column_types = {
                    kind.name: TEXT if kind.name in as_text else kind.type for kind in first_block_types}
                reader = pacsv.open_csv(_stream(source), **options)
                table = pa.Table.from_batches(list(reader), schema=reader.schema)
        except pa.ArrowInvalid as error:
            if _LONGER_THAN_A_BLOCK in str(error) and block_bytes < _TYPING_BYTES:
                block_bytes = _TYPING_BYTES  # rows as long as the typing block stay with Arrow, not pandas
                continue
            failing = _FAILING_COLUMN.search(str(error))
            if not failing or names[int(failing.group(1))] in as_text:
                raise
            as_text.add(names[int(failing.group(1))])
            continue
        if not _dated(table.schema):
            return table, as_text
        as_text |= _dated(table.schema)


def _arrow_parses_beyond_pandas(kind: pa.DataType) -> bool:
    """Types Arrow infers from text that pandas leaves as text (dates, times, decimals)."""
    return not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
                or kind == TEXT or pa.types.is_null(kind))


def _typed_as_pandas(column: pa.ChunkedArray, decimal: str) -> pa.ChunkedArray:
    """A text column as pandas reads it, over all its values: leading spaces skipped, missing markers missing,
    and numbers, or booleans, when every value is one."""
    text = pc.utf8_ltrim(column.cast(pa.string()), characters=" ")
    text = pc.if_else(pc.is_in(text, pa.array(MISSING_VALUE_MARKERS)), pa.scalar(None, pa.string()), text)
    numbers = pc.replace_substring(text, ",", ".") if decimal == "," else text
    for numeric in (pa.int64(), pa.float64()):
        try:
            return numbers.cast(numeric)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    present = pc.is_valid(text)
    if pc.all(pc.or_(pc.is_in(text, pa.array(TRUE_TEXTS + FALSE_TEXTS)), pc.invert(present))).as_py():
        return pc.if_else(present, pc.is_in(text, pa.array(TRUE_TEXTS)), pa.scalar(None, pa.bool_()))
    return text.dictionary_encode()


def _has_leading_spaces(column: pa.ChunkedArray) -> bool:
    return any(pc.any(pc.starts_with(chunk.dictionary, " ")).as_py() for chunk in column.chunks)


def _as_pandas_column(kind: pa.DataType, column: pa.ChunkedArray, retyped: bool, decimal: str) -> pa.ChunkedArray:
    if pa.types.is_null(kind):
        return column.cast(pa.float64())  # empty in every row: pandas reads NaN
    if kind == TEXT and (retyped or _has_leading_spaces(column)):
        return _typed_as_pandas(column, decimal)
    return column


def _parse(source: InputFile, names: list[str]) -> pd.DataFrame:
    """The table, read by Arrow's CSV reader with pandas' rules (types, missing markers, leading spaces);
    anything Arrow refuses goes through pandas."""
    try:
        table, as_text = _arrow_table(source, names)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError):
        return _parse_with_pandas(source, names)
    table = pa.table([_as_pandas_column(kind.type, column, kind.name in as_text, source.decimal)
                      for kind, column in zip(table.schema, table.columns)], names=names)
    # Text as categories: a code per cell instead of an object, which the checks count and hash in a blink.
    frame = table.to_pandas(self_destruct=True)  # frees each column once converted
    # Arrow's allocator keeps what it freed for reuse, which pandas' allocations cannot use: give it back.
    pa.default_memory_pool().release_unused()
    return frame


def read_file(source: InputFile, findings: list[str]) -> pd.DataFrame:
    head = _head(source)
    source.encoding = _encoding(source, head, findings)
    if not head.strip():
        raise ValueError(f"{source.display} is empty; upload a CSV file with a header row and data rows")
    text = _head_text(head, source.encoding)
    source.delimiter = sniff_delimiter(text)
    source.decimal = sniff_decimal(text, source.delimiter)
    if source.decimal == ",":
        findings.append(f"{source.display} writes decimals with a comma; read them as numbers")
    frame = _parse(source, _header(text, source.delimiter, source, findings))
    if frame.empty:
        raise ValueError(f"{source.display} has a header but no data rows; upload the file with its rows")
    source.rows = len(frame)
    return frame


def read_tables(directory: Path, input_uri: str = "") -> TableRead:
    """Every data file under directory as one frame; their header names must agree."""
    files, left_out = data_files(directory, input_uri)
    require_data_files(files, left_out, input_uri or str(directory))
    return read_listed(files, left_out)


def read_listed(files: list[InputFile], left_out: list[dict]) -> TableRead:
    """The files (perhaps none) as one frame; their header names must agree."""
    findings: list[str] = []
    frames = []
    for source in files:
        frames.append(read_file(source, findings))
        check_header(files[0], frames[0].columns, source, frames[-1].columns)
    return TableRead(joined_frames(frames) if frames else pd.DataFrame(), files, findings, left_out)


def joined_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of several files' frames (in order) as one frame, as ``read_tables`` joins them."""
    return _text_as_categories(_concatenated(frames))


def _concatenated(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The files' rows as one frame; a text column stays categorical (concat keeps only equal categories)."""
    if len(frames) == 1:
        return frames[0]
    for name in frames[0].columns:
        if all(isinstance(frame[name].dtype, pd.CategoricalDtype) for frame in frames):
            categories = union_categoricals([frame[name] for frame in frames]).categories
            for frame in frames:
                frame[name] = frame[name].cat.set_categories(categories)
    return pd.concat(frames, ignore_index=True)


def _text_as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns pandas read as objects (files Arrow refused, or typed differently) as categories too."""
    for name in frame.columns[frame.dtypes == object]:
        if pd.api.types.infer_dtype(frame[name], skipna=True) == "string":
            frame[name] = frame[name].astype("category")
    return frame
