"""Sensors of the reviews domain."""

import dagster as dg

from platform_assets.defs.reviews.jobs import reviews_job
from platform_assets.lib.config import get_settings
from platform_assets.lib.landing import landing_fingerprint, list_landing_files

DOMAIN = "reviews"


@dg.sensor(
    job=reviews_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs reviews_job when files in landing/reviews are added, changed or removed.",
)
def reviews_landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Compare the landing zone's fingerprint with the last one that triggered a run."""
    landing = get_settings().landing_dir_for(DOMAIN)
    files, _ = list_landing_files(landing)
    if not files:
        return dg.SkipReason(f"no review files under {landing}")
    fingerprint = landing_fingerprint(landing)
    if fingerprint == context.cursor:
        return dg.SkipReason(f"landing files unchanged since the last run ({len(files)} files)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"landing-{fingerprint}", tags={"platform/trigger": "landing"})],
        cursor=fingerprint,
    )
