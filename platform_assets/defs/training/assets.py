"""Training-ready datasets published as versions: the reviews corpus with its vectors, the Feast training set.

Each asset reads its source at one pinned state (a LanceDB version, a lake snapshot), streams the rows into the
next immutable version (lib/published.py), and registers it in the metadata center with its manifest
(lib/dataset_versions.py). When the rows equal the latest version's, nothing new is written or registered, so
re-materializing is idempotent.
"""

from typing import Any

import dagster as dg

from platform_assets.defs.features.assets import TRAINING_SET
from platform_assets.defs.registrations.resources import MetadataCenterResource
from platform_assets.defs.reviews.assets import CURATED, EMBEDDED
from platform_assets.defs.reviews.contract import CURATED_LANCEDB_TABLE
from platform_assets.defs.training.contract import (
    PURCHASE_TRAINING_SET,
    REVIEWS_CORPUS,
    REVIEWS_CORPUS_COLUMNS,
    TrainingDataset,
)
from platform_assets.lib.config import get_settings

GROUP = "training"
PUBLISHED_REVIEWS_CORPUS = dg.AssetKey(["published", REVIEWS_CORPUS.dataset_id])
PUBLISHED_TRAINING_SET = dg.AssetKey(["published", PURCHASE_TRAINING_SET.dataset_id])


@dg.asset(
    key=PUBLISHED_REVIEWS_CORPUS,
    group_name=GROUP,
    deps=[CURATED],
    kinds={"parquet", "lancedb"},
    description=f"{REVIEWS_CORPUS.description} Published as version N of '{REVIEWS_CORPUS.dataset_id}' at "
    "<lake>/published/reviews_corpus/v<N>/ with its manifest (LanceDB version, curated snapshot, code, quality, "
    "metrics); the Lance version and the snapshot are tagged so they are never cleaned up. Load it with "
    "`Dataset.get('reviews_corpus', version=N).to_torch()`.",
)
def published_reviews_corpus(
    context: dg.AssetExecutionContext, metadata_center: MetadataCenterResource
) -> dg.MaterializeResult:
    """Publish the curated vector table as it is now (one Lance version) as the corpus's next version.

    Refused while a blocking check of curated/reviews or embedded/reviews (drift with
    PLATFORM_CURATION_DRIFT_BLOCKING, accounting, personal data left in the text) last failed as an error."""
    from platform_assets.lib.dataset_versions import LANCEDB_TABLE as LANCEDB_BUILD
    from platform_assets.lib.dataset_versions import check_results
    from platform_assets.lib.lake import current_snapshot_id, open_catalog, table_name
    from platform_assets.lib.vector_store import connect_lancedb, open_table

    table = open_table(connect_lancedb(), CURATED_LANCEDB_TABLE)
    if table is None:
        raise dg.Failure(
            description=f"no LanceDB table '{CURATED_LANCEDB_TABLE}': materialize {CURATED.to_user_string()} first"
        )
    checks = {**check_results(context.instance, EMBEDDED), **check_results(context.instance, CURATED)}
    failed = sorted(
        name
        for name, result in checks.items()
        if result.get("status") == "FAILED" and result.get("severity") == "ERROR"
    )
    if failed:
        raise dg.Failure(
            description=f"not published: the latest evaluation of {', '.join(failed)} failed as an error "
            f"(see the checks of {CURATED.to_user_string()} and {EMBEDDED.to_user_string()})"
        )
    lance_version = table.version
    curated_snapshot = current_snapshot_id(open_catalog(), CURATED)
    inputs: dict[str, Any] = {"lancedb": {CURATED_LANCEDB_TABLE: lance_version}}
    if curated_snapshot is not None:
        inputs["lake"] = {table_name(CURATED): str(curated_snapshot)}
    build = {
        "kind": LANCEDB_BUILD,
        "table": CURATED_LANCEDB_TABLE,
        "version": lance_version,
        "columns": list(REVIEWS_CORPUS_COLUMNS),
    }
    quality = {"checks": checks}
    return _publish(context, metadata_center, REVIEWS_CORPUS, build, inputs, quality, feast=None)


