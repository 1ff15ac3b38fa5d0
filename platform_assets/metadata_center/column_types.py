"""The column types a registration may declare, and their Arrow equivalents.

The registry rejects a type it does not know (422 naming the column), so everything downstream — the SDK
reading a CSV, the generic cleaning of registered datasets — can rely on mapping every declared type.
Light on purpose: pyarrow is imported only by `arrow_type`.
"""

from __future__ import annotations

import re
from typing import Any

# Canonical name for each accepted spelling (Hive/Spark/SQL dialects as Alldata emits them).
_SCALARS: dict[str, str] = {
    "tinyint": "int8",
    "smallint": "int16",
    "int": "int32",
    "integer": "int32",
    "bigint": "int64",
    "long": "int64",
    "float": "float32",
    "real": "float32",
    "double": "float64",
    "double precision": "float64",
    "boolean": "bool",
    "bool": "bool",
    "string": "string",
    "text": "string",
    "varchar": "string",
    "char": "string",
    "date": "date",
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "timestamptz": "timestamptz",
    "timestamp with time zone": "timestamptz",
    "binary": "binary",
    "bytes": "binary",
    "json": "string",
}
_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d{1,2})\s*(?:,\s*(\d{1,2})\s*)?\)$")
_SIZED_STRING = re.compile(r"^(?:varchar|char)\s*\(\s*\d+\s*\)$")
_ARRAY = re.compile(r"^(?:array|list)\s*<\s*(.+)\s*>$")

TYPE_HELP = (
    "one of " + ", ".join(sorted(_SCALARS)) + ", decimal(p,s), numeric(p,s), varchar(n), char(n), array<T>"
)


def normalize_type(type_name: str) -> str:
    """The canonical form of a declared column type; ValueError when the type is unknown.

    Canonical forms: int8..int64, float32, float64, bool, string, date, timestamp, timestamptz, binary,
    decimal(p,s), array<T>.
    """
    text = " ".join(type_name.strip().lower().split())
    if text in _SCALARS:
        return _SCALARS[text]
    if _SIZED_STRING.match(text):
        return "string"
    decimal = _DECIMAL.match(text)
    if decimal:
        precision = int(decimal.group(1))
        scale = int(decimal.group(2) or 0)
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"decimal precision must be 1..38 and scale <= precision, got {type_name!r}")
        return f"decimal({precision},{scale})"
    array = _ARRAY.match(text)
    if array:
        return f"array<{normalize_type(array.group(1))}>"
    raise ValueError(f"unknown column type {type_name!r}: expected {TYPE_HELP}")


def arrow_type(type_name: str) -> Any:
    """The pyarrow DataType of a declared column type."""
    import pyarrow as pa

    canonical = normalize_type(type_name)
    simple = {
        "int8": pa.int8(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "binary": pa.binary(),
    }
    if canonical in simple:
        return simple[canonical]
    if canonical.startswith("decimal("):
        precision, scale = (int(p) for p in canonical[len("decimal(") : -1].split(","))
        return pa.decimal128(precision, scale)
    inner = canonical[len("array<") : -1]
    return pa.list_(arrow_type(inner))
