"""Registered datasets: what Alldata registers is landed, checked, cleaned and published back."""

from typing import Any

import dagster as dg
import pandas as pd

from platform_assets.defs.registrations.partitions import registered_datasets
from platform_assets.defs.registrations.resources import MetadataCenterResource
from platform_assets.defs.registrations.schema import clean_by_schema, compare, registry_type, suite_for
from platform_assets.lib.lake import TABLE_PER_PARTITION_METADATA, LakeIOManager
from platform_assets.lib.quality import cleaning_outputs

GROUP = "registrations"
RAW = dg.AssetKey(["raw", "registered_datasets"])
CLEANED = dg.AssetKey(["cleaned", "registered_datasets"])
QUARANTINE = dg.AssetKey(["quarantine", "registered_datasets"])
PUBLISHED = dg.AssetKey(["published", "registered_datasets"])
VERSION_TAG = "platform/dataset_version"
TRAINING_SUFFIX = "__training"
# Every registered dataset has a schema of its own: each dataset_id partition is a lake table of its own,
# `<layer>.registered_datasets__<dataset_id>` (see platform_assets.lib.lake.partition_table_key).
TABLE_PER_PARTITION = {TABLE_PER_PARTITION_METADATA: True}
# How long a publication waits for another run's version directory to be registered before giving up.
VERSION_WAIT_SECONDS = 30.0


def registration_for(context: Any, metadata_center: MetadataCenterResource) -> dict[str, Any]:
    """The registration this run is about: the version in the run's tag (set by the sensor), else the latest."""
    version = context.run.tags.get(VERSION_TAG)
    return metadata_center.client().get(context.partition_key, version=int(version) if version else None)


