"""Feast for the current environment: the store, online lookups and pushes.

`feature_store()` is configured from the environment (lib/config.py): the lake's offline store
(`offline_store.py`: Feast's file store whose point-in-time join returns every entity row), a SQLite online
store under $PLATFORM_DATA_DIR by default, Redis when FEAST_ONLINE_STORE=redis://….
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd

from platform_assets.defs.features.repo import (
    PUSH_SOURCE,
    REALTIME_FEATURES,
    REALTIME_VIEW,
    STATS_FEATURES,
    STATS_VIEW,
)
from platform_assets.lib.config import PlatformSettings, get_settings

if TYPE_CHECKING:
    import feast

PROJECT = "platform_assets"
# The class Feast loads for the offline store (a dotted path, so Feast is imported only when a store is used).
OFFLINE_STORE = "platform_assets.defs.features.offline_store.LakeOfflineStore"


class FeaturePushError(ValueError):
    """A pushed record is invalid; the message names the record and the field."""


def online_store_config(settings: PlatformSettings) -> dict[str, Any]:
    """The online store: SQLite under the data dir, or Redis from a redis:// URL in FEAST_ONLINE_STORE."""
    value = settings.feast_online_store
    if value in ("", "sqlite"):
        return {"type": "sqlite", "path": str(settings.data_dir / "feast" / "online_store.db")}
    if value.startswith(("redis://", "rediss://")):
        url = urlparse(value)
        parts = [f"{url.hostname or 'localhost'}:{url.port or 6379}"]
        if url.path.strip("/"):
            parts.append(f"db={url.path.strip('/')}")
        if url.password:
            parts.append(f"password={url.password}")
        if url.scheme == "rediss":
            parts.append("ssl=true")
        return {"type": "redis", "connection_string": ",".join(parts)}
    raise ValueError(f"FEAST_ONLINE_STORE must be 'sqlite' or a redis:// URL, got {value!r}")


def feature_store(settings: PlatformSettings | None = None) -> feast.FeatureStore:
    """A Feast FeatureStore configured for the current environment (definitions applied by the platform).

    Its `get_historical_features(entity_df=…, features=[…])` returns one row per entity row: nulls where the
    view has no row in its TTL window before the entity timestamp, in no particular order.
    """
    with warnings.catch_warnings():
        # Importing feast turns every DeprecationWarning of the process on ("once"); the block undoes that,
        # so library deprecation notices do not reach `make run`'s output.
        from feast import FeatureStore
        from feast.repo_config import RepoConfig

    settings = settings or get_settings()
    repo_dir = settings.data_dir / "feast"
    repo_dir.mkdir(parents=True, exist_ok=True)
    registry = settings.feast_registry
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=registry,
        online_store=online_store_config(settings),
        offline_store={"type": OFFLINE_STORE},
        entity_key_serialization_version=3,
        repo_path=Path(repo_dir),
    )
    return FeatureStore(config=config)


def default_features() -> list[str]:
    """Every feature of both views, as `view:feature` references."""
    return [f"{STATS_VIEW}:{name}" for name in STATS_FEATURES] + [
        f"{REALTIME_VIEW}:{n}" for n in REALTIME_FEATURES
    ]


def online_features(user_ids: list[int], features: list[str] | None = None) -> list[dict[str, Any]]:
    """Online feature values per user (None where the store has no value)."""
    store = feature_store()
    response = store.get_online_features(
        features=features or default_features(), entity_rows=[{"user_id": int(u)} for u in user_ids]
    ).to_dict()
    return [{name: values[i] for name, values in response.items()} for i in range(len(user_ids))]


def _realtime_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    required = {"user_id": int, "last_action": str, "session_duration": int, "page_views_1h": int}
    rows = []
    for number, record in enumerate(records, start=1):
        row: dict[str, Any] = {}
        for field, kind in required.items():
            if record.get(field) is None:
                raise FeaturePushError(f"record {number}: missing field {field!r}")
            try:
                row[field] = kind(record[field])
            except (TypeError, ValueError):
                raise FeaturePushError(
                    f"record {number}: field {field!r}={record[field]!r} is not {kind.__name__}"
                ) from None
        stamp = record.get("event_timestamp")
        try:
            moment = pd.Timestamp(stamp) if stamp else pd.Timestamp.now(tz="UTC")
        except ValueError:
            raise FeaturePushError(
                f"record {number}: field 'event_timestamp'={stamp!r} is not a timestamp"
            ) from None
        row["event_timestamp"] = (
            moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
        )
        rows.append(row)
    return pd.DataFrame(rows)


def push_realtime(records: list[dict[str, Any]], offline: bool = False) -> int:
    """Push realtime activity records (user_id, last_action, session_duration, page_views_1h[, event_timestamp])
    into the `user_realtime_activity` view; with `offline` they are also appended to its offline log."""
    from feast.data_source import PushMode

    if not records:
        return 0
    frame = _realtime_frame(records)
    feature_store().push(PUSH_SOURCE, frame, to=PushMode.ONLINE_AND_OFFLINE if offline else PushMode.ONLINE)
    return len(frame)
