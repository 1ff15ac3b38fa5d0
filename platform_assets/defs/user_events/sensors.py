"""Sensors of the user-events domain: a run per delivery day whose files were added or changed."""

import dagster as dg

from platform_assets.defs.user_events.jobs import user_events_job
from platform_assets.defs.user_events.partitions import daily
from platform_assets.lib.config import get_settings
from platform_assets.lib.landing import landing_fingerprint, list_landing_files


def delivered_days() -> list[str]:
    """The daily partitions that have at least one file in landing/user_events (its name contains the day)."""
    files, _ = list_landing_files(get_settings().landing_dir_for("user_events"))
    names = " ".join(path.name for path in files)
    return [key for key in daily.get_partition_keys() if key in names]


@dg.sensor(
    job=user_events_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs user_events_job for each day whose files in landing/user_events were added or changed "
    "(run_key day:fingerprint, so an unchanged delivery never runs twice).",
)
def user_events_landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """One run request per delivered day, keyed on that day's files; Dagster drops keys it has seen."""
    landing = get_settings().landing_dir_for("user_events")
    days = delivered_days()
    if not days:
        return dg.SkipReason(f"no user-event files under {landing}")
    # Days in order: user_stats carries lifetime totals forward from the previous day.
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=day,
                run_key=f"{day}:{landing_fingerprint(landing, include=lambda relative, d=day: d in relative)}",
                tags={"platform/trigger": "landing"},
            )
            for day in days
        ]
    )
