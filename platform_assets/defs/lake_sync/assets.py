"""The lake sync asset: one partition per profile; materializing a partition syncs that profile.

Its key is `landing/lake_sync`: the landing zone as fed from collection nodes. A domain whose raw asset reads a
landing directory that a profile fills declares `deps=[LAKE_SYNC]`, so lineage runs collection node → landing →
raw → … in the UI.
"""

from typing import Any

import dagster as dg

from platform_assets.defs.lake_sync.resources import LakeSyncResource

GROUP = "lake_sync"
LAKE_SYNC = dg.AssetKey(["landing", "lake_sync"])
# Listed in metadata; longer lists are cut so a first sync of 100k files does not bloat the event log.
MAX_LISTED_FILES = 100


def sync_metadata(result: Any, stats: Any, profile: Any) -> dict[str, Any]:
    """Materialization metadata of one profile's sync: transfer figures, verification, and what is landed."""
    from platform_assets.lake_sync.stats import render_markdown

    transfer = result.stats
    metadata: dict[str, Any] = {
        "outcome": result.outcome,
        "remote": profile.display,
        "dagster/uri": dg.MetadataValue.path(str(profile.target_dir())),
        "run_id": result.run_id,
        "resumed": result.resumed,
        "planned_files": result.planned,
        "skipped_past_retention": result.skipped_expired,
        "files_transferred": len(result.transferred),
        "bytes_transferred": transfer.transferred_size if transfer else 0,
        "throughput_bytes_per_s": dg.MetadataValue.float(round(result.throughput_bytes_per_s, 1)),
        "rsync_speed_bytes_per_s": dg.MetadataValue.float(transfer.speed_bytes_per_s if transfer else 0.0),
        "matched_bytes": transfer.matched_bytes if transfer else 0,
        "duration_s": dg.MetadataValue.float(round(result.duration_s, 3)),
        "verified_files": result.verified,
        "mismatched_files": dg.MetadataValue.json(result.mismatched),
        "converted_files": len(result.converted),
        "landed_files": stats.files,
        "landed_bytes": stats.bytes,
        "oldest_data": stats.oldest_data.isoformat() if stats.oldest_data else "-",
        "newest_data": stats.newest_data.isoformat() if stats.newest_data else "-",
        "transferred": dg.MetadataValue.json(result.transferred[:MAX_LISTED_FILES]),
        "stats": dg.MetadataValue.md(render_markdown([stats])),
    }
    if result.error:
        metadata["error"] = result.error
    return metadata


def build_lake_sync_asset(
    partitions_def: dg.StaticPartitionsDefinition, load_problem: str | None = None
) -> dg.AssetsDefinition:
    """The partitioned sync asset over the profiles known when the code location loaded."""
    description = (
        "Raw files pulled from collection nodes with rsync over SSH into landing directories, one partition "
        "per lake sync profile: resumable (partial files and a checkpoint), checksum-verified, with the "
        "profile's stats (files, bytes, oldest/newest data, last sync) as metadata."
    )
    if load_problem:
        description += f"\n\nThe profiles file could not be read at load time: {load_problem}"

    @dg.asset(
        key=LAKE_SYNC,
        group_name=GROUP,
        partitions_def=partitions_def,
        kinds={"rsync", "ssh"},
        owners=["team:data-platform"],
        description=description,
        op_tags={"platform/compute": "io"},
    )
    def lake_sync_asset(
        context: dg.AssetExecutionContext, lake_sync: LakeSyncResource
    ) -> dg.MaterializeResult:
        """Sync the partition's profile; a failed sync fails the step with its one-line reason."""
        from platform_assets.lake_sync.stats import collect_stats
        from platform_assets.lake_sync.sync import checkpoint_store, sync_profile

        config = lake_sync.load()
        try:
            profile = config.profile(context.partition_key)
        except ValueError as err:
            raise dg.Failure(description=str(err)) from err

        def progress(event: str, details: dict[str, Any]) -> None:
            if event in ("listed", "transferred", "verified", "converted"):
                shown = {k: v for k, v in details.items() if k != "files"}
                context.log.info(f"{profile.name}: {event} {shown}")

        result = sync_profile(profile, config, progress=progress)
        for warning in result.warnings:
            context.log.warning(f"{profile.name}: {warning}")
        stats = collect_stats(profile, checkpoint_store(config))
        metadata = sync_metadata(result, stats, profile)
        if not result.ok:
            raise dg.Failure(description=result.error or result.outcome, metadata=metadata)
        context.log.info(result.summary())
        return dg.MaterializeResult(metadata=metadata)

    return lake_sync_asset
