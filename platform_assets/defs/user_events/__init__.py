"""User events: daily deliveries through Spark into per-user features."""

import dagster as dg

from platform_assets.defs.user_events import assets, checks
from platform_assets.defs.user_events.jobs import user_events_job
from platform_assets.defs.user_events.schedules import user_events_daily_schedule
from platform_assets.defs.user_events.sensors import user_events_landing_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[user_events_job],
    schedules=[user_events_daily_schedule],
    sensors=[user_events_landing_sensor],
)
