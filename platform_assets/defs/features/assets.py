"""Feast: apply the definitions, fill the online store, build point-in-time training sets."""

import contextlib
import hashlib
import io
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from platform_assets.defs.features import repo
from platform_assets.defs.user_events.assets import CLEANED, USER_STATS
from platform_assets.defs.user_events.partitions import daily
from platform_assets.lib.config import get_settings

GROUP = "features"
FEAST_REPOSITORY = dg.AssetKey(["features", "feast_repository"])
ONLINE_USER_STATS = dg.AssetKey(["features", "online_user_stats"])
TRAINING_SET = dg.AssetKey(["training", "user_purchase_training_set"])
LABEL_HORIZON = timedelta(hours=24)

# Changing the definitions changes the code version: the UI marks the asset stale and its automation
# condition re-applies it.
REPO_VERSION = hashlib.sha256(Path(repo.__file__).read_bytes()).hexdigest()[:12]


@dg.asset(
    key=FEAST_REPOSITORY,
    group_name=GROUP,
    code_version=REPO_VERSION,
    automation_condition=dg.AutomationCondition.on_missing() | dg.AutomationCondition.code_version_changed(),
    kinds={"feast"},
    description="The Feast registry: entity `user`, feature views `user_statistics` (over features/user_stats, "
    "TTL 7 days) and `user_realtime_activity` (push source), applied for the current environment.",
)
def feast_repository(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Apply the definitions; make sure the push source's offline log exists so historical reads work."""
    from platform_assets.defs.features.store import feature_store

    settings = get_settings()
    _ensure_activity_log(settings)
    store = feature_store(settings)
    objects = repo.feature_objects(settings)
    store.apply(objects)
    views = {view.name: int(view.ttl.total_seconds()) for view in store.list_feature_views()}
    return dg.MaterializeResult(
        metadata={
            "feature_views_ttl_seconds": dg.MetadataValue.json(views),
            "offline_source": dg.MetadataValue.text(repo.stats_source_path(settings)),
            "online_store": dg.MetadataValue.text(store.config.online_store.type),
            "registry": dg.MetadataValue.text(str(store.config.registry.path)),
            "definitions_version": REPO_VERSION,
        }
    )


def _ensure_activity_log(settings) -> None:  # noqa: ANN001
    from upath import UPath

    from platform_assets.lib.lake import lake_path

    path = lake_path(repo.activity_log_path(settings))
    if path.exists():
        return
    if path.protocol in ("", "file", "local"):
        Path(str(path)).parent.mkdir(parents=True, exist_ok=True)
    empty = pd.DataFrame(
        {
            "user_id": pd.Series(dtype="int64"),
            "last_action": pd.Series(dtype="string"),
            "session_duration": pd.Series(dtype="int64"),
            "page_views_1h": pd.Series(dtype="int64"),
            "event_timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )
    with UPath(path).open("wb") as handle:
        empty.to_parquet(handle, index=False)


@dg.asset(
    key=ONLINE_USER_STATS,
    group_name=GROUP,
    partitions_def=daily,
    deps=[USER_STATS, FEAST_REPOSITORY],
    kinds={"feast", "sqlite"},
    description="The day's user_statistics rows materialized into the online store (SQLite by default, Redis "
    "with FEAST_ONLINE_STORE=redis://…).",
)
def online_user_stats(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Feast materialize from the day to the newest feature day: the latest row per user lands online.

    Online stores keep the last write, not the newest timestamp, so re-running an old day alone would put
    stale values online; materializing through the newest day keeps every user's newest values there.
    """
    from platform_assets.defs.features.store import feature_store

    day = pd.Timestamp(context.partition_key, tz="UTC")
    newest = max(day, newest_feature_day())
    store = feature_store()
    # Feast prints a coloured progress report to stdout; the materialization's metadata says the same.
    with contextlib.redirect_stdout(io.StringIO()):
        store.materialize(
            start_date=day.to_pydatetime(),
            end_date=(newest + pd.Timedelta(days=1)).to_pydatetime(),
            feature_views=[repo.STATS_VIEW],
        )
    return dg.MaterializeResult(
        metadata={
            "window": f"{day.date()} 00:00 – {(newest + pd.Timedelta(days=1)).date()} 00:00 UTC",
            "online_store": store.config.online_store.type,
        }
    )


def newest_feature_day() -> pd.Timestamp:
    """The newest day with a features/user_stats file in the lake."""
    from platform_assets.lib.lake import lake_path

    directory = lake_path(repo.stats_source_path(get_settings()))
    days = (
        [p.name.removesuffix(".parquet") for p in directory.iterdir() if p.name.endswith(".parquet")]
        if directory.exists()
        else []
    )
    return pd.Timestamp(max(days), tz="UTC") if days else pd.Timestamp.min.tz_localize("UTC")


@dg.asset(
    key=TRAINING_SET,
    group_name=GROUP,
    io_manager_key="lake_io_manager",
    deps=[CLEANED, USER_STATS, FEAST_REPOSITORY],
    kinds={"feast", "parquet"},
    description="Point-in-time correct training rows: one per user and day with activity, at the end of the "
    "day; label = the user purchases in the next 24 hours; features from user_statistics as they were then.",
)
def user_purchase_training_set(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """get_historical_features over an entity/label frame built from the cleaned days that exist in the lake.

    The days are the partitions of cleaned/user_events present in the lake, not every day of the partitions
    definition up to today: a day nobody delivered is not a missing input.
    """
    from platform_assets.defs.features.training import (
        build_entity_frame,
        historical_features,
        read_cleaned_event_days,
    )

    days = read_cleaned_event_days(get_settings())
    entity_frame = build_entity_frame(list(days.values()), LABEL_HORIZON)
    if entity_frame.empty:
        raise dg.Failure(description="No cleaned user events with a complete 24 h label window yet.")
    result = historical_features(entity_frame)
    context.add_output_metadata(
        {
            "entity_rows": len(entity_frame),
            "positive_share": dg.MetadataValue.float(round(float(result["label"].mean()), 4)),
            "event_days_read": dg.MetadataValue.json(sorted(days)),
            "days": dg.MetadataValue.json(sorted({str(t.date()) for t in entity_frame["event_timestamp"]})),
        }
    )
    return result
