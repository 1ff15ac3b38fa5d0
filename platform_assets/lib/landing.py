"""Reading the files delivered to a landing directory into one typed DataFrame.

Every CSV, JSON Lines and Parquet file under the directory is read; types are enforced column by column.
A file that cannot be parsed at all raises `LandingFileError` naming the file and line. A value that does not
fit its column's type does not fail the run: the row is kept, the value becomes null, and `_ingest_error`
records the column, the original value and the file/line, so the cleaning layer can quarantine it with that
reason. Nothing is dropped silently: a file that is not read (a name that is not UTF-8, a symbolic link that
leaves the landing directory, a format we do not read) is listed with the reason, and extra columns beyond
the cap are listed by count and name.

`read_landing` reads a whole directory into one frame; `iter_landing_file` streams ONE file in typed chunks
of the same columns, rows and errors, in memory bounded by the chunk and one block of the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

ColumnType = Literal["string", "int", "float", "timestamp"]

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
LINEAGE_COLUMNS = ["_source_file", "_source_line", "_ingest_error"]

# Large review bodies are legitimate; the cleaning layer decides what is too long (as it does for JSON Lines,
# which has no limit). The whole file is in memory before it is parsed, so a limit on one field saves nothing;
# the default (128 KiB), or any finite one, fails the whole delivery for one long text.
csv.field_size_limit(sys.maxsize)


class LandingFileError(ValueError):
    """A landing file that cannot be read; the message names the file and, where known, the line and column."""


@dataclass
class LandingReport:
    """What one read of a landing directory found."""

    files: list[str] = field(default_factory=list)
    rows_per_file: dict[str, int] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    # Why each ignored file was not read, by its name (non-UTF-8 bytes escaped as \xNN).
    ignored_reasons: dict[str, str] = field(default_factory=dict)
    rows_with_type_errors: int = 0
    # Extra columns (not in the schema) kept, in order of appearance, and those dropped beyond the cap.
    extra_columns: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)
    max_extra_columns: int | None = None


def _is_hidden_or_partial(path: Path) -> bool:
    # rsync and other transfer tools write partial files under dotted or suffixed names.
    return any(part.startswith(".") for part in path.parts) or path.suffix in (".tmp", ".partial", ".part")


def display_name(relative: Path | str) -> str:
    """A landing file's name as text that can always be stored: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(str(relative)).decode("utf-8", "backslashreplace")


def _walk(directory: Path, unlisted: list[Path]) -> Iterator[Path]:
    """Every entry under `directory` that is not a real directory; symbolic links are yielded, not followed.

    Directories that cannot be listed (permissions) go to `unlisted`.
    """
    try:
        with os.scandir(directory) as scan:
            entries = list(scan)
    except OSError:
        unlisted.append(directory)
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path, unlisted)
        else:
            yield path


def _refusal(path: Path, relative: Path, root: Path) -> str | None:
    """Why the entry at `path` is not read, or None when it is a landing file we read."""
    try:
        str(relative).encode("utf-8")
    except UnicodeEncodeError:
        # The name would fail every write downstream (Parquet, metadata); it cannot be stored as is.
        return "file name is not valid UTF-8; rename the file"
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            return "broken symbolic link"
        if target.is_dir():
            return "symbolic link to a directory; links are not followed, deliver the files themselves"
        # A link must not make the platform read a file from elsewhere on the host.
        if not target.is_relative_to(root):
            return "symbolic link to a file outside the landing directory"
    if not path.is_file():
        return "not a regular file (a pipe, socket or device)"
    if path.suffix.lower() not in CSV_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES:
        return "not a CSV, JSON Lines or Parquet file (by its suffix)"
    return None


def scan_landing(
    landing_dir: Path, include: Callable[[str], bool] | None = None
) -> tuple[list[Path], dict[Path, str]]:
    """Return (readable files, {ignored file: reason}) under `landing_dir`, sorted for a deterministic row order.

    Hidden and partial files, and those `include` leaves out, are neither. Symbolic links to files inside the
    landing directory are read; every other link is ignored with the reason.
    """
    readable: list[Path] = []
    ignored: dict[Path, str] = {}
    if not landing_dir.is_dir():
        return readable, ignored
    root = landing_dir.resolve()
    unlisted: list[Path] = []
    for path in sorted(_walk(landing_dir, unlisted)):
        relative = path.relative_to(landing_dir)
        if _is_hidden_or_partial(relative) or (include and not include(str(relative))):
            continue
        reason = _refusal(path, relative, root)
        if reason is None:
            readable.append(path)
        else:
            ignored[path] = reason
    for directory in unlisted:
        if not _is_hidden_or_partial(directory.relative_to(landing_dir)):
            ignored[directory] = "directory that cannot be listed (permissions)"
    return readable, ignored


def list_landing_files(
    landing_dir: Path, include: Callable[[str], bool] | None = None
) -> tuple[list[Path], list[Path]]:
    """Return (readable files, ignored files) under `landing_dir`, sorted for a deterministic row order.

    `include` filters on the path relative to `landing_dir` (e.g. the files of one day's partition).
    `scan_landing` gives the reason each file is ignored.
    """
    readable, ignored = scan_landing(landing_dir, include)
    return readable, list(ignored)


