"""Schedules: sync every enabled profile hourly, apply retention daily."""

from typing import Any

import dagster as dg

from platform_assets.defs.lake_sync.resources import LakeSyncResource

SYNC_CRON = "0 * * * *"
RETENTION_CRON = "30 3 * * *"
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_sync_schedule(job: Any, partition_keys: list[str]) -> dg.ScheduleDefinition:
    """One run per enabled profile every hour; a profile whose previous run is still going is skipped."""

    @dg.schedule(
        name="lake_sync_hourly_schedule",
        cron_schedule=SYNC_CRON,
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Sync every enabled lake sync profile at the top of each hour (turn it on in the UI).",
    )
    def lake_sync_hourly_schedule(
        context: dg.ScheduleEvaluationContext, lake_sync: LakeSyncResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        """Read the profiles now (not at load time) so an edited file takes effect without a redeploy."""
        from platform_assets.lake_sync.config import LakeSyncConfigError, load_config

        try:
            config = load_config(lake_sync.config_path)
        except LakeSyncConfigError as err:
            return dg.SkipReason(f"lake sync profiles invalid: {err}")
        tick = context.scheduled_execution_time
        stamp = tick.strftime("%Y-%m-%dT%H:%M") if tick else "manual"
        instance = _instance(context)
        requests: list[dg.RunRequest] = []
        skipped: list[str] = []
        for profile in config.enabled_profiles():
            if profile.name not in partition_keys:
                skipped.append(f"{profile.name} (new since the code location loaded: reload it)")
                continue
            if instance is not None and _has_active_run(instance, profile.name):
                skipped.append(f"{profile.name} (previous sync still running)")
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f"{profile.name}@{stamp}",
                    partition_key=profile.name,
                    tags={"lake_sync/profile": profile.name, "platform/trigger": "schedule"},
                )
            )
        if skipped:
            context.log.info(f"skipped: {', '.join(skipped)}")
        if not requests:
            reason = f"; skipped: {', '.join(skipped)}" if skipped else ""
            return dg.SkipReason(f"no enabled lake sync profile to run in {config.path}{reason}")
        return requests

    return lake_sync_hourly_schedule


def _instance(context: dg.ScheduleEvaluationContext) -> dg.DagsterInstance | None:
    # A context built in a test without an instance has none; the daemon always passes one.
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:
        return None


def _has_active_run(instance: dg.DagsterInstance, profile: str) -> bool:
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name="lake_sync_job", statuses=_ACTIVE, tags={"dagster/partition": profile}
        ),
        limit=1,
    )
    return bool(runs)


def build_retention_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """Retention once a day, at a quiet hour."""
    return dg.ScheduleDefinition(
        name="lake_retention_daily_schedule",
        job=job,
        cron_schedule=RETENTION_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Delete landed data past each profile's retention_days, daily at 03:30 UTC.",
    )
