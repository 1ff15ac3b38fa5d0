"""The lake: parquet files under one base URI (a local directory or s3://…), one path per asset key and partition.

One implementation over universal_pathlib, so the same IO manager writes to the local filesystem and to S3
(AWS or MinIO). Writes are atomic from a reader's point of view: locally the file is written beside its
target and renamed over it, and an S3 PUT replaces an object whole, so a failed run never leaves a torn or
half-written output in place of the previous good one.
"""

from __future__ import annotations

import uuid
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field
from upath import UPath

from platform_assets.lib.config import get_settings
from platform_assets.lib.metadata import frame_metadata


def lake_path(base_uri: str, storage_options: dict | None = None) -> UPath:
    """A UPath for a lake URI with the right credentials (S3 options come from the environment)."""
    options = storage_options if storage_options is not None else get_settings().storage_options_for(base_uri)
    return UPath(base_uri, **options)


class ParquetLakeIOManager(dg.UPathIOManager):
    """Stores pandas DataFrames (or pyarrow Tables) as parquet; loads them back as pandas DataFrames."""

    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
        if path.protocol in ("", "file", "local"):
            staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                with staging.open("wb") as handle:
                    pq.write_table(table, handle, compression="zstd")
                staging.rename(path)
            finally:
                if staging.exists():
                    staging.unlink()
        else:
            with path.open("wb") as handle:
                pq.write_table(table, handle, compression="zstd")
        frame = obj if isinstance(obj, pd.DataFrame) else table.slice(0, 20).to_pandas()
        metadata = frame_metadata(frame, str(path))
        metadata["dagster/row_count"] = dg.MetadataValue.int(table.num_rows)
        context.add_output_metadata(metadata)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        import pyarrow.parquet as pq

        if not path.exists():
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string() if context.has_asset_key else 'input'}: no data at {path}; "
                "materialize the upstream asset first"
            )
        with path.open("rb") as handle:
            return pq.read_table(handle).to_pandas()


class LakeIOManager(dg.ConfigurableIOManagerFactory):
    """Parquet in the lake (`PLATFORM_LAKE_URI`: a local directory by default, s3://… in production).

    The code location sets `base_uri` when it loads (`shared_resources`), so the UI shows where data goes;
    S3 credentials are never part of this config (they are read from the environment when a run opens a path).
    """

    base_uri: str | None = Field(
        default=None,
        description="Lake root, a local path or s3:// URI. Unset: PLATFORM_LAKE_URI, else $PLATFORM_DATA_DIR/lake, "
        "read when the run starts.",
    )

    def resolved_uri(self) -> str:
        """The lake root this IO manager writes to."""
        return self.base_uri or get_settings().lake_uri

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetLakeIOManager:
        return ParquetLakeIOManager(base_path=lake_path(self.resolved_uri()))
