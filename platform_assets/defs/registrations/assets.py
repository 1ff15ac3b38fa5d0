"""Registered datasets: what Alldata registers is landed, checked, cleaned and published back."""

from typing import Any

import dagster as dg
import pandas as pd

from platform_assets.defs.registrations.partitions import registered_datasets
from platform_assets.defs.registrations.resources import MetadataCenterResource
from platform_assets.defs.registrations.schema import clean_by_schema, compare, registry_type, suite_for
from platform_assets.lib.config import get_settings
from platform_assets.lib.quality import cleaning_outputs

GROUP = "registrations"
RAW = dg.AssetKey(["raw", "registered_datasets"])
CLEANED = dg.AssetKey(["cleaned", "registered_datasets"])
QUARANTINE = dg.AssetKey(["quarantine", "registered_datasets"])
PUBLISHED = dg.AssetKey(["published", "registered_datasets"])
VERSION_TAG = "platform/dataset_version"
TRAINING_SUFFIX = "__training"


def registration_for(context: Any, metadata_center: MetadataCenterResource) -> dict[str, Any]:
    """The registration this run is about: the version in the run's tag (set by the sensor), else the latest."""
    version = context.run.tags.get(VERSION_TAG)
    return metadata_center.client().get(context.partition_key, version=int(version) if version else None)


@dg.asset(
    key=RAW,
    group_name=GROUP,
    partitions_def=registered_datasets,
    io_manager_key="lake_io_manager",
    kinds={"pandas", "parquet"},
    description="A registered dataset as found at its storage_path (local, file:// or s3://; parquet or CSV), "
    "landed in the lake; compared with the registered schema, row_count and size_bytes. Only storage inside "
    "PLATFORM_STORAGE_ROOTS is read (checked again here, file by file, symbolic links resolved).",
)
def raw_registered_dataset(
    context: dg.AssetExecutionContext, metadata_center: MetadataCenterResource
) -> pd.DataFrame:
    """Read the registered storage with credentials from the environment (the SDK), record how it compares.

    The SDK refuses storage outside the storage roots and files that do not parse with messages that name the
    rule or the file and line, never the content; the run fails with that message and nothing is landed.
    """
    from platform_assets.sdk import Dataset, DatasetError

    registration = registration_for(context, metadata_center)
    dataset = Dataset.get(context.partition_key, registration["version"], client=metadata_center.client())
    try:
        frame = dataset.read(as_delivered=True)
        size = sum(f.size for f in dataset.files())
    except DatasetError as err:
        raise dg.Failure(description=str(err)) from err
    comparison = compare(registration, frame, size)
    context.add_output_metadata(
        {
            "dataset_id": context.partition_key,
            "version": registration["version"],
            "storage_path": dg.MetadataValue.text(
                registration["storage"]["uri"]
                if "uri" in registration["storage"]
                else str(registration["storage"])
            ),
            "found_size_bytes": size,
            "comparison": dg.MetadataValue.json(comparison.as_metadata()),
        }
    )
    return frame


@dg.multi_asset(
    outs={
        "cleaned": dg.AssetOut(
            key=CLEANED,
            io_manager_key="lake_io_manager",
            kinds={"pandas", "parquet"},
            description="The dataset typed by its registered schema; invalid, null-where-forbidden and repeated rows removed.",
        ),
        "quarantine": dg.AssetOut(
            key=QUARANTINE,
            io_manager_key="lake_io_manager",
            kinds={"pandas", "parquet"},
            description="Rejected rows of registered datasets, as found, with reject_reason and reject_detail.",
        ),
    },
    ins={"raw": dg.AssetIn(key=RAW)},
    partitions_def=registered_datasets,
    group_name=GROUP,
)
def cleaned_registered_dataset(
    context: dg.AssetExecutionContext, raw: pd.DataFrame, metadata_center: MetadataCenterResource
):  # noqa: ANN201
    """Generic cleaning driven by the registration; every raw row lands in exactly one output."""
    registration = registration_for(context, metadata_center)
    cleaned, quarantine = clean_by_schema(registration, raw)
    yield from cleaning_outputs(
        context,
        len(raw),
        cleaned,
        quarantine,
        cleaned_suites=[suite_for(registration)],
        cleaned_metadata={"version": registration["version"]},
    )


