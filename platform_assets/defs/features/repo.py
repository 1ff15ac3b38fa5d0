"""Feast definitions, built for wherever the lake lives (local directory or S3).

The offline source of `user_statistics` is the Iceberg table `features.user_stats` (the `features/user_stats`
asset), seen by Feast through a parquet view of its current snapshot (`export.py`): Feast's file offline store
reads parquet files, not Iceberg tables.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from platform_assets.lib.config import PlatformSettings

PUSH_SOURCE = "user_activity_push"
STATS_SOURCE = "user_stats_source"
STATS_VIEW = "user_statistics"
REALTIME_VIEW = "user_realtime_activity"
STATS_TTL = timedelta(days=7)
REALTIME_TTL = timedelta(hours=1)

# Feature name → Feast type name; the training set and the CLI default to all of them.
STATS_FEATURES = {
    "total_purchases": "Int64",
    "avg_purchase_amount": "Float32",
    "last_purchase_days": "Int64",
    "user_segment": "String",
    "total_spent": "Float64",
    "events_1d": "Int64",
    "sessions_1d": "Int64",
    "sessions_7d": "Int64",
    "views_7d": "Int64",
    "clicks_7d": "Int64",
    "purchases_7d": "Int64",
    "avg_duration_7d": "Float64",
    "night_share_7d": "Float64",
    "morning_share_7d": "Float64",
    "afternoon_share_7d": "Float64",
    "evening_share_7d": "Float64",
    "weekend_share_7d": "Float64",
    "avg_amount_1d_z": "Float64",
    "avg_duration_1d_z": "Float64",
    "clicks_1d_z": "Float64",
}
REALTIME_FEATURES = {"last_action": "String", "session_duration": "Int64", "page_views_1h": "Int64"}


def stats_source_path(settings: PlatformSettings) -> str:
    """Where Feast reads `user_statistics` from: the parquet view of the table `features.user_stats`, one
    `<day>.parquet` per partition, kept in step with the table's current snapshot by `export.sync_stats_export`."""
    return f"{settings.lake_uri.rstrip('/')}/exports/features/user_stats"


def activity_log_path(settings: PlatformSettings) -> str:
    """The offline log behind the push source (pushes with `--offline` append to it). Feast owns this file (it
    appends to it), so it is a plain parquet file beside the lake's tables, not a lake table."""
    return f"{settings.lake_uri.rstrip('/')}/features/user_activity_log.parquet"


def feature_objects(settings: PlatformSettings) -> list[Any]:
    """Every Feast object of the repository, pointing at the current environment's lake."""
    from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
    from feast import types as feast_types

    endpoint = settings.s3.endpoint_url if settings.lake_uri.startswith("s3://") else None
    user = Entity(
        name="user",
        join_keys=["user_id"],
        value_type=ValueType.INT64,
        description="A platform user (user_id).",
    )
    stats_source = FileSource(
        name=STATS_SOURCE,
        path=stats_source_path(settings),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        s3_endpoint_override=endpoint,
        description="features/user_stats (a parquet view of the Iceberg table): one row per user and day.",
    )
    user_statistics = FeatureView(
        name=STATS_VIEW,
        entities=[user],
        ttl=STATS_TTL,
        schema=[Field(name=name, dtype=getattr(feast_types, kind)) for name, kind in STATS_FEATURES.items()],
        online=True,
        source=stats_source,
        tags={"team": "data-science", "asset": "features/user_stats"},
    )
    activity_log = FileSource(
        name="user_activity_log",
        path=activity_log_path(settings),
        timestamp_field="event_timestamp",
        s3_endpoint_override=endpoint,
    )
    push_source = PushSource(name=PUSH_SOURCE, batch_source=activity_log)
    user_realtime_activity = FeatureView(
        name=REALTIME_VIEW,
        entities=[user],
        ttl=REALTIME_TTL,
        schema=[
            Field(name=name, dtype=getattr(feast_types, kind)) for name, kind in REALTIME_FEATURES.items()
        ],
        online=True,
        source=push_source,
        tags={"team": "data-science", "source": "push"},
    )
    return [user, stats_source, activity_log, push_source, user_statistics, user_realtime_activity]
