"""Asset checks of the reviews domain: one check per dataset contract's suite, plus accounting, yield and
freshness.

Blocking checks (the cleaned contract, row accounting, the cleaned yield) stop bad data before it reaches
embeddings; the others warn.
"""

import warnings
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from platform_assets.defs.reviews.assets import (
    CLEANED,
    CURATED,
    CURATION_QUARANTINE_KEY,
    DUPLICATE_PAIRS_KEY,
    EMBEDDED,
    FRESHNESS_LIMIT,
    QUARANTINE,
    RAW,
)
from platform_assets.defs.reviews.calibration import CALIBRATION
from platform_assets.defs.reviews.contract import (
    CLEANED_REVIEWS,
    CURATED_REVIEWS,
    CURATION_QUARANTINE,
    DUPLICATE_PAIRS,
    EMBEDDED_REVIEWS,
    LANCEDB_TABLE,
    QUARANTINED_REVIEWS,
    RAW_REVIEWS,
)
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN, review_deliveries
from platform_assets.lib.curation.policy import CurationPolicy
from platform_assets.lib.embedding import EMBEDDING_DIM
from platform_assets.lib.lake import LakeIOManager
from platform_assets.lib.metadata import latest_materialization
from platform_assets.lib.quality import row_accounting_check, suite_check
from platform_assets.lib.vector_store import (
    VECTOR_COLUMN,
    LanceDBIOManager,
    equals_any,
    iter_columns,
    read_columns,
    vector_matrix,
)

# A calibration that finds fewer of the labelled duplicates has a model that cannot tell them apart.
MIN_CALIBRATED_RECALL = 0.5
# Below this share of raw rows surviving cleaning the source is broken, not merely dirty: stop and say so.
MIN_CLEANED_YIELD = 0.5


def _lance_frame(table: Any) -> pd.DataFrame:
    return read_columns(table, list(EMBEDDED_REVIEWS.suite.columns)).to_pandas()


# Every check validates the run's delivery (its partition), so no check grows with the history.
# The lake tables are read in batches, only the suite's columns: no check holds a delivery whole.
(
    raw_expectations,
    cleaned_contract,
    quarantine_expectations,
    curated_contract,
    curation_quarantine_expectations,
    duplicate_pairs_expectations,
) = (
    suite_check(key, contract.suite, partitions_def=review_deliveries, lake_partition_column=DELIVERY_COLUMN)
    for key, contract in (
        (RAW, RAW_REVIEWS),
        (CLEANED, CLEANED_REVIEWS),
        (QUARANTINE, QUARANTINED_REVIEWS),
        (CURATED, CURATED_REVIEWS),
        (CURATION_QUARANTINE_KEY, CURATION_QUARANTINE),
        (DUPLICATE_PAIRS_KEY, DUPLICATE_PAIRS),
    )
)
# The vector table as a whole (LanceDB has no partitions): keys and hashes present and unique across
# deliveries; it reads three scalar columns, never the vectors.
embedded_expectations = suite_check(
    EMBEDDED, EMBEDDED_REVIEWS.suite, to_frame=_lance_frame, partitions_def=review_deliveries
)

# Staleness of the source-facing asset as a check, evaluated after each materialization and by the freshness
# sensor (the asset's FreshnessPolicy shows the same limit in the UI; Dagster calls this builder superseded
# by policies, but only the check gives a pass/fail a sensor and the quality job can act on).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    freshness_checks = dg.build_last_update_freshness_checks(assets=[RAW], lower_bound_delta=FRESHNESS_LIMIT)


row_accounting = row_accounting_check(
    RAW, CLEANED, QUARANTINE, partitions_def=review_deliveries, partition_column=DELIVERY_COLUMN
)


