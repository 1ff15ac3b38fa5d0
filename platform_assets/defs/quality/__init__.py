"""Cross-domain quality operations: the 6-hourly quality job, freshness evaluation and alerts."""

import warnings

import dagster as dg

from platform_assets.defs.quality.alerts import (
    AlertWebhook,
    check_failure_alert_sensor,
    run_failure_alert_sensor,
)
from platform_assets.defs.reviews.checks import freshness_checks

quality_job = dg.define_asset_job(
    "quality_job",
    selection=dg.AssetSelection.all_asset_checks(),
    description="Evaluates every asset check against the latest materializations, without recomputing assets.",
)

quality_schedule = dg.ScheduleDefinition(
    name="quality_schedule",
    job=quality_job,
    cron_schedule="0 */6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The seed's 6-hourly data-quality CronJob, as a Dagster schedule.",
)

with warnings.catch_warnings():
    # Dagster prefers FreshnessPolicy (also attached to the assets); the sensor keeps the checks evaluated.
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=list(freshness_checks),
        name="freshness_checks_sensor",
        minimum_interval_seconds=600,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )

defs = dg.Definitions(
    jobs=[quality_job],
    schedules=[quality_schedule],
    sensors=[run_failure_alert_sensor, check_failure_alert_sensor, freshness_sensor],
    resources={"alert_webhook": AlertWebhook()},
)
