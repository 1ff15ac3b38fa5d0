"""Jobs of the lake sync domain: the partitioned sync job, and the retention job (an operation, not an asset)."""

from typing import Any

import dagster as dg
from pydantic import Field

from platform_assets.defs.lake_sync.assets import LAKE_SYNC
from platform_assets.defs.lake_sync.resources import LakeSyncResource

lake_sync_job = dg.define_asset_job(
    "lake_sync_job",
    selection=dg.AssetSelection.assets(LAKE_SYNC),
    description="Sync one profile (a partition of landing/lake_sync) and test its connection.",
    tags={"platform/domain": "lake_sync"},
)


class RetentionConfig(dg.Config):
    """What the retention job cleans."""

    dry_run: bool = Field(default=False, description="List what would be deleted; delete nothing.")
    profiles: list[str] = Field(
        default_factory=list, description="Profiles to clean; empty: every profile with retention_days."
    )


def build_retention_job(partition_keys: list[str]) -> dg.JobDefinition:
    """The retention job; it reports each profile's cleanup as an observation of its landing partition."""

    @dg.op(
        name="lake_retention",
        description="Delete landed files older than each profile's retention_days (dates read from paths).",
    )
    def lake_retention(
        context: dg.OpExecutionContext, config: RetentionConfig, lake_sync: LakeSyncResource
    ) -> None:
        """Clean every selected profile; a profile that fails does not stop the others, but fails the step."""
        from platform_assets.lake_sync.checkpoint import SyncBusyError
        from platform_assets.lake_sync.retention import RetentionSafetyError
        from platform_assets.lake_sync.sync import cleanup_profile

        profiles_config = lake_sync.load()
        names = config.profiles or [p.name for p in profiles_config.profiles.values() if p.retention_days]
        problems: list[str] = []
        for name in names:
            try:
                profile = profiles_config.profile(name)
                report = cleanup_profile(profile, profiles_config, dry_run=config.dry_run)
            except (ValueError, SyncBusyError, RetentionSafetyError) as err:
                problems.append(str(err))
                context.log.error(str(err))
                continue
            context.log.info(report.summary())
            problems += [f"profile {name!r}: {error}" for error in report.errors]
            metadata: dict[str, Any] = {
                "dry_run": config.dry_run,
                "cutoff": report.cutoff.isoformat() if report.cutoff else "-",
                "expired_files": len(report.expired),
                "expired_bytes": report.expired_bytes,
                "kept_files": report.kept,
                "undated_files": len(report.undated),
                "expired_sample": dg.MetadataValue.json([item.relative for item in report.expired[:50]]),
            }
            if name in partition_keys:
                context.log_event(dg.AssetObservation(asset_key=LAKE_SYNC, partition=name, metadata=metadata))
        if problems:
            raise dg.Failure(description=problems[0], metadata={"problems": dg.MetadataValue.json(problems)})

    @dg.job(
        name="lake_retention_job",
        description="Apply every lake sync profile's retention (see lake_retention_daily_schedule).",
        tags={"platform/domain": "lake_sync"},
    )
    def lake_retention_job() -> None:
        lake_retention()

    return lake_retention_job
