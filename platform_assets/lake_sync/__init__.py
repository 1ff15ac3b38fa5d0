"""Lake sync: pull raw data from remote collection nodes into landing directories with rsync over SSH.

Profiles live in a YAML file (`config`); `sync` runs the workflow (list, transfer with resume, verify checksums,
convert CSV to Parquet, checkpoint); `retention` deletes expired landed data; `stats` reports per profile;
`cli` is the `platform lake` command. The Dagster side is in platform_assets.defs.lake_sync.
"""

from platform_assets.lake_sync.config import (
    CONFIG_ENV,
    LakeSyncConfig,
    LakeSyncConfigError,
    ProfileConfig,
    default_config_path,
    load_config,
    parse_config,
)

__all__ = [
    "CONFIG_ENV",
    "LakeSyncConfig",
    "LakeSyncConfigError",
    "ProfileConfig",
    "default_config_path",
    "load_config",
    "parse_config",
]