@dg.asset(
    key=RAW,
    group_name=GROUP,
    partitions_def=registered_datasets,
    io_manager_key="lake_io_manager",
    metadata=TABLE_PER_PARTITION,
    kinds={"pandas", "iceberg"},
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
            metadata=TABLE_PER_PARTITION,
            kinds={"pandas", "iceberg"},
            description="The dataset typed by its registered schema; invalid, null-where-forbidden and repeated rows removed.",
        ),
        "quarantine": dg.AssetOut(
            key=QUARANTINE,
            io_manager_key="lake_io_manager",
            metadata=TABLE_PER_PARTITION,
            kinds={"pandas", "iceberg"},
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
    description="The training-ready version, plain immutable parquet at <lake>/published/<id>__training/v<N>/ "
    "(read from the cleaned table at a pinned, tagged snapshot), registered back to the metadata center as "
    "<id>__training version N (tag training-ready; metadata: quality score, Dagster run id, input snapshot) with "
    "its lineage; optionally pushed to Cube Studio and reported as an OpenLineage event. Unchanged data "
    "registers no new version.",
)
def published_registered_dataset(
    context: dg.AssetExecutionContext,
    metadata_center: MetadataCenterResource,
    lake_io_manager: dg.ResourceParam[LakeIOManager],
) -> dg.MaterializeResult:
    """Publish the cleaned rows as a new immutable version (unless unchanged) and register it, with lineage."""
    from platform_assets.defs.registrations.publish import (
        emit_openlineage,
        lineage_record,
        publish_to_cube_studio,
    )
    from platform_assets.lib.dataset_versions import LAKE_TABLE, MANIFEST_KEY, table_metrics, version_manifest
    from platform_assets.lib.lake import (
        PANDAS_METADATA_PROPERTY,
        load_table,
        partition_table_key,
        read_arrow,
        table_name,
    )
    from platform_assets.lib.published import content_digest, plain_table

    source = registration_for(context, metadata_center)
    catalog = lake_io_manager.catalog()
    cleaned_key = partition_table_key(CLEANED, context.partition_key)
    cleaned_table = table_name(cleaned_key)
    table = load_table(catalog, cleaned_key)
    if table is None:
        raise dg.Failure(
            description=f"no table {cleaned_table} in the lake: materialize cleaned/registered_datasets "
            f"[{context.partition_key}] first"
        )
    cleaned_record = _latest_cleaned_record(context)
    snapshot_id = _input_snapshot(table, cleaned_record, cleaned_table)
    rows = plain_table(
        read_arrow(catalog, cleaned_key, snapshot_id=snapshot_id),
        table.properties.get(PANDAS_METADATA_PROPERTY),
    )
    score = _quality_score(cleaned_record)
    digest = content_digest(rows)
    training_id = f"{context.partition_key}{TRAINING_SUFFIX}"
    payload = {
        "dataset_id": training_id,
        "name": f"{source.get('name') or context.partition_key} (training-ready)",
        "format": "parquet",
        "row_count": rows.num_rows,
        "schema": {
            "columns": [{"name": field.name, "type": registry_type(field.type)} for field in rows.schema]
        },
        "tags": sorted({*(source.get("tags") or []), "training-ready"}),
        "metadata": {
            "source_dataset_id": context.partition_key,
            "source_version": source["version"],
            "data_quality_score": score,
            "dagster_run_id": context.run_id,
            "etl_job_id": (source.get("metadata") or {}).get("etl_job_id"),
            "content_sha256": digest,
            # Snapshot ids as text: they are 64-bit and JSON readers in other languages round them.
            "lake/input_snapshots": {cleaned_table: str(snapshot_id)},
            MANIFEST_KEY: version_manifest(
                build={
                    "kind": LAKE_TABLE,
                    "table": cleaned_table,
                    "snapshot_id": str(snapshot_id),
                    "columns": rows.column_names,
                },
                inputs={"lake": {cleaned_table: str(snapshot_id)}},
                quality={"score": score},
                metrics=table_metrics(rows),
            ),
        },
    }
    client = metadata_center.client()
    publication = _publish(context, client, catalog, lake_io_manager.resolved_uri(), payload, rows)
    registered = publication["registration"]
    record = lineage_record(context, source, training_id)
    client.put_lineage(training_id, record)
    cube = publish_to_cube_studio(registered["payload"], context.log)
    openlineage = emit_openlineage(context, source, registered["payload"])
    input_snapshots = (registered["payload"].get("metadata") or {}).get("lake/input_snapshots") or {}
    return dg.MaterializeResult(
        metadata={
            "training_dataset_id": training_id,
            "registered_version": registered["version"],
            "registered_seq": registered["seq"] if registered.get("seq") is not None else "unchanged",
            "data_quality_score": dg.MetadataValue.float(score)
            if score is not None
            else dg.MetadataValue.text("n/a"),
            "content_sha256": digest,
            "lake/input_snapshots": dg.MetadataValue.json(input_snapshots),
            "lake/snapshot_tag": publication["tag"],
            "lineage": dg.MetadataValue.json(record["lineage"]),
            "cube_studio": cube,
            "openlineage": openlineage,
            "dagster/uri": registered["payload"]["storage_path"],
            "dagster/row_count": rows.num_rows,
        }
    )


def snapshot_tag(dataset_id: str, version: int) -> str:
    """The tag that pins the cleaned snapshot a published version was read from (expiry keeps it)."""
    return f"publish-{dataset_id}-v{version}"


