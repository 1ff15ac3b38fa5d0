"""Schedules of the lake operations."""

import dagster as dg

from platform_assets.defs.lake.jobs import lake_maintenance_job

# On by default, like the other cross-domain operation (quality_schedule) and unlike the domains' data
# schedules: it moves no data, and without it every table's metadata (one snapshot per run) grows forever.
lake_maintenance_schedule = dg.ScheduleDefinition(
    name="lake_maintenance_schedule",
    job=lake_maintenance_job,
    cron_schedule="30 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night, expire lake snapshots older than PLATFORM_SNAPSHOT_RETENTION_DAYS (tagged ones "
    "kept) and compact partitions made of many small files.",
)
