"""The registry's tables. Alembic (migrations/) owns the schema; this module mirrors it for queries, and a
test compares the two so they cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Autoincrementing ids: BIGINT on Postgres; SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

REGISTRATION_SEQ = "registration_seq"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores no zone; values come back naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the registry tables."""


class Counter(Base):
    """Named counters. `registration_seq` hands out seqs: incrementing its row locks it until commit, so
    registrations commit in seq order and a reader that has seen seq N has seen every seq below N."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)


class Registration(Base):
    """One registration: a version of a dataset, in seq order."""

    __tablename__ = "registrations"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "version", name="uq_registrations_dataset_version"),)

    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    dataset_id: Mapped[str] = mapped_column(sa.String(255), nullable=False, index=True)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(1024), nullable=False)
    storage_path: Mapped[str] = mapped_column(sa.Text, nullable=False)
    format: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    row_count: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RegistrationTag(Base):
    """The tags of a registration, one row each, so tag filters are plain SQL on every backend."""

    __tablename__ = "registration_tags"

    seq: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("registrations.seq", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(sa.String(255), primary_key=True, index=True)


class LineageEntity(Base):
    """An entity with a lineage record (a dataset, a job, a model …)."""

    __tablename__ = "lineage_entities"

    entity_id: Mapped[str] = mapped_column(sa.String(1024), primary_key=True)
    entity_type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class LineageEdge(Base):
    """One entry of a lineage record: entity → (upstream|downstream, kind, id). One row per entry, unique,
    so concurrent merges are inserts that cannot lose each other's entries."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        sa.UniqueConstraint("entity_id", "direction", "kind", "ref", name="uq_lineage_edges_entry"),
        sa.CheckConstraint("direction IN ('upstream', 'downstream')", name="ck_lineage_edges_direction"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_id: Mapped[str] = mapped_column(
        sa.String(1024), sa.ForeignKey("lineage_entities.entity_id", ondelete="CASCADE"), nullable=False
    )
    direction: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    ref: Mapped[str] = mapped_column(sa.String(1024), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ApiKey(Base):
    """An API key, stored as its SHA-256 hex digest only."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    source: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WebhookSubscriber(Base):
    """A URL that receives every registration (from METADATA_CENTER_WEBHOOK_URLS or the admin endpoint)."""

    __tablename__ = "webhook_subscribers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False, unique=True)
    source: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WebhookDelivery(Base):
    """One message to one subscriber, written in the registration's transaction (an outbox): a crash or
    restart between registering and delivering loses nothing."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    subscriber_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("webhook_subscribers.id", ondelete="CASCADE"), nullable=False
    )
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False)
    event_type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    seq: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IdempotencyKey(Base):
    """The answer to a registration sent with an `Idempotency-Key` header, kept 24 hours so that a retry
    after a lost reply gets the same answer instead of registering a second version."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.Index("ix_idempotency_keys_created_at", "created_at"),)

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    seq: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
