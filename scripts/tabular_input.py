"""Reading a user's delimited text files: whatever a spreadsheet or database exports, or one sentence why not.

Every message names the file as the user knows it (the S3 URI of the input, not the container's
download path) and says what to change. Compression is recognised by content, the encoding is UTF-8
(with or without BOM), UTF-16 with a BOM, else Windows-1252; the delimiter is sniffed among
comma, semicolon, tab and pipe; header names are trimmed.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features import MISSING_VALUE_MARKERS

DATA_FILE_SUFFIXES = (".csv", ".tsv", ".txt")
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_LINES = 200
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


def data_files(directory: Path, input_uri: str) -> tuple[list[InputFile], list[dict]]:
    """The delimited files to read under directory, in path order, and what was left out and why.

    An S3 prefix is a plain string prefix, so the key `data/x.csv` also brings `data/x.csv.old` and
    `data/x.csv-v2/part.csv` along: when the input names an object that exists, only that object is
    read. A single downloaded file is read whatever its name.
    """
    where = input_uri or str(directory)
    everything = sorted(path for path in directory.rglob("*") if path.is_file()) if directory.is_dir() else []
    named = input_uri.rsplit("/", 1)[-1] if input_uri and not input_uri.endswith("/") else ""
    exact = [path for path in everything if path.relative_to(directory).as_posix() == named]
    if exact:
        chosen, reason = exact, (f"its key only begins with the input key, which names the object {named}; "
                                 "to read several files, end InputDataKey with /")
    elif len(everything) == 1:
        chosen, reason = everything, ""
    else:
        chosen = [path for path in everything if _is_data_file(path)]
        reason = f"not a {', '.join(DATA_FILE_SUFFIXES)} file (optionally gzipped)"
    if not chosen:
        found = f" (found only {', '.join(p.name for p in everything[:3])})" if everything else ""
        raise ValueError(
            f"no CSV file at {where}{found}; set InputDataKey to a CSV file or to a prefix holding "
            f"*.csv files (optionally gzipped)"
        )
    left_out = [{"name": display_name(path, directory, input_uri), "reason": reason}
                for path in everything if path not in chosen]
    return [InputFile(path, display_name(path, directory, input_uri)) for path in chosen], left_out


def _decompress(raw: bytes, source: InputFile) -> bytes:
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    source.compressed = True
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"{source.display} is gzip-compressed but cannot be decompressed ({error}); upload it again "
            "or upload it uncompressed"
        ) from None


def _decode(raw: bytes, source: InputFile, findings: list[str]) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        source.encoding = "utf-16"
        return raw.decode("utf-16")
    try:
        source.encoding = "utf-8"
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Spreadsheets on Windows save "CSV" in the ANSI code page; Latin-1 decodes anything else.
    for encoding in ("cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        source.encoding = encoding
        findings.append(f"{source.display} is not UTF-8; read it as {encoding} (save it as UTF-8 to be sure "
                        "accented text is read as meant)")
        return text
    raise AssertionError("latin-1 decodes every byte string")


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


def _parse(text: str, delimiter: str, names: list[str], source: InputFile) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter, header=0, names=names, decimal=source.decimal,
            keep_default_na=False, na_values=list(MISSING_VALUE_MARKERS),
            skipinitialspace=True, skip_blank_lines=True,
        )
    except pd.errors.ParserError as error:
        ragged = _RAGGED_ROW.search(str(error))
        if ragged:
            expected, line, seen = ragged.groups()
            raise ValueError(
                f"{source.display}: line {line} has {seen} fields but the header has {expected}; quote values "
                f"that contain a {DELIMITER_NAMES[delimiter]} or remove the extra fields"
            ) from None
        raise ValueError(f"{source.display} cannot be parsed as a {DELIMITER_NAMES[delimiter]}-separated "
                         f"table ({' '.join(str(error).split())}); check its quoting") from None
    return frame


def read_file(source: InputFile, findings: list[str]) -> pd.DataFrame:
    raw = _decompress(source.path.read_bytes(), source)
    if not raw.strip():
        raise ValueError(f"{source.display} is empty; upload a CSV file with a header row and data rows")
    text = _decode(raw, source, findings)
    source.delimiter = sniff_delimiter(text)
    source.decimal = sniff_decimal(text, source.delimiter)
    if source.decimal == ",":
        findings.append(f"{source.display} writes decimals with a comma; read them as numbers")
    names = _header(text, source.delimiter, source, findings)
    frame = _parse(text, source.delimiter, names, source)
    if frame.empty:
        raise ValueError(f"{source.display} has a header but no data rows; upload the file with its rows")
    source.rows = len(frame)
    return frame


def read_tables(directory: Path, input_uri: str = "") -> TableRead:
    """Every data file under directory as one frame; their header names must agree."""
    files, left_out = data_files(directory, input_uri)
    findings: list[str] = []
    frames = []
    for source in files:
        frame = read_file(source, findings)
        if frames and list(frame.columns) != list(frames[0].columns):
            first = files[0]
            differing = sorted(set(frame.columns) ^ set(frames[0].columns))
            detail = f"differing: {', '.join(map(repr, differing[:5]))}" if differing else "same names, other order"
            raise ValueError(
                f"{source.display} has other columns than {first.display} ({detail}); give every file "
                "under the input the same header, or point InputDataKey at one of them"
            )
        frames.append(frame)
    combined = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return TableRead(combined, files, findings, left_out)
