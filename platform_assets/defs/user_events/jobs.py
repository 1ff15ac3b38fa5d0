"""Jobs of the user-events domain."""

import dagster as dg

from platform_assets.defs.user_events.assets import GROUP
from platform_assets.defs.user_events.partitions import daily

ONLINE_USER_STATS = dg.AssetKey(["features", "online_user_stats"])

user_events_job = dg.define_asset_job(
    "user_events_job",
    selection=dg.AssetSelection.groups(GROUP) | dg.AssetSelection.assets(ONLINE_USER_STATS),
    partitions_def=daily,
    description="One day: raw → cleaned + quarantine → features/user_stats → the online store.",
)
