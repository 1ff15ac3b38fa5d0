"""Schedules of the cross-domain quality operations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    # What dg.define_asset_job returns; Dagster exports no public name for it.
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def build_quality_schedule(quality_job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """Run the quality job every 6 hours (on by default)."""
    return dg.ScheduleDefinition(
        name="quality_schedule",
        job=quality_job,
        cron_schedule="0 */6 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every 6 hours, the data-quality checks of every unpartitioned asset.",
    )
