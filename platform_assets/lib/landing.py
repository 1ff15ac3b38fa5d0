"""Reading the files delivered to a landing directory into one typed DataFrame.

Every CSV, JSON Lines and Parquet file under the directory is read; types are enforced column by column.
A file that cannot be parsed at all raises `LandingFileError` naming the file and line. A value that does not
fit its column's type does not fail the run: the row is kept, the value becomes null, and `_ingest_error`
records the column, the original value and the file/line, so the cleaning layer can quarantine it with that
reason. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

ColumnType = Literal["string", "int", "float", "timestamp"]

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
LINEAGE_COLUMNS = ["_source_file", "_source_line", "_ingest_error"]

# Large review bodies are legitimate; the cleaning layer decides what is too long.
csv.field_size_limit(64 * 1024 * 1024)


class LandingFileError(ValueError):
    """A landing file that cannot be read; the message names the file and, where known, the line and column."""


@dataclass
class LandingReport:
    """What one read of a landing directory found."""

    files: list[str] = field(default_factory=list)
    rows_per_file: dict[str, int] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    rows_with_type_errors: int = 0


def _is_hidden_or_partial(path: Path) -> bool:
    # rsync and other transfer tools write partial files under dotted or suffixed names.
    return any(part.startswith(".") for part in path.parts) or path.suffix in (".tmp", ".partial", ".part")


def list_landing_files(
    landing_dir: Path, include: Callable[[str], bool] | None = None
) -> tuple[list[Path], list[Path]]:
    """Return (readable files, ignored files) under `landing_dir`, sorted for a deterministic row order.

    `include` filters on the path relative to `landing_dir` (e.g. the files of one day's partition).
    """
    readable: list[Path] = []
    ignored: list[Path] = []
    if not landing_dir.exists():
        return readable, ignored
    for path in sorted(p for p in landing_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(landing_dir)
        if _is_hidden_or_partial(relative) or (include and not include(str(relative))):
            continue
        if path.suffix.lower() in CSV_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES:
            readable.append(path)
        else:
            ignored.append(path)
    return readable, ignored


def _decode_utf8(path: Path, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise LandingFileError(
            f"{path}: line {line}, byte column {column}: not valid UTF-8 "
            f"(byte 0x{data[err.start]:02x}); re-encode the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _read_csv(path: Path, text: str) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return pd.DataFrame()
    except csv.Error as err:
        raise LandingFileError(f"{path}: line 1: malformed CSV header: {err}") from None
    header = [name.strip() for name in header]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise LandingFileError(f"{path}: line 1: duplicate column name(s) {duplicated}")
    records: list[list[str]] = []
    lines: list[int] = []
    record_start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise LandingFileError(
                f"{path}: line {record_start}: malformed CSV ({err}); check for an unbalanced quote "
                f"in the record starting on that line"
            ) from None
        if not record:  # a blank line
            record_start = reader.line_num + 1
            continue
        if len(record) != len(header):
            raise LandingFileError(
                f"{path}: line {record_start}: expected {len(header)} fields as in the header, got {len(record)}"
            )
        records.append(record)
        lines.append(record_start)
        record_start = reader.line_num + 1
    frame = pd.DataFrame(records, columns=header, dtype=object)
    # An empty CSV field is a missing value; a field of spaces is kept as delivered.
    frame = frame.where(frame != "", None)
    frame["_source_line"] = lines
    return frame


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    rows: list[dict] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
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
        rows.append(value)
        lines.append(number)
    frame = pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame()
    frame["_source_line"] = lines
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise LandingFileError(f"{path}: not a readable Parquet file: {err}") from None
    frame = table.to_pandas()
    # Parquet rows have no lines; the row number (1-based) stands in for one.
    frame["_source_line"] = range(1, len(frame) + 1)
    return frame


def coerce_column(values: pd.Series, column: str, kind: ColumnType) -> tuple[pd.Series, pd.Series]:
    """Cast one column; return (typed values, error message per row or None)."""
    present = values.notna()
    if kind == "string":
        typed = values.map(lambda v: v if v is None or isinstance(v, str) else str(v), na_action="ignore")
        return typed.astype("string"), pd.Series(None, index=values.index, dtype=object)
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


def _strip_if_str(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _read_one(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    text = _decode_utf8(path, path.read_bytes())
    return _read_csv(path, text) if suffix in CSV_SUFFIXES else _read_jsonl(path, text)


def read_landing(
    landing_dir: Path, schema: Mapping[str, ColumnType], include: Callable[[str], bool] | None = None
) -> tuple[pd.DataFrame, LandingReport]:
    """Read every landing file under `landing_dir` into one DataFrame typed by `schema`.

    Columns in `schema` are required in every non-empty file; extra columns are kept as strings. Three lineage
    columns are added: `_source_file` (path relative to the landing dir), `_source_line` and `_ingest_error`.
    """
    report = LandingReport()
    files, ignored = list_landing_files(landing_dir, include)
    report.ignored_files = [str(p.relative_to(landing_dir)) for p in ignored]
    frames: list[pd.DataFrame] = []
    for path in files:
        relative = str(path.relative_to(landing_dir))
        report.files.append(relative)
        if path.stat().st_size == 0:
            report.empty_files.append(relative)
            report.rows_per_file[relative] = 0
            continue
        frame = _read_one(path)
        if frame.empty and len(frame.columns) <= 1:
            report.rows_per_file[relative] = 0
            continue
        missing = [name for name in schema if name not in frame.columns]
        if missing:
            raise LandingFileError(
                f"{path}: missing required column(s) {missing}; found {[c for c in frame.columns if c != '_source_line']}"
            )
        frame["_source_file"] = relative
        frames.append(_type_frame(frame, schema, relative))
        report.rows_per_file[relative] = len(frame)

    extra_columns: list[str] = []
    for frame in frames:
        extra_columns += [
            c
            for c in frame.columns
            if c not in schema and c not in LINEAGE_COLUMNS and c not in extra_columns
        ]
    columns = [*schema, *extra_columns, *LINEAGE_COLUMNS]
    if not frames:
        return _empty_frame(schema, extra_columns), report
    combined = pd.concat([f.reindex(columns=columns) for f in frames], ignore_index=True)
    for name in extra_columns:
        combined[name] = (
            combined[name]
            .map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore")
            .astype("string")
        )
    combined["_source_file"] = combined["_source_file"].astype("string")
    combined["_source_line"] = combined["_source_line"].astype("int64")
    combined["_ingest_error"] = combined["_ingest_error"].astype("string")
    report.rows_with_type_errors = int(combined["_ingest_error"].notna().sum())
    return combined, report


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
    frame["_ingest_error"] = errors
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
