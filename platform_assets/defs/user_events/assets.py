"""User events: daily files → raw → cleaned + quarantine → per-user daily features, in Spark."""

from datetime import date, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from platform_assets.defs.lake_sync.assets import LAKE_SYNC
from platform_assets.defs.user_events.etl import RAW_COLUMNS, WINDOW_DAYS, clean_events, compute_user_stats
from platform_assets.defs.user_events.partitions import daily
from platform_assets.defs.user_events.sample_data import SAMPLE_START
from platform_assets.lib.config import get_settings
from platform_assets.lib.landing import LandingFileError, read_landing, report_metadata
from platform_assets.lib.quality import cleaning_outputs
from platform_assets.lib.spark import SparkResource

GROUP = "user_events"
RAW = dg.AssetKey(["raw", "user_events"])
CLEANED = dg.AssetKey(["cleaned", "user_events"])
QUARANTINE = dg.AssetKey(["quarantine", "user_events"])
USER_STATS = dg.AssetKey(["features", "user_stats"])


def partition_day(context: dg.AssetExecutionContext) -> date:
    """The day of the partition being materialized."""
    return date.fromisoformat(context.partition_key)


@dg.asset(
    key=RAW,
    group_name=GROUP,
    partitions_def=daily,
    # Collection nodes deliver into the landing zone through lake sync: lineage node → landing → raw.
    deps=[dg.AssetDep(LAKE_SYNC, partition_mapping=dg.AllPartitionMapping())],
    io_manager_key="lake_io_manager",
    kinds={"pandas", "iceberg"},
    description="The events delivered for one day: every file under landing/user_events/ whose name contains the "
    "day (e.g. events_2026-01-03.csv), as delivered (strings), with _source_file and _source_line.",
)
def raw_user_events(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """Read one day's delivery; an unparseable file fails the run naming the file and line."""
    day = context.partition_key
    settings = get_settings()
    landing = settings.landing_dir_for("user_events")
    max_extra = settings.landing_max_extra_columns
    try:
        frame, report = read_landing(
            landing,
            {c: "string" for c in RAW_COLUMNS},
            include=lambda p: day in p,
            max_extra_columns=max_extra,
        )
    except LandingFileError as err:
        raise dg.Failure(description=str(err)) from err
    if not report.files:
        raise dg.Failure(
            description=f"No user-event files for {day} under {landing} (expected a name containing {day})."
        )
    context.add_output_metadata(report_metadata(context, report, max_extra))
    return frame


@dg.multi_asset(
    outs={
        "cleaned": dg.AssetOut(
            key=CLEANED,
            io_manager_key="lake_io_manager",
            kinds={"spark", "iceberg"},
            description="Typed, valid events of the day's delivery, deduplicated on (user_id, event_time); "
            "is_late marks events from earlier days delivered late.",
        ),
        "quarantine": dg.AssetOut(
            key=QUARANTINE,
            io_manager_key="lake_io_manager",
            kinds={"spark", "iceberg"},
            description="Rejected events with their delivered values and reject_reason.",
        ),
    },
    ins={"raw": dg.AssetIn(key=RAW)},
    partitions_def=daily,
    group_name=GROUP,
)
def cleaned_user_events(context: dg.AssetExecutionContext, raw: pd.DataFrame, pyspark: SparkResource):  # noqa: ANN201
    """Clean one day in Spark (seed: drop rows without user or time, parse timestamps, dedup); re-running a
    day replaces that day's partitions only."""
    result = clean_events(pyspark.spark_session, raw, partition_day(context))
    yield from cleaning_outputs(
        context,
        len(raw),
        result.cleaned,
        result.quarantine,
        cleaned_metadata={"late_events": int(result.cleaned["is_late"].sum())},
    )


@dg.asset(
    key=USER_STATS,
    group_name=GROUP,
    partitions_def=daily,
    io_manager_key="lake_io_manager",
    kinds={"spark", "iceberg"},
    ins={
        "window": dg.AssetIn(
            key=CLEANED,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-(WINDOW_DAYS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
            ),
            metadata={"allow_missing_partitions": True},
        ),
        "previous": dg.AssetIn(
            key=USER_STATS,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
            metadata={"allow_missing_partitions": True},
        ),
    },
    description="Per-user features as of the end of each day: lifetime purchases and spend (carried forward "
    "from the previous day), days since the last purchase, segment, 7-day activity and hour-of-day/day-of-week "
    "profiles, and z-scores of the day's activity (Spark ML's StandardScaler). The offline source of Feast's "
    "user_statistics view.",
)
def user_stats(
    context: dg.AssetExecutionContext,
    window: Any,
    previous: Any,
    pyspark: SparkResource,
) -> pd.DataFrame:
    """Incremental, day by day: yesterday's totals plus a week of events, never the whole history."""
    day = partition_day(context)
    # One upstream partition arrives as a frame, several as a dict by partition key (the lake IO manager reads
    # each day's partition of cleaned.user_events; days not in the table are left out).
    events = (
        window
        if isinstance(window, dict)
        else ({context.partition_key: window} if window is not None else {})
    )
    # The day before the first partition maps to no upstream partition: the lake IO manager hands an empty
    # dict for it (None when yesterday's partition is missing); both mean "no previous day".
    previous_frame = previous if isinstance(previous, pd.DataFrame) else None
    if previous_frame is None and day > SAMPLE_START:
        raise dg.Failure(
            description=f"features/user_stats for {day - timedelta(days=1)} is missing: materialize the days in "
            "order (a backfill does), since lifetime totals carry forward."
        )
    frame = compute_user_stats(pyspark.spark_session, day, events, previous_frame)
    context.add_output_metadata(
        {
            "users": len(frame),
            "segments": dg.MetadataValue.json(frame["user_segment"].value_counts().to_dict()),
            "window_partitions": dg.MetadataValue.json(sorted(events)),
        }
    )
    return frame
