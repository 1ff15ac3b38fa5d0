"""Request bodies of the metadata center API (pydantic), validated so that a 422 names the bad field."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from platform_assets.metadata_center.column_types import normalize_type
from platform_assets.metadata_center.storage import parse_storage_path

# Dataset ids travel in URL paths and Dagster partition keys: no slashes, no spaces.
DATASET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"
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

    dataset_id: str = Field(pattern=DATASET_ID_PATTERN)
    name: str = Field(min_length=1, max_length=1024)
    storage_path: str = Field(min_length=1, max_length=4096)
    format: Literal["parquet", "csv"]
    size_bytes: int | None = Field(default=None, ge=0, strict=True)
    row_count: int | None = Field(default=None, ge=0, strict=True)
    schema_: DatasetSchema = Field(alias="schema")
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("storage_path")
    @classmethod
    def _parseable_path(cls, value: str) -> str:
        parse_storage_path(value)
        return value.strip()

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