def landing_fingerprint(landing_dir: Path, include: Callable[[str], bool] | None = None) -> str:
    """A digest of the readable landing files (relative names, sizes, modification times), for sensors."""
    files, _ = list_landing_files(landing_dir, include)
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(landing_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _decode_utf8(path: Path, data: bytes) -> str:
    return _decode_block(path, data, 0).removeprefix("\ufeff")


def _decode_block(path: Path, data: bytes, newlines_before: int) -> str:
    """Decode bytes that start at the start of a line, after `newlines_before` line feeds of the file.

    An error names the file's line (counting line feeds) and the byte column in that line.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = newlines_before + data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise LandingFileError(
            f"{path}: line {line}, byte column {column}: not valid UTF-8 "
            f"(byte 0x{data[err.start]:02x}); re-encode the file as UTF-8"
        ) from None


def _read_csv(path: Path, text: str) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = _csv_header(path, reader)
    if header is None:
        return pd.DataFrame()
    records: list[list[str]] = []
    lines: list[int] = []
    for record, line in _csv_records(path, reader, len(header), 0):
        records.append(record)
        lines.append(line)
    return _csv_frame(records, lines, header)


def _csv_header(path: Path, reader: Any) -> list[str] | None:
    """The header read from the first line(s) of `reader`, names stripped; None when there is no line at all."""
    try:
        header = next(reader)
    except StopIteration:
        return None
    except csv.Error as err:
        raise LandingFileError(f"{path}: line 1: malformed CSV header: {err}") from None
    header = [name.strip() for name in header]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise LandingFileError(f"{path}: line 1: duplicate column name(s) {duplicated}")
    return header


def _csv_records(path: Path, reader: Any, width: int, lines_before: int) -> Iterator[tuple[list[str], int]]:
    """Each record of a strict `csv.reader` with the file line it starts on; blank lines are skipped.

    `lines_before` is how many lines of the file precede the first line the reader was given.
    """
    record_start = lines_before + reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise LandingFileError(
                f"{path}: line {record_start}: malformed CSV ({err}); check for an unbalanced quote "
                f"in the record starting on that line"
            ) from None
        if not record:  # a blank line
            record_start = lines_before + reader.line_num + 1
            continue
        if len(record) != width:
            raise LandingFileError(
                f"{path}: line {record_start}: expected {width} fields as in the header, got {len(record)}"
            )
        yield record, record_start
        record_start = lines_before + reader.line_num + 1


def _csv_frame(records: list[list[str]], lines: list[int], header: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=header, dtype=object)
    # An empty CSV field is a missing value; a field of spaces is kept as delivered.
    frame = frame.where(frame != "", None)
    frame["_source_line"] = lines
    return frame


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    rows: list[dict] = []
    lines: list[int] = []
    for value, number in _jsonl_objects(path, text.splitlines(), 1):
        rows.append(value)
        lines.append(number)
    return _jsonl_frame(rows, lines)


def _jsonl_objects(path: Path, lines: list[str], first_number: int) -> Iterator[tuple[dict, int]]:
    """Each JSON object of `lines` (as `str.splitlines` cuts them) with its line number; blank lines skipped."""
    for number, line in enumerate(lines, start=first_number):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise LandingFileError(
                f"{path}: line {number}, column {err.colno}: invalid JSON: {err.msg}"
            ) from None
        if not isinstance(value, dict):
            raise LandingFileError(
                f"{path}: line {number}: expected a JSON object, got {type(value).__name__}"
            )
        yield value, number


def _jsonl_frame(rows: list[dict], lines: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame()
    frame["_source_line"] = lines
    return frame


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise LandingFileError(f"{path}: not a readable Parquet file: {err}") from None
    # Parquet rows have no lines; the row number (1-based) stands in for one.
    return table.append_column("_source_line", pa.array(np.arange(1, table.num_rows + 1), pa.int64()))


def coerce_column(values: pd.Series, column: str, kind: ColumnType) -> tuple[pd.Series, pd.Series]:
    """Cast one column; return (typed values, error message per row or None)."""
    present = values.notna()
    if kind == "string":
        return _type_strings(values, column)
    if kind in ("int", "float"):
        numeric = pd.to_numeric(values.map(_strip_if_str, na_action="ignore"), errors="coerce")
        bad = present & numeric.isna()
        if kind == "int":
            fractional = numeric.notna() & (numeric != numeric.round())
            bad |= fractional
            numeric = numeric.where(~fractional)
            typed = numeric.astype("Int64")
            expected = "an integer"
        else:
            typed = numeric.astype("Float64")
            expected = "a number"
    else:
        typed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
        bad = present & typed.isna()
        expected = "an ISO-8601 timestamp"
    errors = pd.Series(None, index=values.index, dtype=object)
    errors[bad] = [f"{column}: {value!r} is not {expected}" for value in values[bad]]
    return typed, errors


# Values that have no string form worth keeping: a JSON object or array, a Parquet struct, list or binary.
_NOT_TEXT = (Mapping, list, tuple, set, np.ndarray, bytes, bytearray)


def _type_strings(values: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
    """A string column: scalars (a number in a JSON file) become their str(); nested or binary values are
    type errors, so `{"text": {"a": 1}}` is quarantined, never stringified and embedded."""
    errors = pd.Series(None, index=values.index, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.astype("string"), errors
    nested = values.map(lambda v: isinstance(v, _NOT_TEXT)).astype(bool)
    if nested.any():
        errors[nested] = [f"{column}: {_short_repr(value)} is not a string" for value in values[nested]]
        values = values.where(~nested, None)
    return _as_strings(values), errors


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _strip_if_str(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _as_strings(values: pd.Series) -> pd.Series:
    """Values as pandas strings; non-string values (a number in a JSON file) become their str()."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.astype("string")
    return values.map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore").astype("string")


# What almost every delivered value looks like; these are typed by Arrow in bulk, the rest one by one.
_PLAIN_INT = r"^\s*[+-]?\d{1,18}\s*$"
_PLAIN_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
_TIMESTAMP_TYPE = pa.timestamp("ns", tz="UTC")


def _type_table(table: pa.Table, schema: Mapping[str, ColumnType], relative: str) -> pd.DataFrame:
    """Type an Arrow table by `schema` in bulk; values that are not plain go through `coerce_column`.

    Gives exactly what `_type_frame` gives for the same rows, several times faster on large files.
    """
    frame = pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    errors = pd.Series(None, index=frame.index, dtype=object)
    for name in table.column_names:
        if name == "_source_line" or name in schema:
            continue
        column = table.column(name)
        strings = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        frame[name] = _arrow_strings(column) if strings else _as_strings(column.to_pandas())
    for column, kind in schema.items():
        typed, column_errors = _type_arrow_column(table.column(column), column, kind)
        frame[column] = typed
        has_error = column_errors.notna()
        if has_error.any():
            errors[has_error] = [
                msg if pd.isna(prev) else f"{prev}; {msg}"
                for prev, msg in zip(errors[has_error], column_errors[has_error], strict=True)
            ]
    frame["_source_line"] = table.column("_source_line").to_numpy()
    frame["_source_file"] = relative
    has_error = errors.notna()
    errors[has_error] = [
        f"{msg} ({relative} line {line})"
        for msg, line in zip(errors[has_error], frame.loc[has_error, "_source_line"], strict=True)
    ]
    frame["_ingest_error"] = errors.astype("string")
    return frame[[*schema, *(c for c in frame.columns if c not in schema)]]


def _type_arrow_column(column: pa.ChunkedArray, name: str, kind: ColumnType) -> tuple[pd.Series, pd.Series]:
    import pyarrow.compute as pc

    plain_pattern = {"int": _PLAIN_INT, "timestamp": _PLAIN_TIMESTAMP}.get(kind)
    is_string = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    target = {"int": pa.int64(), "timestamp": _TIMESTAMP_TYPE}.get(kind)
    no_errors = pd.Series(None, index=range(len(column)), dtype=object)
    if kind == "string" and is_string:
        return _arrow_strings(column), no_errors
    if target is not None and not is_string:
        # Typed columns (Parquet): an exact cast is the whole job; a lossy one goes value by value.
        try:
            return _to_pandas(pc.cast(column, target), kind), no_errors
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    if plain_pattern is None or not is_string:
        return coerce_column(pd.Series(column.to_pandas()), name, kind)
    stripped = pc.utf8_trim_whitespace(column) if kind == "int" else column
    try:  # the usual case, every value plain: one cast, no pattern match
        return _to_pandas(pc.cast(stripped, target), kind), no_errors
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    plain = pc.fill_null(pc.match_substring_regex(column, plain_pattern), False)
    try:
        typed = pc.cast(pc.if_else(plain, stripped, None), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. a month 13 that looked plain
        return coerce_column(pd.Series(column.to_pandas()), name, kind)
    result = _to_pandas(typed, kind)
    errors = pd.Series(None, index=result.index, dtype=object)
    odd = (~plain.to_numpy(zero_copy_only=False)) & column.is_valid().to_numpy(zero_copy_only=False)
    if odd.any():
        odd_values = pd.Series(
            column.filter(pa.array(odd)).to_pylist(), index=result.index[odd], dtype=object
        )
        odd_typed, odd_errors = coerce_column(odd_values, name, kind)
        result[odd] = odd_typed
        errors[odd] = odd_errors
    return result, errors


def _arrow_strings(column: pa.ChunkedArray) -> pd.Series:
    # Through an object column: Arrow builds (and deduplicates) the Python strings in C++, and the cast to
    # pandas' string dtype is then a quick check; about 3x faster than StringDtype.__from_arrow__.
    return column.to_pandas().astype("string")


def _to_pandas(array: pa.ChunkedArray, kind: ColumnType) -> pd.Series:
    if kind == "int":
        return pd.Series(
            pd.array(array.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), dtype="Int64")
        )
    return pd.Series(array.to_pandas(), dtype="datetime64[ns, UTC]")


def _read_one(path: Path) -> pa.Table | pd.DataFrame:
    """A file's rows: an Arrow table on the fast paths (Parquet, plain CSV), else a pandas frame of objects."""
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    data = path.read_bytes()
    if suffix in CSV_SUFFIXES:
        fast = _read_plain_csv_with_arrow(data.removeprefix(b"\xef\xbb\xbf"))
        if fast is not None:
            return fast
    text = _decode_utf8(path, data)
    return _read_csv(path, text) if suffix in CSV_SUFFIXES else _read_jsonl(path, text)


def _quoting_is_plain(body: bytes) -> bool:
    """True when the quoting is strictly well-formed, so Arrow's parser reads the file as the strict reader.

    Arrow is lenient where Python's strict reader is not (`"abc"def` becomes `abcdef`; a quote left open at
    the end of the file is closed silently). The check runs over runs of quote characters, vectorised: only
    an odd run changes whether we are inside a quoted field, so the parity of the odd runs before a run
    says where it is. Outside a field a run must start the field (after a delimiter or line break); an odd
    one opens it, an even one is a whole empty or quote-only field and must end at a delimiter. Inside, an
    even run is escaped quotes and an odd one closes the field, so a delimiter must follow. Anything else (a
    quote inside an unquoted value, junk after a closing quote, a field left open) sends the file to the
    strict reader, which decides.
    """
    text = np.frombuffer(body, dtype=np.uint8)
    quotes = np.flatnonzero(text == ord('"'))
    if not len(quotes):
        return True
    run_starts = np.flatnonzero(np.diff(quotes, prepend=-2) != 1)
    run_lengths = np.diff(np.append(run_starts, len(quotes)))
    first, last = quotes[run_starts], quotes[run_starts + run_lengths - 1]
    delimiters = np.frombuffer(b",\r\n", dtype=np.uint8)
    # The start and the end of the body count as line breaks.
    before = np.isin(np.where(first > 0, text[np.maximum(first - 1, 0)], ord("\n")), delimiters)
    after_index = np.minimum(last + 1, len(text) - 1)
    after = np.isin(np.where(last + 1 < len(text), text[after_index], ord("\n")), delimiters)
    odd = run_lengths % 2 == 1
    if np.count_nonzero(odd) % 2:  # a field left open at the end
        return False
    inside = (np.cumsum(odd) - odd) % 2 == 1
    outside = ~inside
    well_placed = np.where(outside, before & (odd | after), ~odd | after)
    return bool(np.all(well_placed))


def _read_plain_csv_with_arrow(data: bytes) -> pa.Table | None:
    """Read a CSV with Arrow's parser when every record is exactly one line; None when it is not.

    Row i is then line i + 2, so lineage stays exact. Anything unusual (blank lines, values spanning lines,
    ragged rows, duplicate or odd headers) returns None and the strict reader handles the file, with its
    precise errors.
    """
    header_end = data.find(b"\n")
    if header_end < 0 or b"\r" in data[: header_end - 1]:  # a CR inside the header line is a line break too
        return None
    try:
        header = next(csv.reader([data[:header_end].decode("utf-8").rstrip("\r")], strict=True))
    except (csv.Error, StopIteration, UnicodeDecodeError):
        return None
    header = [name.strip() for name in header]
    if len(set(header)) != len(header) or not all(header):
        return None
    return _read_plain_csv_body_with_arrow(header, data[header_end + 1 :])


def _read_plain_csv_body_with_arrow(header: list[str], body: bytes) -> pa.Table | None:
    """`_read_plain_csv_with_arrow` after the header line: `body`'s rows numbered as if the header were line 1."""
    import pyarrow.csv as pacsv

    # Arrow drops a byte-order mark at the start of what it reads; there it is a value's first character.
    if body.startswith(b"\xef\xbb\xbf") or not _quoting_is_plain(body):
        return None
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=header),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                # As in the strict reader: an empty field is missing, anything else (spaces too) is kept.
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    import pyarrow.compute as pc

    if b"\r" in body and body.count(b"\r") != body.count(
        b"\r\n"
    ):  # a bare CR ends a line, to the strict reader
        return None
    # Each record takes one line plus the line breaks inside its quoted values; with no blank lines in the
    # file, that gives every record's first line exactly, as the strict reader reports it.
    inner_breaks = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        if not pa.types.is_string(column.type):  # an all-null column of an empty file
            continue
        inner_breaks += pc.fill_null(pc.count_substring(column, "\n"), 0).to_numpy(zero_copy_only=False)
    lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    if lines != table.num_rows + int(inner_breaks.sum()):  # blank lines: line numbers would be off
        return None
    first_lines = 2 + np.arange(table.num_rows, dtype=np.int64) + np.cumsum(inner_breaks) - inner_breaks
    return table.append_column("_source_line", pa.array(first_lines, pa.int64()))


