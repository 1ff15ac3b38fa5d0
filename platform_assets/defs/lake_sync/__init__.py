"""Lake sync: files on remote collection nodes → landing directories, as Dagster assets (docs/lake_sync.md).

The partitions of `landing/lake_sync` are the profiles in the profiles file when the code location loads
(`$PLATFORM_LAKE_SYNC_CONFIG`, else `$PLATFORM_DATA_DIR/lake_sync.yaml`); after adding a profile, reload the
code location. A missing or invalid file does not break the code location: the asset has no partitions and
its description says why, and `platform lake validate` names the problem.
"""

import dagster as dg

from platform_assets.defs.lake_sync.assets import GROUP, LAKE_SYNC, build_lake_sync_asset
from platform_assets.defs.lake_sync.checks import build_connection_check
from platform_assets.defs.lake_sync.jobs import build_retention_job, lake_sync_job
from platform_assets.defs.lake_sync.partitions import profile_partition_keys, profile_partitions
from platform_assets.defs.lake_sync.resources import LakeSyncResource
from platform_assets.defs.lake_sync.schedules import build_retention_schedule, build_sync_schedule
from platform_assets.lib.config import get_settings


def build_defs(config_path: str | None = None) -> dg.Definitions:
    """The domain's Definitions for a profiles file (default: the environment's)."""
    partitions_def, problem = profile_partitions(config_path)
    keys = partitions_def.get_partition_keys()
    retention_job = build_retention_job(keys)
    return dg.Definitions(
        assets=[build_lake_sync_asset(partitions_def, problem)],
        asset_checks=[build_connection_check()],
        jobs=[lake_sync_job, retention_job],
        schedules=[build_sync_schedule(lake_sync_job, keys), build_retention_schedule(retention_job)],
        # The resolved path, so the UI shows which profiles file the domain reads.
        resources={
            "lake_sync": LakeSyncResource(config_path=config_path or str(get_settings().lake_sync_config))
        },
    )


defs = build_defs()

__all__ = ["GROUP", "LAKE_SYNC", "LakeSyncResource", "build_defs", "defs", "profile_partition_keys"]
