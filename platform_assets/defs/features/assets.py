"""Feast: apply the definitions, fill the online store, build point-in-time training sets."""

import contextlib
import hashlib
import io
from pathlib import Path

import dagster as dg
import pandas as pd

from platform_assets.defs.features import repo
from platform_assets.defs.features.training import LABEL_HORIZON
from platform_assets.defs.user_events.assets import CLEANED, USER_STATS
from platform_assets.defs.user_events.partitions import daily
from platform_assets.lib.config import get_settings

GROUP = "features"
FEAST_REPOSITORY = dg.AssetKey(["features", "feast_repository"])
ONLINE_USER_STATS = dg.AssetKey(["features", "online_user_stats"])
TRAINING_SET = dg.AssetKey(["training", "user_purchase_training_set"])

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
    """Apply the definitions; make sure the push source's offline log exists and the parquet view of
    features/user_stats is current, so historical reads work."""
    from platform_assets.defs.features.export import sync_stats_export
    from platform_assets.defs.features.store import feature_store

    settings = get_settings()
    _ensure_activity_log(settings)
    export = sync_stats_export(settings=settings)
    store = feature_store(settings)
    objects = repo.feature_objects(settings)
    store.apply(objects)
    views = {view.name: int(view.ttl.total_seconds()) for view in store.list_feature_views()}
    return dg.MaterializeResult(
        metadata={
            "feature_views_ttl_seconds": dg.MetadataValue.json(views),
            "offline_source": dg.MetadataValue.text(repo.stats_source_path(settings)),
            "offline_source_snapshot_id": str(export.snapshot_id),
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
    "with FEAST_ONLINE_STORE=redis://…), after bringing Feast's parquet view of features/user_stats "
    "(<lake>/exports/features/user_stats) in step with the table.",
)
def online_user_stats(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Sync the parquet view Feast reads, then Feast materialize from the day to the newest feature day: the
    latest row per user lands online.

    Online stores keep the last write, not the newest timestamp, so re-running an old day alone would put
    stale values online; materializing through the newest day keeps every user's newest values there.
    """
    from platform_assets.defs.features.export import sync_stats_export
    from platform_assets.defs.features.store import feature_store

    export = sync_stats_export()
    if context.partition_key not in export.days:
        raise dg.Failure(
            description=f"features/user_stats has no rows for {context.partition_key} "
            f"(table snapshot {export.snapshot_id}): materialize that day first."
        )
    day = pd.Timestamp(context.partition_key, tz="UTC")
    newest = max(day, pd.Timestamp(max(export.days), tz="UTC"))
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
            # The feature table's snapshot Feast's view showed when materializing.
            "lake/snapshot_id": str(export.snapshot_id),
            "export_path": export.path,
            "export_days_written": dg.MetadataValue.json(export.written),
        }
    )


def newest_feature_day() -> pd.Timestamp:
    """The newest day with rows in the table features/user_stats (its current snapshot)."""
    from platform_assets.defs.features.export import STATS_TABLE, table_partitions
    from platform_assets.lib.lake import load_table, open_catalog

    table = load_table(open_catalog(), STATS_TABLE)
    days = table_partitions(table) if table is not None else {}
    return pd.Timestamp(max(days), tz="UTC") if days else pd.Timestamp.min.tz_localize("UTC")


@dg.asset(
    key=TRAINING_SET,
    group_name=GROUP,
    io_manager_key="lake_io_manager",
    deps=[CLEANED, USER_STATS, FEAST_REPOSITORY],
    kinds={"feast", "iceberg"},
    description="Point-in-time correct training rows: one per user and day with activity, at the end of the "
    "day; label = the user purchases in the next 24 hours; features from user_statistics as they were then. "
    "Reproducible: built from cleaned/user_events and features/user_stats at the snapshots recorded in "
    "`lake/input_snapshots`, which are tagged `train-user_purchase_training_set-<run id>`.",
)
def user_purchase_training_set(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Pin the inputs' current snapshots, tag them, read them there, and build the set from what was read.

    The days are those present in cleaned/user_events at its snapshot, not every day of the partitions
    definition up to today: a day nobody delivered is not a missing input. The tags go on before the reads,
    so snapshot expiry can never remove a snapshot this set was (or is being) built from.
    """
    from platform_assets.defs.features.training import (
        build_training_set,
        pin_input_snapshots,
        read_training_inputs,
    )
    from platform_assets.lib.lake import open_catalog, tag_snapshot

    catalog = open_catalog()
    try:
        snapshots = pin_input_snapshots(catalog)
    except LookupError as err:
        raise dg.Failure(description=str(err)) from err
    tag = training_tag(context.asset_key, context.run_id)
    for name, snapshot_id in snapshots.items():
        tag_snapshot(catalog, name, snapshot_id, tag)
    inputs = read_training_inputs(catalog, snapshots)
    try:
        result = build_training_set(inputs, LABEL_HORIZON)
    except ValueError as err:
        raise dg.Failure(description=f"No training rows: {err}.") from err
    context.add_output_metadata(
        {
            # Strings: snapshot ids are 64-bit, beyond what the UI's JSON reader keeps exactly.
            "lake/input_snapshots": dg.MetadataValue.json({k: str(v) for k, v in snapshots.items()}),
            "lake/input_tag": tag,
            "entity_rows": len(result),
            "positive_share": dg.MetadataValue.float(round(float(result["label"].mean()), 4)),
            "event_days_read": dg.MetadataValue.json(sorted(inputs.events["_partition"].unique().tolist())),
            "days": dg.MetadataValue.json(sorted({str(t.date()) for t in result["event_timestamp"]})),
        }
    )
    return result


def training_tag(asset_key: dg.AssetKey, run_id: str) -> str:
    """The tag a training set puts on each input snapshot it read: `train-<asset name>-<run id>`."""
    return f"train-{asset_key.path[-1]}-{run_id}"