def read_landing(
    landing_dir: Path,
    schema: Mapping[str, ColumnType],
    include: Callable[[str], bool] | None = None,
    max_extra_columns: int | None = None,
) -> tuple[pd.DataFrame, LandingReport]:
    """Read every landing file under `landing_dir` into one DataFrame typed by `schema`.

    Columns in `schema` are required in every non-empty file; extra columns are kept as strings, the first
    `max_extra_columns` of them (in file order, then column order; None: all), and the report lists those
    dropped. Three lineage columns are added: `_source_file` (path relative to the landing dir),
    `_source_line` and `_ingest_error`. Files that are not read are listed in the report with the reason.
    """
    report = LandingReport(max_extra_columns=max_extra_columns)
    files, ignored = scan_landing(landing_dir, include)
    report.ignored_reasons = {
        display_name(p.relative_to(landing_dir)): reason for p, reason in ignored.items()
    }
    report.ignored_files = list(report.ignored_reasons)
    extras = _ExtraColumns(schema, max_extra_columns)
    report.extra_columns = extras.kept

    def read_typed(path: Path) -> pd.DataFrame | None:
        if path.stat().st_size == 0:
            return None
        rows = _read_one(path)
        names = rows.column_names if isinstance(rows, pa.Table) else list(rows.columns)
        if len(rows) == 0 and len(names) <= 1:
            return _empty_frame(schema, [])
        _check_required(path, schema, names)
        # Dropped before typing: a file of thousands of columns costs no more than one within the cap.
        keep = extras.keep(names, len(rows))
        relative = str(path.relative_to(landing_dir))
        if isinstance(rows, pa.Table):
            return _type_table(rows.select(keep), schema, relative)
        rows = rows[keep]
        rows["_source_file"] = relative
        return _type_frame(rows, schema, relative)

    typed = [read_typed(path) for path in files]
    extra_columns = extras.kept
    report.dropped_columns = list(extras.dropped)
    frames: list[pd.DataFrame] = []
    for path, frame in zip(files, typed, strict=True):
        relative = str(path.relative_to(landing_dir))
        report.files.append(relative)
        report.rows_per_file[relative] = 0 if frame is None else len(frame)
        if frame is None:
            report.empty_files.append(relative)
        elif len(frame):
            frames.append(frame)

    columns = [*schema, *extra_columns, *LINEAGE_COLUMNS]
    if not frames:
        return _empty_frame(schema, extra_columns), report
    combined = pd.concat([_with_columns(f, columns) for f in frames], ignore_index=True)
    for name in extra_columns:
        combined[name] = _as_strings(combined[name])
    combined["_source_file"] = combined["_source_file"].astype("string")
    combined["_source_line"] = combined["_source_line"].astype("int64")
    combined["_ingest_error"] = combined["_ingest_error"].astype("string")
    report.rows_with_type_errors = int(combined["_ingest_error"].notna().sum())
    return combined, report


