"""Generic, schema-driven handling of a registered dataset: compare with the registration, type, clean."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from platform_assets.lib import quality as q
from platform_assets.lib.landing import ColumnType, coerce_column
from platform_assets.metadata_center.column_types import normalize_type

REJECT_REASONS = ("invalid_type", "missing_value", "duplicate_row")
# Extra column names shown in metadata: the first few, each shortened, and the count. A file whose header has
# none of the registered columns never gets here (the SDK refuses it), so these names come from a file that
# parsed as the registered format; the caps keep a very wide file from flooding the event log.
SHOWN_EXTRA_COLUMNS = 20
SHOWN_NAME_LENGTH = 64


def landing_kind(declared: str) -> ColumnType:
    """How a declared column type is enforced (ints, numbers, timestamps; everything else is text)."""
    canonical = normalize_type(declared)
    if canonical.startswith("int"):
        return "int"
    if canonical.startswith(("float", "decimal")):
        return "float"
    if canonical in ("date", "timestamp", "timestamptz"):
        return "timestamp"
    return "string"


def _family(kind: str) -> str:
    return {"int": "number", "float": "number"}.get(kind, kind)


def arrow_kind(dtype: Any) -> str:
    """The enforcement kind a pandas/arrow column already has."""
    text = str(dtype).lower()
    if "int" in text:
        return "int"
    if "float" in text or "double" in text or "decimal" in text:
        return "float"
    if "datetime" in text or "timestamp" in text or "date" in text:
        return "timestamp"
    return "string"


@dataclass
class RegistrationComparison:
    """How the data found at storage_path differs from what was registered."""

    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    type_differences: list[str] = field(default_factory=list)
    row_count: tuple[int, int] | None = None  # (registered, found) when they differ
    size_bytes: tuple[int, int] | None = None

    @property
    def blocking_differences(self) -> list[str]:
        """Differences that mean the data is not what was registered."""
        problems = [f"missing column {name!r}" for name in self.missing_columns]
        if self.row_count:
            problems.append(f"row_count registered {self.row_count[0]}, found {self.row_count[1]}")
        if self.size_bytes:
            problems.append(f"size_bytes registered {self.size_bytes[0]}, found {self.size_bytes[1]}")
        return problems

    def as_metadata(self) -> dict[str, Any]:
        """JSON-friendly summary (at most SHOWN_EXTRA_COLUMNS extra column names, with their count)."""
        return {
            "missing_columns": self.missing_columns,
            "extra_columns": [_short(name) for name in self.extra_columns[:SHOWN_EXTRA_COLUMNS]],
            "extra_column_count": len(self.extra_columns),
            "type_differences": self.type_differences,
            "row_count": list(self.row_count) if self.row_count else None,
            "size_bytes": list(self.size_bytes) if self.size_bytes else None,
        }


def _short(name: str) -> str:
    return name if len(name) <= SHOWN_NAME_LENGTH else f"{name[: SHOWN_NAME_LENGTH - 1]}…"


def compare(registration: dict[str, Any], frame: pd.DataFrame, size_bytes: int) -> RegistrationComparison:
    """Compare data with its registration: columns, type families, row count and total file size."""
    declared = {c["name"]: c["type"] for c in registration["schema"]["columns"]}
    result = RegistrationComparison(
        missing_columns=[name for name in declared if name not in frame.columns],
        extra_columns=[str(name) for name in frame.columns if name not in declared],
    )
    for name, declared_type in declared.items():
        if name in frame.columns:
            want, have = landing_kind(declared_type), arrow_kind(frame[name].dtype)
            if _family(want) != _family(have) and have != "string":
                result.type_differences.append(
                    f"{name}: registered {declared_type}, found {frame[name].dtype}"
                )
            elif have == "string" and want != "string":
                result.type_differences.append(
                    f"{name}: registered {declared_type}, found text (values are cast in cleaning)"
                )
    if registration.get("row_count") is not None and int(registration["row_count"]) != len(frame):
        result.row_count = (int(registration["row_count"]), len(frame))
    if registration.get("size_bytes") is not None and int(registration["size_bytes"]) != size_bytes:
        result.size_bytes = (int(registration["size_bytes"]), size_bytes)
    return result


def clean_by_schema(registration: dict[str, Any], raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type every declared column; rows with a value that does not fit, a null in a non-nullable column, or
    that repeat an earlier row go to quarantine with reject_reason and reject_detail."""
    columns = registration["schema"]["columns"]
    typed = raw.reset_index(drop=True).copy()
    reasons = pd.Series(None, index=typed.index, dtype=object)
    details = pd.Series(None, index=typed.index, dtype=object)
    for column in columns:
        name = column["name"]
        if name not in typed.columns:
            continue
        values, errors = coerce_column(
            typed[name].astype(object).where(typed[name].notna(), None), name, landing_kind(column["type"])
        )
        typed[name] = values
        fresh = errors.notna() & reasons.isna()
        reasons[fresh], details[fresh] = "invalid_type", errors[fresh]
        if column.get("nullable") is False:
            missing = values.isna() & reasons.isna()
            reasons[missing], details[missing] = (
                "missing_value",
                f"{name} is null but registered as not nullable",
            )
    duplicated = typed.duplicated(keep="first") & reasons.isna()
    reasons[duplicated], details[duplicated] = "duplicate_row", "repeats an earlier row"
    rejected = reasons.notna()
    quarantine = raw.reset_index(drop=True).loc[rejected].astype(str).copy()
    quarantine["reject_reason"] = reasons[rejected].astype(str)
    quarantine["reject_detail"] = details[rejected].astype(str)
    return typed.loc[~rejected].reset_index(drop=True), quarantine.reset_index(drop=True)


def suite_for(registration: dict[str, Any]) -> q.Suite:
    """The quality suite a registration implies: its columns exist, non-nullable ones are never null."""
    columns = registration["schema"]["columns"]
    rules = [q.column_exists(c["name"]) for c in columns]
    rules += [q.not_null(c["name"], severity="critical") for c in columns if c.get("nullable") is False]
    rules += [q.null_ratio_below(c["name"], 0.05) for c in columns if c.get("nullable") is not False]
    return q.Suite(
        name="registered_contract",
        rules=rules,
        blocking=True,
        description="Generated from the registered schema.",
    )


def registry_type(dtype: Any) -> str:
    """The registry column type for a cleaned column (for registering the training-ready dataset)."""
    kind = arrow_kind(dtype)
    return {"int": "bigint", "float": "double", "timestamp": "timestamp"}.get(kind, "string")
