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

from platform_assets.defs.reviews.assets import CLEANED, EMBEDDED, FRESHNESS_LIMIT, QUARANTINE, RAW
from platform_assets.defs.reviews.contract import (
    CLEANED_REVIEWS,
    EMBEDDED_REVIEWS,
    QUARANTINED_REVIEWS,
    RAW_REVIEWS,
)
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN, review_deliveries
from platform_assets.lib.embedding import EMBEDDING_DIM
from platform_assets.lib.quality import row_accounting_check, suite_check
from platform_assets.lib.vector_store import VECTOR_COLUMN, equals_any, iter_columns, read_columns

# Below this share of raw rows surviving cleaning the source is broken, not merely dirty: stop and say so.
MIN_CLEANED_YIELD = 0.5


def _lance_frame(table: Any) -> pd.DataFrame:
    return read_columns(table, list(EMBEDDED_REVIEWS.suite.columns)).to_pandas()


# Every check validates the run's delivery (its partition), so no check grows with the history.
# The lake tables are read in batches, only the suite's columns: no check holds a delivery whole.
raw_expectations, cleaned_contract, quarantine_expectations = (
    suite_check(key, contract.suite, partitions_def=review_deliveries, lake_partition_column=DELIVERY_COLUMN)
    for key, contract in ((RAW, RAW_REVIEWS), (CLEANED, CLEANED_REVIEWS), (QUARANTINE, QUARANTINED_REVIEWS))
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
