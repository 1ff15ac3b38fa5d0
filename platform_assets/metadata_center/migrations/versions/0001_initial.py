"""The registry: registrations with tags, lineage, API keys, webhook subscribers and deliveries.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table, and the seq counter at 0."""
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(counters, [{"name": "registration_seq", "value": 0}])

    op.create_table(
        "registrations",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("dataset_id", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("storage_path", sa.Text, nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("row_count", sa.BigInteger, nullable=True),
        sa.Column("payload", JsonType, nullable=False),
        sa.Column("registered_at", Timestamp, nullable=False),
        sa.UniqueConstraint("dataset_id", "version", name="uq_registrations_dataset_version"),
    )
    op.create_index("ix_registrations_dataset_id", "registrations", ["dataset_id"])

    op.create_table(
        "registration_tags",
        sa.Column(
            "seq",
            sa.BigInteger,
            sa.ForeignKey("registrations.seq", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(255), primary_key=True),
    )
    op.create_index("ix_registration_tags_tag", "registration_tags", ["tag"])

    op.create_table(
        "lineage_entities",
        sa.Column("entity_id", sa.String(1024), primary_key=True),
        sa.Column("entity_type", sa.String(64), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "entity_id",
            sa.String(1024),
            sa.ForeignKey("lineage_entities.entity_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(1024), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.UniqueConstraint("entity_id", "direction", "kind", "ref", name="uq_lineage_edges_entry"),
        sa.CheckConstraint("direction IN ('upstream', 'downstream')", name="ck_lineage_edges_direction"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )

    op.create_table(
        "webhook_subscribers",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("url", sa.String(2048), nullable=False, unique=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column(
            "subscriber_id",
            BigId,
            sa.ForeignKey("webhook_subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=False),
        sa.Column("last_attempt_at", Timestamp, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("delivered_at", Timestamp, nullable=True),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    """Drop everything (the registry's data with it)."""
    for table in (
        "webhook_deliveries",
        "webhook_subscribers",
        "api_keys",
        "lineage_edges",
        "lineage_entities",
        "registration_tags",
        "registrations",
        "counters",
    ):
        op.drop_table(table)