class _ExtraColumns:
    """Which extra columns (not in the schema) are kept: the first `cap` seen, in order of appearance."""

    def __init__(self, schema: Mapping[str, ColumnType], cap: int | None) -> None:
        self.schema = schema
        self.cap = cap
        self.kept: list[str] = []
        self._kept: set[str] = set()
        self.dropped: dict[str, None] = {}  # an ordered set

    def keep(self, names: list[str], rows: int) -> list[str]:
        """`names` without the extra ones beyond the cap; names of a file (or chunk) without rows add none."""
        keep = []
        for name in names:
            if name not in self.schema and name not in LINEAGE_COLUMNS and name not in self._kept:
                if not rows or (self.cap is not None and len(self._kept) >= self.cap):
                    if rows:
                        self.dropped[name] = None
                    continue
                self._kept.add(name)
                self.kept.append(name)
            keep.append(name)
        return keep


def _check_required(path: Path, schema: Mapping[str, ColumnType], names: list[str]) -> None:
    missing = [name for name in schema if name not in names]
    if missing:
        found = [c for c in names if c != "_source_line"]
        more = f" and {len(found) - 20} more" if len(found) > 20 else ""
        raise LandingFileError(f"{path}: missing required column(s) {missing}; found {found[:20]}{more}")


def _with_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    # An extra column one file lacks is missing there: typed as strings so concat keeps the column's type.
    for name in columns:
        if name not in frame.columns:
            frame[name] = pd.array([pd.NA] * len(frame), dtype="string")
    return frame[columns]


