"""Asset metadata the Dagster UI shows: row count, column schema, URI and a markdown preview."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 80


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey
) -> tuple[dict[str, Any], str] | None:
    """The latest materialization of `key`: its metadata as plain values, and its run id (None: never)."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    metadata = records[0].asset_materialization.metadata
    return {name: value.value for name, value in metadata.items()}, records[0].run_id


def column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes as a Dagster table schema."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in frame.dtypes.items()]
    )


def markdown_preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS, drop: tuple[str, ...] = ()) -> str:
    """The first rows as a markdown table, long cells shortened and vector columns left out."""
    head = frame.drop(columns=[c for c in drop if c in frame.columns]).head(rows).copy()
    for name in head.columns:
        head[name] = head[name].map(_short_cell, na_action="ignore")
    return head.to_markdown(index=False) if not head.empty else "_no rows_"


def _short_cell(value: Any) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def frame_metadata(frame: pd.DataFrame, uri: str, drop_from_preview: tuple[str, ...] = ()) -> dict[str, Any]:
    """Standard output metadata for a table-like asset."""
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": column_schema(frame),
        "dagster/uri": dg.MetadataValue.text(uri),
        "preview": dg.MetadataValue.md(markdown_preview(frame, drop=drop_from_preview)),
    }


def arrow_column_schema(schema: Any, drop: tuple[str, ...] = ()) -> dg.TableSchema:
    """An Arrow schema's columns and types as a Dagster table schema."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema if f.name not in drop]
    )


def arrow_metadata(
    result: Any, preview: pd.DataFrame | None = None, drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Output metadata of a lake write (`platform_assets.lib.lake.WriteResult`): rows written, the table's
    schema, name and location, the snapshot id to pin, the table's total rows and a preview."""
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        "dagster/column_schema": arrow_column_schema(result.schema, drop),
        "dagster/uri": dg.MetadataValue.text(result.location),
        "dagster/table_name": dg.MetadataValue.text(result.table),
        "lake/table": dg.MetadataValue.text(result.table),
        "lake/snapshot_id": dg.MetadataValue.text(str(result.snapshot_id)),
        "lake/table_rows": dg.MetadataValue.int(result.total_rows),
        "lake/files_written": dg.MetadataValue.int(result.files),
    }
    if preview is not None:
        metadata["preview"] = dg.MetadataValue.md(markdown_preview(preview, drop=drop))
    return metadata