def _publish(
    context: dg.AssetExecutionContext,
    client: Any,
    catalog: Any,
    lake_root: str,
    payload: dict[str, Any],
    rows: Any,
) -> dict[str, Any]:
    """Write and register the next version, or nothing when the latest version has the same rows, source version
    and quality score (re-materializing publishes no duplicate version and no new directory).

    Returns {"registration": {version, seq (None when unchanged), payload}, "tag": the snapshot tag}.
    """
    import time

    from platform_assets.lib.dataset_versions import as_payload, latest_registration
    from platform_assets.lib.lake import tag_snapshot
    from platform_assets.lib.published import VersionTaken, write_version

    source_id = payload["metadata"]["source_dataset_id"]
    ((cleaned_table, snapshot),) = payload["metadata"]["lake/input_snapshots"].items()
    deadline = time.monotonic() + VERSION_WAIT_SECONDS
    while True:
        latest = latest_registration(client, payload["dataset_id"])
        if latest is not None and _unchanged(latest, payload):
            context.log.info(
                f"{payload['dataset_id']} version {latest['version']} has the same rows: nothing published"
            )
            return {
                "registration": {"version": latest["version"], "seq": None, "payload": as_payload(latest)},
                "tag": snapshot_tag(source_id, latest["version"]),
            }
        version = (latest["version"] if latest is not None else 0) + 1
        try:
            written = write_version(
                lake_root, payload["dataset_id"], version, rows, payload["metadata"]["content_sha256"]
            )
        except VersionTaken as taken:
            # Another run of this dataset wrote v<version> and is registering it, or failed before it could.
            if time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise dg.Failure(
                description=f"{taken.directory} exists with other rows, but the metadata center has no version "
                f"{version} of {payload['dataset_id']}: a run that wrote it has not registered it. A version "
                "directory is never overwritten: move it away once no run of this dataset is in progress."
            ) from None
        break
    storage = written.directory if "://" in written.directory else f"file://{written.directory}"
    full = {**payload, "storage_path": storage, "size_bytes": written.size_bytes}
    # Pin the snapshot before registering, so a registered version's input is never expired.
    tag = snapshot_tag(source_id, version)
    tag_snapshot(catalog, cleaned_table, int(snapshot), tag)
    full["metadata"]["manifest"] = {**full["metadata"]["manifest"], "pin": tag}
    registered = client.register(full)
    if registered["version"] != version:
        # Another registration of the same id came in between: the directory is still this one's (immutable),
        # only its name and the registered version differ. Pin under the registered version too.
        context.log.warning(
            f"{payload['dataset_id']}: {written.directory} was registered as version {registered['version']}"
        )
        tag = snapshot_tag(source_id, registered["version"])
        tag_snapshot(catalog, cleaned_table, int(snapshot), tag)
    context.log.info(
        f"{payload['dataset_id']} version {registered['version']}: {written.directory}"
        + (" (written by an earlier run, now registered)" if written.reused else "")
    )
    return {"registration": {**registered, "payload": full}, "tag": tag}


def _unchanged(latest: dict[str, Any], payload: dict[str, Any]) -> bool:
    """The latest registered version has the same rows (content digest), source version and quality score."""
    from platform_assets.lib.published import digest_of

    metadata = latest.get("metadata") or {}
    return (
        digest_of(latest) == payload["metadata"]["content_sha256"]
        and metadata.get("source_version") == payload["metadata"]["source_version"]
        and metadata.get("data_quality_score") == payload["metadata"]["data_quality_score"]
    )


def _latest_cleaned_record(context: dg.AssetExecutionContext) -> Any:
    """This partition's latest cleaned materialization (this run's when the run materialized it), or None."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CLEANED, asset_partitions=[context.partition_key]), limit=1
    ).records
    return records[0].asset_materialization if records else None


def _input_snapshot(table: Any, cleaned: Any, name: str) -> int:
    """The cleaned snapshot to publish: the one the latest cleaned materialization recorded (so the rows and
    their quality score belong together), else the table's current one."""
    value = cleaned.metadata.get("lake/snapshot_id") if cleaned is not None else None
    recorded = str(value.value) if value is not None else ""
    if recorded.isdigit() and table.snapshot_by_id(int(recorded)) is not None:
        return int(recorded)
    current = table.current_snapshot()
    if current is None:
        raise dg.Failure(description=f"{name} has no snapshot: materialize its partition first")
    return current.snapshot_id


def _quality_score(cleaned: Any) -> float | None:
    """The quality score recorded on the cleaned materialization."""
    value = cleaned.metadata.get("quality/score") if cleaned is not None else None
    return float(value.value) if value is not None else None
