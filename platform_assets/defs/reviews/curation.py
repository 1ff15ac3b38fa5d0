"""Curating one delivery: its embedded reviews → curated/reviews, quarantine/reviews_curation and the
near-duplicate decisions in curated/reviews_duplicate_pairs, with the kept rows' vectors in LanceDB
(`curated_reviews`).

In order, the first reason that applies is the row's:

1. near-duplicates (lib/curation/near_duplicates.py): the delivery's vectors against the kept reviews of the
   earlier deliveries, through the ANN index of `curated_reviews`, then within the delivery, exactly; the first
   delivered is kept. The work follows the delivery, not the history.
2. outliers (lib/curation/outliers.py): the mean cosine distance to the k nearest distinct reviews of the vector
   table (near-duplicates do not count), flagged above Q3 + 1.7 x IQR of the delivery's scores pooled with
   stored ones, and above a floor.
3. personal data (lib/curation/pii.py): masked in the text of every row (policy mask), or the row quarantined
   with reason pii (policy drop), or left (policy keep).

Deliveries count in the order they were added as partitions (the landing sensor adds them as files arrive):
a delivery is judged against the deliveries before it only, for near-duplicates, outlier scores and their
scale alike. So a re-run of a delivery gives the same rows even after later deliveries came: they are left out.
Deliveries are curated one at a time (a pool, as cleaning is), so two never judge each other at once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from platform_assets.defs.reviews.contract import (
    CLEANED_COLUMNS,
    CURATED_LANCEDB_TABLE,
    CURATED_REVIEWS,
    CURATION_QUARANTINE,
    DUPLICATE_PAIRS,
    LANCEDB_TABLE,
    SOURCE,
)
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN
from platform_assets.lib.embedding.model import EMBEDDING_DIM, EMBEDDING_SPACE_COLUMN, VECTOR_COLUMN

if TYPE_CHECKING:
    import lancedb
    import pyarrow as pa

    from platform_assets.lib.curation.near_duplicates import DuplicatePair
    from platform_assets.lib.curation.policy import CurationPolicy
    from platform_assets.lib.lake import LakeIOManager, TableWriter

logger = logging.getLogger("platform_assets.curation")

KEY = "review_id"
# The rows a curation reads from the vector table: the cleaned review and its lineage, and the vector.
ROW_COLUMNS = [*(c.name for c in (*CLEANED_COLUMNS, *SOURCE)), EMBEDDING_SPACE_COLUMN]
# Stored outlier scores of earlier deliveries pooled with the delivery's for the IQR rule.
REFERENCE_SCORES = 2_000
# The curated vector table's scalar indexes: merges look up review_id; searches prefilter on the delivery.
CURATED_SCALAR_INDEXES = {KEY: "btree", DELIVERY_COLUMN: "bitmap"}


class CurationError(RuntimeError):
    """The delivery cannot be curated as things stand (its rows are not embedded)."""


@dataclass
class CuratedDelivery:
    """One delivery curated: the three outputs written but not committed, and what was decided."""

    delivery: str
    embedded_rows: int
    threshold: float
    threshold_source: str
    curated: TableWriter
    quarantine: TableWriter
    pairs: TableWriter
    reasons: Counter[str] = field(default_factory=Counter)
    pii_counts: Counter[str] = field(default_factory=Counter)
    outlier_threshold: float = 1.0
    lancedb_version: int = 0
    lancedb_rows_written: int = 0
    seconds: float = 0.0


def curate_delivery_into_lake(
    lake: LakeIOManager,
    delivery: str,
    policy: CurationPolicy,
    *,
    threshold: float,
    threshold_source: str,
    run_id: str,
    lancedb_uri: str,
    index_min_rows: int,
    later: Sequence[str] = (),
    log: Callable[[str], None] = logger.info,
) -> CuratedDelivery:
    """Curate `delivery`: the three lake outputs staged (the caller commits them) and the kept rows' vectors
    written to `curated_reviews` (the delivery's rows there replaced, unless they are unchanged).

    `later`: the deliveries added after this one, which it is not judged against."""
    import pyarrow as pa

    from platform_assets.lib.curation.near_duplicates import find_near_duplicates
    from platform_assets.lib.curation.pii import PiiPolicy, PiiScanner
    from platform_assets.lib.vector_store import (
        connect_lancedb,
        equals_any,
        open_table,
        read_columns,
        vector_matrix,
    )

    started = time.perf_counter()
    db = connect_lancedb(lancedb_uri)
    embedded = open_table(db, LANCEDB_TABLE)
    if embedded is None:
        raise CurationError(f"no LanceDB table {LANCEDB_TABLE!r}: materialize embedded/reviews first")
    this_delivery = equals_any(DELIVERY_COLUMN, [delivery])
    not_later = f"NOT ({equals_any(DELIVERY_COLUMN, list(later))})" if later else None
    earlier = f"NOT ({equals_any(DELIVERY_COLUMN, [delivery, *later])})"
    # Delivery order decides which of two twins is kept: the earlier line.
    rows = read_columns(embedded, [*ROW_COLUMNS, VECTOR_COLUMN], where=this_delivery)
    rows = rows.sort_by([("_source_line", "ascending")])
    if not rows.num_rows:
        cleaned_rows = _cleaned_rows(lake, delivery)
        if cleaned_rows:
            raise CurationError(
                f"delivery {delivery} has {cleaned_rows} cleaned rows but none in the vector table "
                f"{LANCEDB_TABLE!r}: materialize embedded/reviews for it first"
            )
    ids = rows.column(KEY).to_pylist()
    vectors = vector_matrix(rows.column(VECTOR_COLUMN))
    kept_table = open_table(db, CURATED_LANCEDB_TABLE)

    pairs = (
        find_near_duplicates(kept_table, ids, vectors, threshold, key=KEY, earlier_rows=earlier)
        if len(ids)
        else []
    )
    duplicate = {pair.review_id: pair for pair in pairs}
    distinct = np.array([review_id not in duplicate for review_id in ids], dtype=bool)
    scores, outlier, outlier_threshold = _outliers(
        embedded,
        ids,
        vectors,
        distinct,
        policy,
        threshold,
        not_later,
        _stored_scores(lake, [delivery, *later]),
    )
    masked, pii_counts, found = _scan(PiiScanner(policy.pii_regions), rows.column("text").to_pylist())
    pii = policy.pii
    reasons: list[str | None] = []
    details: list[str | None] = []
    for index, review_id in enumerate(ids):
        reason, detail = _decision(
            duplicate.get(review_id),
            float(scores[index]) if outlier[index] else None,
            found[index] if pii is PiiPolicy.DROP else "",
            threshold,
            outlier_threshold,
            policy.outlier_neighbours,
        )
        reasons.append(reason)
        details.append(detail)
    texts = rows.column("text") if pii is PiiPolicy.KEEP else pa.array(masked, pa.string())
    base = rows.drop_columns([VECTOR_COLUMN, "text"]).append_column("text", texts)
    base = base.append_column("pii_found", pa.array(found, pa.string()))
    base = base.append_column(
        "outlier_score", pa.array(np.round(scores, 6), pa.float64(), mask=np.isnan(scores))
    )
    keep = pa.array([reason is None for reason in reasons])
    removed = pa.array([reason is not None for reason in reasons])

    curated_rows = base.filter(keep).select(CURATED_REVIEWS.column_names)
    quarantine_rows = base.filter(removed)
    removed_ids = quarantine_rows.column(KEY).to_pylist()
    quarantine_rows = (
        quarantine_rows.append_column(
            "reject_reason", pa.array([r for r in reasons if r is not None], pa.string())
        )
        .append_column("reject_detail", pa.array([d for d in details if d is not None], pa.string()))
        .append_column(
            "duplicate_of",
            pa.array(
                [duplicate[i].duplicate_of if i in duplicate else None for i in removed_ids], pa.string()
            ),
        )
        .append_column(
            "similarity",
            pa.array(
                [duplicate[i].similarity if i in duplicate else None for i in removed_ids], pa.float64()
            ),
        )
        .select(CURATION_QUARANTINE.column_names)
    )
    pair_rows = pa.table(
        {
            "review_id": pa.array([p.review_id for p in pairs], pa.string()),
            "duplicate_of": pa.array([p.duplicate_of for p in pairs], pa.string()),
            "similarity": pa.array([p.similarity for p in pairs], pa.float64()),
            "component_id": pa.array([p.duplicate_of for p in pairs], pa.string()),
            "match": pa.array(
                ["same_delivery" if p.within_delivery else "earlier_delivery" for p in pairs], pa.string()
            ),
            "threshold": pa.array([threshold] * len(pairs), pa.float64()),
            "dagster_run_id": pa.array([run_id] * len(pairs), pa.string()),
            DELIVERY_COLUMN: pa.array([delivery] * len(pairs), pa.string()),
        }
    ).select(DUPLICATE_PAIRS.column_names)

    outcome = CuratedDelivery(
        delivery=delivery,
        embedded_rows=rows.num_rows,
        threshold=threshold,
        threshold_source=threshold_source,
        curated=lake.writer(CURATED_REVIEWS.name, delivery, DELIVERY_COLUMN),
        quarantine=lake.writer(CURATION_QUARANTINE.name, delivery, DELIVERY_COLUMN),
        pairs=lake.writer(DUPLICATE_PAIRS.name, delivery, DELIVERY_COLUMN),
        reasons=Counter(r for r in reasons if r is not None),
        pii_counts=pii_counts,
        outlier_threshold=round(outlier_threshold, 6),
    )
    with outcome.curated, outcome.quarantine, outcome.pairs:
        outcome.curated.write(curated_rows)
        outcome.quarantine.write(quarantine_rows)
        outcome.pairs.write(pair_rows)
        kept_vectors = rows.filter(keep).column(VECTOR_COLUMN)
        kept_with_vectors = curated_rows.append_column(VECTOR_COLUMN, kept_vectors)
        outcome.lancedb_rows_written, outcome.lancedb_version = _replace_kept_vectors(
            db, delivery, kept_with_vectors, index_min_rows
        )
        for writer in (outcome.curated, outcome.quarantine, outcome.pairs):
            writer.finish()
    outcome.seconds = time.perf_counter() - started
    log(
        f"delivery {delivery}: {rows.num_rows} embedded → {curated_rows.num_rows} curated, "
        f"{dict(outcome.reasons)} quarantined (near-duplicate threshold {threshold} from {threshold_source}, "
        f"outlier threshold {outcome.outlier_threshold}), personal data {dict(pii_counts)} in "
        f"{outcome.seconds:.1f} s"
    )
    return outcome


def _outliers(
    embedded: lancedb.table.Table,
    ids: list[str],
    vectors: np.ndarray,
    distinct: np.ndarray,
    policy: CurationPolicy,
    threshold: float,
    not_later: str | None,
    stored: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """kNN scores of the rows that are no near-duplicates (NaN for the others), which of them are outliers, and
    the outlier threshold: Q3 + factor x IQR of their scores pooled with `stored` ones, and the policy's floor."""
    from platform_assets.lib.curation.outliers import flag_outliers, knn_scores

    scores = np.full(len(ids), np.nan)
    outlier = np.zeros(len(ids), dtype=bool)
    if not distinct.any():
        return scores, outlier, 1.0
    scores[distinct] = knn_scores(
        embedded,
        [ids[i] for i in np.flatnonzero(distinct)],
        vectors[distinct],
        key=KEY,
        neighbours=policy.outlier_neighbours,
        duplicate_similarity=threshold,
        where=not_later,
    )
    flagged = flag_outliers(
        scores[distinct],
        reference=np.concatenate([scores[distinct], stored]),
        iqr_factor=policy.outlier_iqr_factor,
        min_score=policy.outlier_min_score,
    )
    outlier[distinct] = flagged.flags
    return scores, outlier, flagged.threshold


def _decision(
    pair: DuplicatePair | None,
    outlier_score: float | None,
    dropped_pii: str,
    threshold: float,
    outlier_threshold: float,
    neighbours: int,
) -> tuple[str | None, str | None]:
    """A row's reject reason and detail (None, None: kept): near-duplicate, then outlier, then personal data
    (`dropped_pii`: the kinds found, when the policy drops such rows)."""
    if pair is not None:
        where = "in this delivery" if pair.within_delivery else "in an earlier delivery"
        return "near_duplicate", (
            f"near-duplicate of {pair.duplicate_of} ({where}): cosine similarity {pair.similarity:.4f} "
            f">= {threshold:.4f}"
        )
    if outlier_score is not None:
        return "outlier", (
            f"mean cosine distance {outlier_score:.4f} to its {neighbours} nearest distinct reviews > "
            f"{outlier_threshold:.4f}"
        )
    if dropped_pii:
        return "pii", f"the text holds personal data ({dropped_pii}); the policy drops such rows"
    return None, None


def _cleaned_rows(lake: LakeIOManager, delivery: str) -> int:
    from platform_assets.defs.reviews.contract import CLEANED_REVIEWS
    from platform_assets.lib.lake import count_rows

    return count_rows(lake.catalog(), CLEANED_REVIEWS.name, delivery, DELIVERY_COLUMN)


def _stored_scores(lake: LakeIOManager, excluded: list[str]) -> np.ndarray:
    """Up to REFERENCE_SCORES outlier scores of the earlier deliveries' curated rows (the history's scale)."""
    from pyiceberg.expressions import NotIn

    from platform_assets.lib.lake import iter_batches, load_table

    table = load_table(lake.catalog(), CURATED_REVIEWS.name)
    if table is None:
        return np.zeros(0)
    scores: list[np.ndarray] = []
    taken = 0
    for batch in iter_batches(
        table,
        row_filter=NotIn(DELIVERY_COLUMN, excluded),
        columns=["outlier_score"],
        batch_rows=REFERENCE_SCORES,
    ):
        values = batch.column("outlier_score").to_numpy(zero_copy_only=False).astype(np.float64)
        scores.append(values[: REFERENCE_SCORES - taken])
        taken += len(scores[-1])
        if taken >= REFERENCE_SCORES:
            break
    return np.concatenate(scores) if scores else np.zeros(0)


def _scan(scanner: Any, texts: list[str | None]) -> tuple[list[str | None], Counter[str], list[str]]:
    """Masked texts, the counts of personal data by kind, and the kinds found in each text (comma-separated)."""
    masked: list[str | None] = []
    found: list[str] = []
    totals: Counter[str] = Counter()
    for text in texts:
        if text is None:
            masked.append(None)
            found.append("")
            continue
        value, counts = scanner.mask(text)
        masked.append(value)
        found.append(",".join(sorted(counts)))
        totals.update(counts)
    return masked, totals, found


def _replace_kept_vectors(
    db: lancedb.DBConnection, delivery: str, rows: pa.Table, index_min_rows: int
) -> tuple[int, int]:
    """Make the delivery's rows of `curated_reviews` exactly `rows` (kept reviews with vectors); returns the rows
    written (0 when they were already there, unchanged) and the table's version."""
    import pyarrow as pa

    from platform_assets.lib.vector_store import equals_any, maintain_indexes, open_table, read_columns

    table = open_table(db, CURATED_LANCEDB_TABLE)
    schema = rows.schema.set(
        rows.schema.get_field_index(VECTOR_COLUMN),
        pa.field(VECTOR_COLUMN, pa.list_(pa.float32(), EMBEDDING_DIM)),
    )
    rows = rows.cast(schema)
    if table is None:
        table = db.create_table(CURATED_LANCEDB_TABLE, schema=schema, exist_ok=True)
    where = equals_any(DELIVERY_COLUMN, [delivery])
    # Every column but the vector: a vector changes only with its text or its space, both compared.
    stored = read_columns(table, [n for n in table.schema.names if n != VECTOR_COLUMN], where=where)
    if _same_rows(stored, rows.select(stored.column_names)):
        return 0, table.version
    table.delete(where)
    if rows.num_rows:
        table.add(rows.select(table.schema.names).cast(table.schema))
    maintain_indexes(table, CURATED_SCALAR_INDEXES, index_min_rows=index_min_rows, vector_dim=EMBEDDING_DIM)
    return rows.num_rows, table.version


def _same_rows(stored: pa.Table, rows: pa.Table) -> bool:
    if stored.num_rows != rows.num_rows:
        return False
    order = [(KEY, "ascending")]
    return stored.sort_by(order).cast(rows.schema).equals(rows.sort_by(order))
