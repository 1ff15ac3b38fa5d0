"""Schedules of the user-events domain."""

import dagster as dg

from platform_assets.defs.user_events.jobs import user_events_job

user_events_daily_schedule = dg.build_schedule_from_partitioned_job(
    user_events_job,
    hour_of_day=1,
    name="user_events_daily_schedule",
    description="Processes yesterday's delivery every night at 01:00 UTC.",
)
