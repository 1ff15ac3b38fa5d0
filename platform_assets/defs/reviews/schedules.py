"""Schedules of the reviews domain."""

import dagster as dg

from platform_assets.defs.reviews.jobs import reviews_job

reviews_daily_schedule = dg.ScheduleDefinition(
    name="reviews_daily_schedule",
    job=reviews_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    description="Rebuild the reviews domain every night (idempotent: unchanged texts are not re-embedded).",
)
