"""Jobs, schedules and sensors of the reviews domain."""

import hashlib

import dagster as dg

from platform_assets.defs.reviews.assets import GROUP
from platform_assets.lib.config import get_settings
from platform_assets.lib.landing import list_landing_files

reviews_job = dg.define_asset_job(
    "reviews_job",
    selection=dg.AssetSelection.groups(GROUP),
    # The queued run coordinator limits concurrent runs by this tag (deploy/helm/values.yaml).
    tags={"platform/compute": "embedding"},
    description="Landing files → raw → cleaned + quarantine → embedded reviews, with their checks.",
)

reviews_daily_schedule = dg.ScheduleDefinition(
    name="reviews_daily_schedule",
    job=reviews_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    description="Rebuild the reviews domain every night (idempotent: unchanged texts are not re-embedded).",
)


def landing_fingerprint(domain: str) -> str:
    """A digest of the domain's landing files (names, sizes, modification times)."""
    landing = get_settings().landing_dir_for(domain)
    files, _ = list_landing_files(landing)
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(landing)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


@dg.sensor(
    job=reviews_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs reviews_job when files in landing/reviews are added, changed or removed.",
)
def reviews_landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Compare the landing zone's fingerprint with the last one that triggered a run."""
    landing = get_settings().landing_dir_for("reviews")
    files, _ = list_landing_files(landing)
    if not files:
        return dg.SkipReason(f"no review files under {landing}")
    fingerprint = landing_fingerprint("reviews")
    if fingerprint == context.cursor:
        return dg.SkipReason(f"landing files unchanged since the last run ({len(files)} files)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"landing-{fingerprint}", tags={"platform/trigger": "landing"})],
        cursor=fingerprint,
    )
