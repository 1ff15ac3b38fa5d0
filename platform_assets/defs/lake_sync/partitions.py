"""The lake-sync domain's partitions: one per profile in the profiles file."""

from __future__ import annotations

import dagster as dg


def profile_partition_keys(config_path: str | None = None) -> tuple[list[str], str | None]:
    """Profile names for the partitions, and the reason when the file could not be read (names are then [])."""
    from platform_assets.lake_sync.config import LakeSyncConfigError, load_config

    try:
        return list(load_config(config_path).profiles), None
    except LakeSyncConfigError as err:
        return [], str(err)


def profile_partitions(config_path: str | None = None) -> tuple[dg.StaticPartitionsDefinition, str | None]:
    """The partitions definition for a profiles file (default: the environment's), and why it is empty."""
    keys, problem = profile_partition_keys(config_path)
    return dg.StaticPartitionsDefinition(keys), problem