@dg.asset(
    key=PUBLISHED_TRAINING_SET,
    group_name=GROUP,
    deps=[TRAINING_SET],
    kinds={"parquet", "feast"},
    description=f"{PURCHASE_TRAINING_SET.description} Published as version N of "
    f"'{PURCHASE_TRAINING_SET.dataset_id}' with its manifest (the training table's snapshot and the snapshots of "
    "the events and features it was built from, the Feast views and their definitions' hash, code, quality, "
    "metrics). Load it with `Dataset.get('user_purchase_training_set', version=N).to_torch()`.",
)
def published_user_purchase_training_set(
    context: dg.AssetExecutionContext, metadata_center: MetadataCenterResource
) -> dg.MaterializeResult:
    """Publish the training set as its latest materialization wrote it (that snapshot) as the next version."""
    from platform_assets.defs.features import repo
    from platform_assets.lib.dataset_versions import LAKE_TABLE, check_results, feast_manifest
    from platform_assets.lib.lake import PARTITION_COLUMN, load_table, open_catalog, table_name

    record = context.instance.fetch_materializations(TRAINING_SET, limit=1).records
    materialization = record[0].asset_materialization if record else None
    metadata = materialization.metadata if materialization is not None else {}
    name = table_name(TRAINING_SET)
    table = load_table(open_catalog(), TRAINING_SET)
    snapshot = metadata.get("lake/snapshot_id")
    snapshot_id = int(str(snapshot.value)) if snapshot is not None else None
    if table is None or snapshot_id is None or table.snapshot_by_id(snapshot_id) is None:
        raise dg.Failure(
            description=f"no materialization of {TRAINING_SET.to_user_string()} with a snapshot in {name}: "
            "materialize it first"
        )
    built_from = metadata.get("lake/input_snapshots")
    lake_inputs = {
        name: str(snapshot_id),
        **{k: str(v) for k, v in (built_from.value if built_from else {}).items()},
    }
    build = {
        "kind": LAKE_TABLE,
        "table": name,
        "snapshot_id": str(snapshot_id),
        "columns": [f.name for f in table.schema().fields if f.name != PARTITION_COLUMN],
    }
    quality = {"checks": check_results(context.instance, TRAINING_SET)}
    feast = feast_manifest([repo.STATS_VIEW], repo.__file__)
    return _publish(
        context, metadata_center, PURCHASE_TRAINING_SET, build, {"lake": lake_inputs}, quality, feast
    )


def _publish(
    context: dg.AssetExecutionContext,
    metadata_center: MetadataCenterResource,
    dataset: TrainingDataset,
    build: dict[str, Any],
    inputs: dict[str, Any],
    quality: dict[str, Any],
    feast: dict[str, Any] | None,
) -> dg.MaterializeResult:
    """Publish the next version (or find the rows unchanged), record its lineage, and report it."""
    from platform_assets.lib.dataset_versions import (
        VersionError,
        VersionSpec,
        lineage_record,
        publish_version,
    )

    spec = VersionSpec(
        dataset_id=dataset.dataset_id,
        name=dataset.name,
        description=dataset.description,
        build=build,
        inputs=inputs,
        tags=list(dataset.tags),
        label=dataset.label,
        feast=feast,
        quality=quality,
    )
    client = metadata_center.client()
    try:
        published = publish_version(
            spec, client, get_settings().lake_uri, run_id=context.run_id, log=context.log
        )
    except VersionError as err:
        raise dg.Failure(description=f"{dataset.dataset_id}: {err}") from None
    if published.created:
        client.put_lineage(dataset.dataset_id, lineage_record(context, inputs))
    manifest = published.payload["metadata"]["manifest"]
    metrics = manifest.get("metrics") or {}
    return dg.MaterializeResult(
        metadata={
            "dataset_id": dataset.dataset_id,
            "version": published.version,
            "new_version": published.created,
            "content_sha256": published.payload["metadata"]["content_sha256"],
            "manifest/inputs": dg.MetadataValue.json(manifest.get("inputs") or {}),
            "manifest/pin": manifest.get("pin") or "",
            "manifest/code": dg.MetadataValue.json(manifest.get("code") or {}),
            "manifest/quality": dg.MetadataValue.json(manifest.get("quality") or {}),
            "manifest/metrics": dg.MetadataValue.json(metrics),
            "load": f"Dataset.get({dataset.dataset_id!r}, version={published.version}).to_torch()",
            "dagster/uri": published.payload["storage_path"],
            "dagster/row_count": published.payload["row_count"],
        }
    )