@dg.asset_check(
    asset=CLEANED,
    additional_deps=[RAW],
    partitions_def=review_deliveries,
    blocking=True,
    required_resource_keys={"lake_io_manager"},
    description=f"At least {MIN_CLEANED_YIELD:.0%} of raw rows pass cleaning; less means a broken delivery.",
)
def cleaned_yield(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """A gate against a source that suddenly sends mostly garbage (a schema change, an encoding bug).

    Both counts come from the lake tables' metadata: the check reads no rows."""
    from platform_assets.lib.lake import count_rows

    catalog = context.resources.lake_io_manager.catalog()
    raw_rows, cleaned_rows = (
        count_rows(catalog, key, context.partition_key, DELIVERY_COLUMN) for key in (RAW, CLEANED)
    )
    share = cleaned_rows / raw_rows if raw_rows else 0.0
    return dg.AssetCheckResult(
        passed=share >= MIN_CLEANED_YIELD,
        metadata={
            "cleaned_share": dg.MetadataValue.float(round(share, 4)),
            "threshold": dg.MetadataValue.float(MIN_CLEANED_YIELD),
            "raw_rows": raw_rows,
            "cleaned_rows": cleaned_rows,
        },
    )


@dg.asset_check(
    asset=EMBEDDED,
    additional_deps=[CLEANED],
    partitions_def=review_deliveries,
    required_resource_keys={"lake_io_manager"},
    description=f"The vector table holds exactly the delivery's cleaned review_ids, each with a {EMBEDDING_DIM}-d "
    "unit vector.",
)
def embedded_matches_cleaned(context: dg.AssetCheckExecutionContext, embedded: Any) -> dg.AssetCheckResult:
    """No missing, extra or duplicated rows of this delivery in LanceDB; vectors have the right width and norm.

    Reads the delivery's review_ids from the lake and its vectors from LanceDB in batches: the run's process
    never holds the delivery's rows or vectors, however large (the embedding itself may run on a Ray cluster).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from platform_assets.lib.lake import iter_batches, load_table, partition_filter

    delivery = context.partition_key
    cleaned = load_table(context.resources.lake_io_manager.catalog(), CLEANED)
    expected_batches = (
        iter_batches(cleaned, row_filter=partition_filter(DELIVERY_COLUMN, [delivery]), columns=["review_id"])
        if cleaned is not None
        else iter([])
    )
    expected = pa.chunked_array(
        [b.column("review_id").cast(pa.large_string()) for b in expected_batches], type=pa.large_string()
    )
    stored_ids = []
    dims: set[int] = set()
    non_unit = 0
    for batch in iter_columns(
        embedded, ["review_id", VECTOR_COLUMN], where=equals_any(DELIVERY_COLUMN, [delivery])
    ):
        stored_ids.append(batch.column("review_id").cast(pa.large_string()))
        vectors = batch.column(VECTOR_COLUMN)
        width = vectors.type.list_size if hasattr(vectors.type, "list_size") else 0
        dims.add(width)
        if batch.num_rows and width:
            matrix = vectors.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, width)
            non_unit += int((np.abs(np.linalg.norm(matrix, axis=1) - 1.0) > 1e-3).sum())
    stored = pa.chunked_array(stored_ids, type=pa.large_string())
    unique_expected = pc.unique(expected)
    unique_stored = pc.unique(stored)
    metadata = {
        "table_rows": len(stored),
        "cleaned_rows": len(unique_expected),
        "missing": int(pc.sum(pc.invert(pc.is_in(unique_expected, value_set=unique_stored))).as_py() or 0),
        "extra": int(pc.sum(pc.invert(pc.is_in(unique_stored, value_set=unique_expected))).as_py() or 0),
        "duplicated": len(stored) - len(unique_stored),
        "vector_dim": max(dims) if len(dims) == 1 else 0,
        "non_unit_vectors": non_unit,
    }
    passed = metadata["missing"] == metadata["extra"] == metadata["duplicated"] == metadata[
        "non_unit_vectors"
    ] == 0 and (metadata["vector_dim"] == EMBEDDING_DIM or not len(stored))
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


# Vectors of each side of the drift test read from LanceDB (mmd_drift samples 1,000 of them).
DRIFT_ROWS = 5_000
DRIFT_PLOT_ROWS = 500


@dg.asset_check(
    asset=EMBEDDED,
    partitions_def=review_deliveries,
    # Blocks only as an error (PLATFORM_CURATION_DRIFT_BLOCKING): a warning lets curation go on.
    blocking=True,
    description="The delivery's vectors come from the same distribution as the earlier deliveries': MMD² "
    "with a Gaussian kernel against a permutation threshold (p < 0.05 is drift). A warning by default; with "
    "PLATFORM_CURATION_DRIFT_BLOCKING=true an error that stops the delivery's curation.",
)
def embedding_drift(
    context: dg.AssetCheckExecutionContext,
    curation: CurationPolicy,
    lancedb_io_manager: dg.ResourceParam[LanceDBIOManager],
) -> dg.AssetCheckResult:
    """The delivery's vectors against a reference: the earlier deliveries' rows of the vector table (what it
    held before the delivery came); both sides sampled, so the cost does not grow with the table."""
    from platform_assets.defs.reviews.deliveries import deliveries_after
    from platform_assets.lib.curation.drift import mmd_drift
    from platform_assets.lib.curation.plots import projection_scatter
    from platform_assets.lib.vector_store import connect_lancedb, open_table

    severity = dg.AssetCheckSeverity.ERROR if curation.drift_blocking else dg.AssetCheckSeverity.WARN
    table = open_table(connect_lancedb(lancedb_io_manager.resolved_uri()), LANCEDB_TABLE)
    partition = context.partition_key
    current = _sample_vectors(table, equals_any(DELIVERY_COLUMN, [partition]))
    later = deliveries_after(context.instance, partition)
    reference = _sample_vectors(table, f"NOT ({equals_any(DELIVERY_COLUMN, [partition, *later])})")
    if len(reference) < 2 or len(current) < 2:
        return dg.AssetCheckResult(
            passed=True,
            severity=severity,
            metadata={
                "note": "nothing to compare yet: the delivery or the earlier deliveries have fewer than 2 rows",
                "reference_rows": len(reference),
                "current_rows": len(current),
            },
        )
    result = mmd_drift(reference, current)
    plot = projection_scatter(
        reference[:DRIFT_PLOT_ROWS],
        current[:DRIFT_PLOT_ROWS],
        f"{partition} against the earlier deliveries (PCA)",
    )
    return dg.AssetCheckResult(
        passed=not result.drifted,
        severity=severity,
        description="drift" if result.drifted else "no drift",
        metadata={
            "method": "MMD² (Gaussian kernel, median bandwidth), permutation test",
            "mmd2": result.mmd2,
            "threshold": result.threshold,
            "p_value": result.p_value,
            "reference_rows": result.reference_rows,
            "current_rows": result.current_rows,
            "reference": "the earlier deliveries' rows of the vector table",
            "blocking": curation.drift_blocking,
            "projection": dg.MetadataValue.md(plot),
        },
    )


def _sample_vectors(table: Any, where: str) -> np.ndarray:
    if table is None:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    rows = table.search().where(where, prefilter=True).select([VECTOR_COLUMN]).limit(DRIFT_ROWS).to_arrow()
    return vector_matrix(rows.column(VECTOR_COLUMN))


@dg.asset_check(
    asset=CURATED,
    name="curation_accounting",
    additional_deps=[EMBEDDED, CURATION_QUARANTINE_KEY, DUPLICATE_PAIRS_KEY],
    partitions_def=review_deliveries,
    blocking=True,
    description="Every embedded review of the delivery is in exactly one of curated or the curation quarantine "
    "(embedded == curated + quarantine), and every near-duplicate has its decision in the pairs table.",
)
def curation_accounting(
    context: dg.AssetCheckExecutionContext,
    lake_io_manager: dg.ResourceParam[LakeIOManager],
    lancedb_io_manager: dg.ResourceParam[LanceDBIOManager],
) -> dg.AssetCheckResult:
    """Counts from LanceDB and the lake tables' metadata, the breakdown from reject_reason alone."""
    from platform_assets.lib.lake import count_rows, value_counts
    from platform_assets.lib.vector_store import connect_lancedb, open_table

    delivery = context.partition_key
    catalog = lake_io_manager.catalog()
    table = open_table(connect_lancedb(lancedb_io_manager.resolved_uri()), LANCEDB_TABLE)
    embedded = table.count_rows(equals_any(DELIVERY_COLUMN, [delivery])) if table is not None else 0
    curated, quarantined, pairs = (
        count_rows(catalog, key, delivery, DELIVERY_COLUMN)
        for key in (CURATED, CURATION_QUARANTINE_KEY, DUPLICATE_PAIRS_KEY)
    )
    reasons = (
        value_counts(catalog, CURATION_QUARANTINE_KEY, "reject_reason", delivery, DELIVERY_COLUMN)
        if quarantined
        else {}
    )
    return dg.AssetCheckResult(
        passed=embedded == curated + quarantined and pairs == reasons.get("near_duplicate", 0),
        metadata={
            "embedded_rows": embedded,
            "curated_rows": curated,
            "quarantined_rows": quarantined,
            "difference": embedded - curated - quarantined,
            "duplicate_pairs": pairs,
            "quarantine_by_reason": dg.MetadataValue.json(reasons),
        },
    )


@dg.asset_check(
    asset=CURATED,
    name="pii_masked",
    partitions_def=review_deliveries,
    blocking=True,
    description="No e-mail, phone number, card number or IP address is left in the curated text (scanned again, "
    "independently of curation's own pass); a warning only when the policy keeps them.",
)
def pii_masked(
    context: dg.AssetCheckExecutionContext,
    curation: CurationPolicy,
    lake_io_manager: dg.ResourceParam[LakeIOManager],
) -> dg.AssetCheckResult:
    """Rescan the delivery's curated text batch by batch; report counts by kind and the review_ids (never the
    text) of rows that still hold personal data."""
    from collections import Counter

    from platform_assets.lib.curation.pii import PiiScanner
    from platform_assets.lib.lake import iter_batches, load_table, partition_filter

    scanner = PiiScanner(curation.pii_regions)
    table = load_table(lake_io_manager.catalog(), CURATED)
    found: Counter[str] = Counter()
    rows_with_pii: list[str] = []
    scanned = 0
    batches = (
        iter_batches(
            table,
            row_filter=partition_filter(DELIVERY_COLUMN, [context.partition_key]),
            columns=["review_id", "text"],
        )
        if table is not None
        else iter([])
    )
    for batch in batches:
        for review_id, text in zip(
            batch.column("review_id").to_pylist(), batch.column("text").to_pylist(), strict=True
        ):
            scanned += 1
            kinds = [match.kind for match in scanner.find(text or "")]
            if kinds:
                found.update(kinds)
                rows_with_pii.append(review_id)
    keeps = curation.pii_policy == "keep"
    return dg.AssetCheckResult(
        passed=not rows_with_pii,
        severity=dg.AssetCheckSeverity.WARN if keeps else dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows_scanned": scanned,
            "rows_with_pii": len(rows_with_pii),
            "pii_by_kind": dg.MetadataValue.json(dict(sorted(found.items()))),
            "review_ids_sample": dg.MetadataValue.json(sorted(rows_with_pii)[:20]),
            "pii_policy": curation.pii_policy,
        },
    )


@dg.asset_check(
    asset=CALIBRATION,
    description="The recorded threshold reaches the target precision on the labelled pairs, was made with the "
    "current model, and finds at least half of the labelled duplicates.",
)
def calibration_meets_target(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Read from the latest calibration's metadata: nothing is recomputed."""
    from platform_assets.lib.embedding import MODEL_NAME

    latest = latest_materialization(context.instance, CALIBRATION)
    if latest is None:
        return dg.AssetCheckResult(passed=False, metadata={"note": "never calibrated"})
    metadata, _ = latest
    precision, recall = float(metadata.get("precision", 0)), float(metadata.get("recall", 0))
    target = float(metadata.get("target_precision", 1.0))
    model = metadata.get("embedding_model")
    return dg.AssetCheckResult(
        passed=precision >= target and recall >= MIN_CALIBRATED_RECALL and model == MODEL_NAME,
        metadata={
            "threshold": float(metadata.get("threshold", 0)),
            "precision": precision,
            "target_precision": target,
            "recall": recall,
            "min_recall": MIN_CALIBRATED_RECALL,
            "embedding_model": str(model),
        },
    )
