"""Schedules of the features domain."""

import dagster as dg

from platform_assets.defs.features.jobs import features_job

features_daily_schedule = dg.ScheduleDefinition(
    name="features_daily_schedule",
    job=features_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    description="Rebuilds the training set every night after user_events_daily_schedule.",
)
