"""Request bodies of the metadata center API (pydantic), validated so that a 422 names the bad field."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platform_assets.metadata_center.column_types import normalize_type
from platform_assets.metadata_center.storage import check_storage_path

# Dataset ids travel in URL paths and Dagster partition keys: no slashes, no spaces. At most 128 characters:
# they also name files and directories of the lake (with suffixes such as `__training`), whose names are
# limited to 255 bytes.
DATASET_ID_MAX_LENGTH = 128
DATASET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# Integers the database stores as BIGINT (seq, ids, sizes) or INTEGER (version): larger values are refused
# with a 422 instead of failing in the database driver.
MAX_BIGINT = 2**63 - 1
MAX_INT = 2**31 - 1
# How deeply `metadata` may nest (objects and arrays); deeper documents exhaust the recursion of the JSON
# encoders that store and serve them.
MAX_METADATA_DEPTH = 32


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (0 for a scalar); iterative, so any depth is measured."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


LINEAGE_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
UPSTREAM_KINDS = ("source_tables", "etl_jobs", "datasets")
DOWNSTREAM_KINDS = ("datasets", "training_jobs", "models")


class Column(BaseModel):
    """One column of a registered dataset's schema."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=255)
    nullable: bool = True
    description: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        normalize_type(value)  # raises ValueError naming the accepted types
        return value.strip()


class DatasetSchema(BaseModel):
    """`schema` of a registration: its columns, names unique."""

    model_config = ConfigDict(extra="forbid")

    columns: list[Column] = Field(min_length=1)

    @field_validator("columns")
    @classmethod
    def _unique_names(cls, columns: list[Column]) -> list[Column]:
        seen: set[str] = set()
        for column in columns:
            if column.name in seen:
                raise ValueError(f"duplicate column name {column.name!r}")
            seen.add(column.name)
        return columns


class RegistrationPayload(BaseModel):
    """The body of POST /api/v1/datasets/register (docs/metadata_center.md). Unknown top-level fields are rejected:
    put anything else under `metadata`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    dataset_id: str = Field(max_length=DATASET_ID_MAX_LENGTH, pattern=DATASET_ID_PATTERN)
    name: str = Field(min_length=1, max_length=1024)
    storage_path: str = Field(min_length=1, max_length=4096)
    format: Literal["parquet", "csv"]
    size_bytes: int | None = Field(default=None, ge=0, le=MAX_BIGINT, strict=True)
    row_count: int | None = Field(default=None, ge=0, le=MAX_BIGINT, strict=True)
    schema_: DatasetSchema = Field(alias="schema")
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("storage_path")
    @classmethod
    def _readable_path(cls, value: str) -> str:
        # Parseable, and inside the service's PLATFORM_STORAGE_ROOTS (never one of its own files): a 422 naming
        # storage_path and the rule, before anything is stored or any run reads it.
        check_storage_path(value)
        return value.strip()

    @field_validator("metadata")
    @classmethod
    def _shallow_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        if json_depth(metadata) > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels of objects and arrays")
        return metadata

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        cleaned: list[str] = []
        for tag in tags:
            tag = tag.strip()
            if not tag or len(tag) > 255:
                raise ValueError("tags must be non-empty strings of at most 255 characters")
            if tag not in cleaned:
                cleaned.append(tag)
        return cleaned

    def stored(self) -> dict[str, Any]:
        """The payload as it is stored and returned (JSON-ready, `schema` under its real name)."""
        stored = self.model_dump(mode="json", by_alias=True)
        for column in stored["schema"]["columns"]:
            if column.get("description") is None:
                column.pop("description", None)
        return stored


class LineageSides(BaseModel):
    """`lineage` of a lineage record: kind → list of ids, upstream and downstream."""

    model_config = ConfigDict(extra="forbid")

    upstream: dict[str, list[str]] = Field(default_factory=dict)
    downstream: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_kinds_and_ids(self) -> LineageSides:
        for side in ("upstream", "downstream"):
            for kind, ids in getattr(self, side).items():
                if not LINEAGE_KIND_PATTERN.match(kind):
                    raise ValueError(f"{side}: kind {kind!r} must match {LINEAGE_KIND_PATTERN.pattern}")
                for entity in ids:
                    if not entity.strip() or len(entity) > 1024:
                        raise ValueError(f"{side}.{kind}: ids must be non-empty, at most 1024 characters")
        return self


class LineageRecord(BaseModel):
    """The body of PUT /api/v1/lineage/{entity_id}: the lineage record."""

    model_config = ConfigDict(extra="forbid")

    entity_type: str = Field(default="dataset", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    entity_id: str | None = None
    lineage: LineageSides = Field(default_factory=LineageSides)


class SubscriberRequest(BaseModel):
    """The body of POST /api/v1/webhooks/subscribers."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://[^\s/]+", max_length=2048)