def _type_frame(frame: pd.DataFrame, schema: Mapping[str, ColumnType], relative: str) -> pd.DataFrame:
    errors = pd.Series(None, index=frame.index, dtype=object)
    for column, kind in schema.items():
        typed, column_errors = coerce_column(frame[column], column, kind)
        frame[column] = typed
        has_error = column_errors.notna()
        errors[has_error] = [
            msg if pd.isna(prev) else f"{prev}; {msg}"
            for prev, msg in zip(errors[has_error], column_errors[has_error], strict=True)
        ]
    has_error = errors.notna()
    errors[has_error] = [
        f"{msg} ({relative} line {line})"
        for msg, line in zip(errors[has_error], frame.loc[has_error, "_source_line"], strict=True)
    ]
    frame["_ingest_error"] = errors.astype("string")
    return frame


def _empty_frame(schema: Mapping[str, ColumnType], extra_columns: list[str]) -> pd.DataFrame:
    dtypes = {"string": "string", "int": "Int64", "float": "Float64", "timestamp": "datetime64[ns, UTC]"}
    frame = pd.DataFrame({name: pd.Series(dtype=dtypes[kind]) for name, kind in schema.items()})
    for name in extra_columns:
        frame[name] = pd.Series(dtype="string")
    frame["_source_file"] = pd.Series(dtype="string")
    frame["_source_line"] = pd.Series(dtype="int64")
    frame["_ingest_error"] = pd.Series(dtype="string")
    return frame


def report_metadata(
    context: dg.AssetExecutionContext, report: LandingReport, max_extra_columns: int | None
) -> dict[str, Any]:
    """What a raw asset records about its landing read (files, ignored files with their reasons, extra and
    dropped columns), logging a warning for whatever was not read; a sample of dropped names, cut short, so the
    metadata stays small however wide the delivery was."""
    if report.ignored_reasons:
        context.log.warning(f"landing files not read: {report.ignored_reasons}")
    dropped = report.dropped_columns
    if dropped:
        context.log.warning(
            f"{len(dropped)} extra columns dropped beyond the cap of {max_extra_columns} "
            f"(PLATFORM_LANDING_MAX_EXTRA_COLUMNS), e.g. {dropped[:5]}"
        )
    return {
        "files": dg.MetadataValue.json(report.rows_per_file),
        "empty_files": dg.MetadataValue.json(report.empty_files),
        "ignored_files": dg.MetadataValue.json(report.ignored_reasons),
        "extra_columns": dg.MetadataValue.json(report.extra_columns),
        "max_extra_columns": max_extra_columns,
        "dropped_extra_columns": len(dropped),
        "dropped_extra_columns_sample": dg.MetadataValue.json([name[:100] for name in dropped[:20]]),
    }


# ---------------------------------------------------------------------------------------------------------------
# Streaming one landing file in chunks, so that a delivery of millions of rows is never held whole in memory.

DEFAULT_BLOCK_BYTES = 16 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


