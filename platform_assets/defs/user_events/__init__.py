"""User events: daily deliveries through Spark into per-user features (seed 001)."""

import dagster as dg

from platform_assets.defs.user_events import assets, checks
from platform_assets.defs.user_events.assets import CLEANED, QUARANTINE, RAW, USER_STATS

user_events_job = dg.define_asset_job(
    "user_events_job",
    selection=dg.AssetSelection.assets(
        RAW, CLEANED, QUARANTINE, USER_STATS, dg.AssetKey(["features", "online_user_stats"])
    ),
    partitions_def=assets.daily,
    description="One day: raw → cleaned + quarantine → features/user_stats → the online store.",
)

user_events_daily_schedule = dg.build_schedule_from_partitioned_job(
    user_events_job,
    hour_of_day=1,
    name="user_events_daily_schedule",
    description="Processes yesterday's delivery every night at 01:00 UTC.",
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[user_events_job],
    schedules=[user_events_daily_schedule],
)
