"""Cross-domain quality operations: the 6-hourly quality job, freshness evaluation and alerts.

Built over every domain's definitions (`build_defs`), so a new domain's checks and freshness checks are
covered without an edit here.
"""

import dagster as dg

from platform_assets.defs.quality.jobs import build_quality_job
from platform_assets.defs.quality.resources import AlertWebhook
from platform_assets.defs.quality.schedules import build_quality_schedule
from platform_assets.defs.quality.sensors import build_quality_sensors


def build_defs(domains: dg.Definitions) -> dg.Definitions:
    """The quality job, its schedule and the sensors, over `domains` (every other domain, merged)."""
    quality_job = build_quality_job(domains)
    return dg.Definitions(
        jobs=[quality_job],
        schedules=[build_quality_schedule(quality_job)],
        sensors=build_quality_sensors(domains),
        resources={"alert_webhook": AlertWebhook()},
    )