class LandingFileStream(Iterator[pd.DataFrame]):
    """The typed rows of ONE landing file, in chunks of at most `chunk_rows` rows, in file order.

    Each chunk has the columns and dtypes that `read_landing` gives for the file alone: the schema's columns
    (typed), the extra columns kept so far (strings), `_source_file` (string), `_source_line` (int64) and
    `_ingest_error` (string). Concatenated, the chunks are `read_landing(landing_dir, schema, include=<only
    this file>, max_extra_columns=...)`'s frame, row for row. A file without rows (empty, header only, or not
    read) yields one empty frame with the schema's columns, so a writer always learns the schema.

    Memory stays bounded by the chunk and about one block of `block_bytes` (16 MiB) of the file for CSV and
    JSON Lines (a block is longer only for a record that is), or one Parquet row group, whatever the file's
    size. CSV blocks go through the Arrow fast path where it applies and the strict reader where it does not,
    block by block, with exact line numbers either way.

    `report` (a `LandingReport` for this file alone) fills in as the chunks are yielded and is final once
    `complete` is True (the iteration ended without error). Errors are `read_landing`'s (`LandingFileError`
    naming the file and line), raised when the bad part is reached, so chunks may have been yielded before
    one: commit nothing until the iteration ends. Two differences, both for broken files: in a file of
    several blocks the first problem in file order is reported (`read_landing` reports a UTF-8 error
    anywhere before a malformed record); and a required column missing from a CSV or Parquet file is
    reported after the rest of the file has been checked, as `read_landing` does, but without yielding rows.

    JSON Lines rows may bring new keys: an extra column first seen in a later chunk is kept if the cap still
    allows (first-seen order, as `read_landing`), so a later chunk may have columns an earlier one lacks;
    union the schemas by name. A required column first seen in a later chunk is null in the earlier ones;
    one never seen fails the file at its end.

    Use it as an iterator, or in a `with` block to close the file if you stop early.
    """

    def __init__(
        self,
        path: Path,
        landing_dir: Path,
        schema: Mapping[str, ColumnType],
        *,
        max_extra_columns: int | None = None,
        chunk_rows: int = 200_000,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        if chunk_rows < 1 or block_bytes < 1:
            raise ValueError(
                f"chunk_rows and block_bytes must be positive, got {chunk_rows} and {block_bytes}"
            )
        try:
            self.relative = str(path.relative_to(landing_dir))
        except ValueError:
            raise ValueError(f"{path} is not under the landing directory {landing_dir}") from None
        self.path = path
        self.landing_dir = landing_dir
        self.schema = dict(schema)
        self.chunk_rows = chunk_rows
        self.block_bytes = block_bytes
        self.report = LandingReport(max_extra_columns=max_extra_columns)
        # True once every chunk has been yielded without error: only then is `report` the file's.
        self.complete = False
        self._chunks = self._read()

    def __next__(self) -> pd.DataFrame:
        return next(self._chunks)

    def close(self) -> None:
        """Stop early: close the file."""
        self._chunks.close()

    def __enter__(self) -> LandingFileStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _read(self) -> Iterator[pd.DataFrame]:
        path, relative, report, schema = self.path, self.relative, self.report, self.schema
        reason = self._refusal()
        if reason is not None:
            name = display_name(relative)
            report.ignored_reasons = {name: reason}
            report.ignored_files = [name]
            yield from self._finish_empty()
            return
        report.files = [relative]
        report.rows_per_file = {relative: 0}
        if path.stat().st_size == 0:
            report.empty_files = [relative]
            yield from self._finish_empty()
            return
        extras = _ExtraColumns(schema, report.max_extra_columns)
        report.extra_columns = extras.kept
        seen: dict[str, None] = {}  # every column name met so far, in order (JSON Lines keys may come late)
        # CSV and Parquet name every column up front: a required one missing stays missing.
        fixed_columns = path.suffix.lower() not in JSONL_SUFFIXES
        missing_for_good = False
        for raw in self._raw_chunks():
            names = raw.column_names if isinstance(raw, pa.Table) else list(raw.columns)
            seen.update(dict.fromkeys(names))
            if len(raw) == 0 or missing_for_good:
                continue
            absent = [name for name in schema if name not in names]
            if absent and fixed_columns:
                # Read on without typing, so that a malformed part later in the file is reported first,
                # as `read_landing` does; the missing column is reported at the end.
                missing_for_good = True
                continue
            keep = extras.keep(names, len(raw))
            if isinstance(raw, pa.Table):
                frame = _type_table(raw.select(keep), schema, relative)
            else:
                raw = raw[keep]
                for name in absent:  # a key no row of this chunk has, met earlier or to come: missing here
                    raw[name] = pd.Series(np.nan, index=raw.index, dtype=object)
                raw["_source_file"] = relative
                frame = _type_frame(raw, schema, relative)
            frame = _finish_chunk(frame, [*schema, *extras.kept, *LINEAGE_COLUMNS], extras.kept)
            report.rows_per_file[relative] += len(frame)
            report.rows_with_type_errors += int(frame["_ingest_error"].notna().sum())
            report.dropped_columns = list(extras.dropped)
            yield frame
        names = list(seen)
        if report.rows_per_file[relative] or any(name != "_source_line" for name in names):
            _check_required(path, schema, names)
        if not report.rows_per_file[relative]:
            yield from self._finish_empty()
            return
        self.complete = True

    def _finish_empty(self) -> Iterator[pd.DataFrame]:
        # Complete before the yield: a caller that stops after the last chunk still sees the final report.
        self.complete = True
        yield _empty_frame(self.schema, [])

    def _refusal(self) -> str | None:
        relative = Path(self.relative)
        if _is_hidden_or_partial(relative):
            # `read_landing` passes over these silently; a file asked for by name is never skipped silently.
            return "hidden or partial file (a transfer in progress)"
        if not self.path.exists() and not self.path.is_symlink():
            raise LandingFileError(
                f"{self.path}: no such landing file (moved or deleted since it was listed)"
            )
        return _refusal(self.path, relative, self.landing_dir.resolve())

    def _raw_chunks(self) -> Iterator[pa.Table | pd.DataFrame]:
        """The file's rows untyped (an Arrow table or a frame of objects, with `_source_line`), a chunk at a
        time; a first chunk without rows may come to give the column names."""
        suffix = self.path.suffix.lower()
        if suffix in PARQUET_SUFFIXES:
            yield from _parquet_chunks(self.path, self.chunk_rows)
            return
        with self.path.open("rb") as file:
            blocks = _Blocks(file, self.block_bytes)
            if suffix in CSV_SUFFIXES:
                yield from _csv_chunks(self.path, blocks, self.chunk_rows)
            else:
                yield from _jsonl_chunks(self.path, blocks, self.chunk_rows)


def iter_landing_file(
    path: Path,
    landing_dir: Path,
    schema: Mapping[str, ColumnType],
    *,
    max_extra_columns: int | None = None,
    chunk_rows: int = 200_000,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> LandingFileStream:
    """Stream one landing file as typed DataFrames of at most `chunk_rows` rows (see `LandingFileStream`).

    The result is an iterator of frames; its `.report` is the file's `LandingReport`, final once
    `.complete` is True::

        stream = iter_landing_file(path, landing_dir, REVIEW_SCHEMA, chunk_rows=100_000)
        for chunk in stream:
            write(chunk)
        report = stream.report
    """
    return LandingFileStream(
        path,
        landing_dir,
        schema,
        max_extra_columns=max_extra_columns,
        chunk_rows=chunk_rows,
        block_bytes=block_bytes,
    )


def _finish_chunk(frame: pd.DataFrame, columns: list[str], extra_columns: list[str]) -> pd.DataFrame:
    """A typed chunk with `read_landing`'s column order and dtypes."""
    for name in columns:
        if name not in frame.columns:
            frame[name] = pd.array([pd.NA] * len(frame), dtype="string")
    for name in extra_columns:
        frame[name] = _as_strings(frame[name])
    frame["_source_file"] = frame["_source_file"].astype("string")
    frame["_source_line"] = frame["_source_line"].astype("int64")
    frame["_ingest_error"] = frame["_ingest_error"].astype("string")
    return frame.reindex(columns=columns)


class _Blocks:
    """A file read in blocks of about `block_bytes` that end just after a line feed, so that no line (and no
    UTF-8 character) is cut; a block longer than that only for a line, or a record, that is longer."""

    def __init__(self, file: IO[bytes], block_bytes: int) -> None:
        self._file = file
        self._block_bytes = block_bytes
        self._pending = b""
        self._eof = False

    def next(self, cut: Callable[[bytes], int]) -> bytes | None:
        """The next block: the bytes before `cut(bytes)` (0 when there is no place to cut yet: read more);
        the rest of the file at its end; None after that."""
        grow = False
        while True:
            if not self._eof and (grow or len(self._pending) < self._block_bytes):
                size = self._block_bytes if grow else self._block_bytes - len(self._pending)
                more = self._file.read(size)
                if more:
                    self._pending += more
                else:
                    self._eof = True
            if self._eof:
                block, self._pending = self._pending, b""
                return block or None
            end = cut(self._pending)
            if end > 0:
                block, self._pending = self._pending[:end], self._pending[end:]
                return block
            grow = True

    def unread(self, block: bytes) -> None:
        self._pending = block + self._pending

    def each(self, cut: Callable[[bytes], int]) -> Iterator[bytes]:
        while (block := self.next(cut)) is not None:
            yield block


def _after_first_line_feed(data: bytes) -> int:
    return data.find(b"\n") + 1


def _after_last_line_feed(data: bytes) -> int:
    return data.rfind(b"\n") + 1


def _after_last_line_feed_outside_quotes(data: bytes) -> int:
    """After the last line feed with an even number of quotes before it: where a record ends when the quoting
    is well-formed (checked afterwards by `_quoting_is_plain`; where it is not, the strict reader goes on)."""
    text = np.frombuffer(data, dtype=np.uint8)
    line_feeds = np.flatnonzero(text == ord("\n"))
    quotes = np.flatnonzero(text == ord('"'))
    outside = line_feeds[np.searchsorted(quotes, line_feeds) % 2 == 0]
    return int(outside[-1]) + 1 if len(outside) else 0


def _csv_line_count(block: bytes) -> int:
    """Lines in a block, as the csv module counts them: CR LF, a bare CR and a bare LF each end one."""
    return block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")


def _plain_header(line: bytes) -> list[str] | None:
    """The names of a one-line header the Arrow fast path takes as is; None for anything unusual."""
    if not line.endswith(b"\n") or b"\r" in line[:-2]:  # a CR inside the header line is a line break too
        return None
    try:
        header = next(csv.reader([line[:-1].decode("utf-8").rstrip("\r")], strict=True))
    except (csv.Error, StopIteration, UnicodeDecodeError):
        return None
    header = [name.strip() for name in header]
    if not header or len(set(header)) != len(header) or not all(header):
        return None
    return header


def _csv_chunks(path: Path, blocks: _Blocks, chunk_rows: int) -> Iterator[pa.Table | pd.DataFrame]:
    """A CSV file's rows, with exact line numbers: each block that starts and ends at a record boundary
    through the Arrow fast path (with the header line before it), else through the strict reader.

    A block ends at its last line feed outside quotes by quote parity, which is a record boundary when the
    block's quoting is well-formed (the fast path checks it). Where the fast path declines, the strict reader
    reads on from the block's start, line by line, and hands back to the fast path at the first record that
    ends a block: one stray quote (`15" screen` in an unquoted value) costs one block of strict reading, and
    a quoted value spanning blocks is read whole.
    """
    import pyarrow.compute as pc

    head = blocks.next(_after_first_line_feed)
    if head is None:
        return
    header = _plain_header(head.removeprefix(_BOM))
    if header is None:  # an unusual header: the strict reader reads the whole file
        blocks.unread(head)
        yield from _strict_csv_run(path, blocks, chunk_rows, None, 0, 0)
        return
    yield _csv_frame([], [], header)
    lines_before = newlines_before = 1  # before the next block: lines as the csv module counts them; LFs
    while (block := blocks.next(_after_last_line_feed)) is not None:
        end = _after_last_line_feed_outside_quotes(block)
        if 0 < end < len(block):
            blocks.unread(block[end:])
            block = block[:end]
        table = _read_plain_csv_body_with_arrow(header, block) if end else None
        if table is None:
            blocks.unread(block)
            position = yield from _strict_csv_run(
                path, blocks, chunk_rows, header, lines_before, newlines_before
            )
            if position is None:
                return
            lines_before, newlines_before = position
            continue
        last = table.num_columns - 1  # `_source_line`, numbered as if the block followed the header
        table = table.set_column(last, "_source_line", pc.add(table.column(last), lines_before - 1))
        for start in range(0, table.num_rows, chunk_rows):
            yield table.slice(start, chunk_rows)
        lines_before += _csv_line_count(block)
        newlines_before += block.count(b"\n")


def _strict_csv_run(
    path: Path,
    blocks: _Blocks,
    chunk_rows: int,
    header: list[str] | None,
    lines_before: int,
    newlines_before: int,
) -> Generator[pd.DataFrame, None, tuple[int, int] | None]:
    """Records of the strict reader from the start of the next block, `chunk_rows` at a time.

    With `header` None the blocks start the file, the header is read from them and the run goes to the end
    of the file. Otherwise the run stops after the first record that ends a block and returns the counts of
    lines before the next one (as the csv module counts them, and line feeds), for the fast path to go on;
    None at the end of the file.
    """
    lines = _CsvLines(path, blocks, newlines_before, at_start=header is None)
    reader = csv.reader(lines, strict=True)
    hand_back = header is not None
    if header is None:
        header = _csv_header(path, reader)
        if header is None:
            return None
        yield _csv_frame([], [], header)
    records: list[list[str]] = []
    numbers: list[int] = []
    ended_block = False
    for record, number in _csv_records(path, reader, len(header), lines_before):
        records.append(record)
        numbers.append(number)
        if len(records) == chunk_rows:
            yield _csv_frame(records, numbers, header)
            records, numbers = [], []
        if hand_back and lines.block_end:
            ended_block = True
            break
    if records:
        yield _csv_frame(records, numbers, header)
    return (lines_before + reader.line_num, lines.newlines_before) if ended_block else None


class _CsvLines:
    """The lines of the next blocks, decoded and cut as `io.StringIO(text, newline="")` cuts them (what the
    csv module expects), UTF-8 errors naming the file's line. `block_end` tells whether the last line given
    ended a block: a record that ends there ends the block too."""

    def __init__(self, path: Path, blocks: _Blocks, newlines_before: int, at_start: bool) -> None:
        self.path = path
        self.blocks = blocks
        self.newlines_before = newlines_before
        self.at_start = at_start
        self.block_end = False

    def __iter__(self) -> Iterator[str]:
        for block in self.blocks.each(_after_last_line_feed):
            text = _decode_block(self.path, block, self.newlines_before)
            if self.at_start:
                text, self.at_start = text.removeprefix("\ufeff"), False
            self.newlines_before += block.count(b"\n")
            lines = iter(io.StringIO(text, newline=""))
            line = next(lines, None)
            while line is not None:
                following = next(lines, None)
                self.block_end = following is None
                yield line
                line = following


def _jsonl_chunks(path: Path, blocks: _Blocks, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A JSON Lines file's objects, `chunk_rows` at a time, numbered as `_read_jsonl` numbers them."""
    rows: list[dict] = []
    numbers: list[int] = []
    first_number, newlines_before, at_start = 1, 0, True
    for block in blocks.each(_after_last_line_feed):
        text = _decode_block(path, block, newlines_before)
        if at_start:
            text, at_start = text.removeprefix("\ufeff"), False
        # Each block ends with a line feed, so its lines are the file's (`splitlines` cuts at more than LF).
        lines = text.splitlines()
        for value, number in _jsonl_objects(path, lines, first_number):
            rows.append(value)
            numbers.append(number)
            if len(rows) == chunk_rows:
                yield _jsonl_frame(rows, numbers)
                rows, numbers = [], []
        first_number += len(lines)
        newlines_before += block.count(b"\n")
    if rows:
        yield _jsonl_frame(rows, numbers)


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pa.Table]:
    """A Parquet file's rows in batches (never more than a row group in memory); the row number (1-based)
    stands in for a line, as in `_read_parquet`."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise LandingFileError(f"{path}: not a readable Parquet file: {err}") from None
    with parquet:
        yield parquet.schema_arrow.empty_table().append_column("_source_line", pa.array([], pa.int64()))
        batches = parquet.iter_batches(batch_size=chunk_rows)
        first = 1
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as err:
                raise LandingFileError(f"{path}: not a readable Parquet file: {err}") from None
            lines = pa.array(np.arange(first, first + batch.num_rows), pa.int64())
            first += batch.num_rows
            yield pa.Table.from_batches([batch]).append_column("_source_line", lines)
