"""The resource the lake sync asset, check, job and schedule share: where the profiles file is."""

import dagster as dg
from pydantic import Field

from platform_assets.lake_sync.config import CONFIG_ENV, LakeSyncConfig, LakeSyncConfigError, load_config


class LakeSyncResource(dg.ConfigurableResource):
    """Loads the lake sync profiles when a run or tick asks for them (never at import time)."""

    config_path: str | None = Field(
        default=None,
        description=f"Profiles file; unset: ${CONFIG_ENV}, else $PLATFORM_DATA_DIR/lake_sync.yaml.",
    )

    def load(self) -> LakeSyncConfig:
        """The validated profiles; a Failure naming the file, profile and field when they are invalid."""
        try:
            return load_config(self.config_path)
        except LakeSyncConfigError as err:
            raise dg.Failure(
                description=str(err), metadata={"problems": dg.MetadataValue.json(err.problems)}
            ) from err