@dg.asset(
    key=PUBLISHED,
    group_name=GROUP,
    partitions_def=registered_datasets,
    deps=[CLEANED],
    kinds={"parquet"},
    description="The training-ready version registered back to the metadata center as <id>__training (tag "
    "training-ready; metadata: quality score, Dagster run id) with its lineage; optionally pushed to Cube Studio "
    "and reported as an OpenLineage event.",
)
def published_registered_dataset(
    context: dg.AssetExecutionContext, metadata_center: MetadataCenterResource
) -> dg.MaterializeResult:
    """Register the cleaned data back, with lineage taken from the asset graph."""
    from platform_assets.defs.registrations.publish import (
        emit_openlineage,
        lineage_record,
        publish_to_cube_studio,
    )

    source = registration_for(context, metadata_center)
    settings = get_settings()
    uri = f"{settings.lake_uri.rstrip('/')}/{'/'.join(CLEANED.path)}/{context.partition_key}.parquet"
    cleaned, size = _read_lake_file(uri)
    score = _latest_quality_score(context)
    training_id = f"{context.partition_key}{TRAINING_SUFFIX}"
    payload = {
        "dataset_id": training_id,
        "name": f"{source.get('name') or context.partition_key} (training-ready)",
        "storage_path": uri if "://" in uri else f"file://{uri}",
        "format": "parquet",
        "size_bytes": size,
        "row_count": len(cleaned),
        "schema": {
            "columns": [{"name": str(c), "type": registry_type(t)} for c, t in cleaned.dtypes.items()]
        },
        "tags": sorted({*(source.get("tags") or []), "training-ready"}),
        "metadata": {
            "source_dataset_id": context.partition_key,
            "source_version": source["version"],
            "data_quality_score": score,
            "dagster_run_id": context.run_id,
            "etl_job_id": (source.get("metadata") or {}).get("etl_job_id"),
        },
    }
    client = metadata_center.client()
    registered = _register_unless_unchanged(client, payload)
    record = lineage_record(context, source, training_id)
    client.put_lineage(training_id, record)
    cube = publish_to_cube_studio(payload, context.log)
    openlineage = emit_openlineage(context, source, payload)
    return dg.MaterializeResult(
        metadata={
            "training_dataset_id": training_id,
            "registered_version": registered["version"],
            "registered_seq": registered["seq"] if registered.get("seq") is not None else "unchanged",
            "data_quality_score": dg.MetadataValue.float(score)
            if score is not None
            else dg.MetadataValue.text("n/a"),
            "lineage": dg.MetadataValue.json(record["lineage"]),
            "cube_studio": cube,
            "openlineage": openlineage,
            "dagster/uri": uri,
            "dagster/row_count": len(cleaned),
        }
    )


def _register_unless_unchanged(client: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Register a new version only when something changed: re-materializing publishes no duplicate version."""
    from platform_assets.metadata_center.client import MetadataCenterError

    try:
        latest = client.get(payload["dataset_id"])
    except MetadataCenterError as err:
        if err.status != 404:
            raise
        return client.register(payload)
    same = (
        latest.get("row_count") == payload["row_count"]
        and latest.get("size_bytes") == payload["size_bytes"]
        and (latest.get("metadata") or {}).get("source_version") == payload["metadata"]["source_version"]
        and (latest.get("metadata") or {}).get("data_quality_score")
        == payload["metadata"]["data_quality_score"]
    )
    if same:
        return {"version": latest["version"], "seq": None, "unchanged": True}
    return client.register(payload)


def _read_lake_file(uri: str) -> tuple[pd.DataFrame, int]:
    import pyarrow.parquet as pq

    from platform_assets.lib.lake import lake_path

    path = lake_path(uri)
    with path.open("rb") as handle:
        table = pq.read_table(handle)
    return table.to_pandas(), int(path.stat().st_size)


def _latest_quality_score(context: dg.AssetExecutionContext) -> float | None:
    """The quality score recorded on this partition's latest cleaned materialization."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CLEANED, asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get("quality/score")
    return float(value.value) if value is not None else None
