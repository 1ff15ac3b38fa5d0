"""Cross-domain quality operations: the 6-hourly quality job, freshness evaluation and alerts."""

import warnings

import dagster as dg

from platform_assets.defs.quality.alerts import (
    AlertWebhook,
    check_failure_alert_sensor,
    run_failure_alert_sensor,
)
from platform_assets.defs.reviews.checks import freshness_checks

# The unpartitioned assets: their checks re-run against the latest materialization. Partitioned assets (user
# events by day, registered datasets by id) are checked partition by partition in the runs that build them.
QUALITY_ASSETS = [
    dg.AssetKey(["raw", "reviews"]),
    dg.AssetKey(["cleaned", "reviews"]),
    dg.AssetKey(["quarantine", "reviews"]),
    dg.AssetKey(["embedded", "reviews"]),
    dg.AssetKey(["features", "feast_repository"]),
    dg.AssetKey(["training", "user_purchase_training_set"]),
]

quality_job = dg.define_asset_job(
    "quality_job",
    selection=dg.AssetSelection.checks_for_assets(*QUALITY_ASSETS),
    description="Evaluates the checks of the unpartitioned assets against their latest materializations, "
    "without recomputing anything.",
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
