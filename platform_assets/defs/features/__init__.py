"""Feast: the repository, the online store and point-in-time training sets (seed 001, section 4)."""

import dagster as dg

from platform_assets.defs.features import assets, checks
from platform_assets.defs.features.assets import FEAST_REPOSITORY, TRAINING_SET

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets(FEAST_REPOSITORY, TRAINING_SET),
    description="Apply the Feast definitions and rebuild the point-in-time training set.",
)

features_daily_schedule = dg.ScheduleDefinition(
    name="features_daily_schedule",
    job=features_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="Rebuilds the training set every night after user_events_daily_schedule.",
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[features_job],
    schedules=[features_daily_schedule],
)
