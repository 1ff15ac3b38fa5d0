"""Semantic near-duplicates of a delivery: pairs of texts whose unit vectors' cosine similarity reaches a
threshold, found against the rows already stored (through the vector table's ANN index) and within the
delivery (exactly, block by block), so the work follows the delivery's size, not the history's.

The kept row of a pair is the first delivered: a row of an earlier delivery, else the earlier row of the same
delivery (its position in the delivery). Each duplicate is reported once, against its most similar kept row.

    pairs = find_near_duplicates(table, ids, vectors, threshold=0.95,
                                 earlier_rows="_source_file != 'delivery_7.csv'")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import lancedb

# Query vectors per LanceDB search call: one call answers them all (its `query_index` says which).
QUERY_BATCH = 256
# IVF partitions searched per query (LanceDB's default is 20): near-duplicates sit in the query's own partition.
NPROBES = 10
BLOCK_ROWS = 2_048
COLUMN_BLOCK = 8_192
# A full pass compares each row with about this many rows (probes x one cluster).
FULL_PASS_CLUSTER_ROWS = 1_000
# ... of its nearest centroid's cluster and the next two: recall 0.999 of exact twins against 0.993 with one
# more (benchmarks/curation_bench.py, 200K rows), for about 15 % more time.
FULL_PASS_PROBES = 3


@dataclass(frozen=True)
class DuplicatePair:
    """`review_id` duplicates the kept `duplicate_of` with cosine `similarity`; `within_delivery` when both are
    rows of the delivery."""

    review_id: str
    duplicate_of: str
    similarity: float
    within_delivery: bool


def pairs_within(
    ids: Sequence[str], vectors: np.ndarray, threshold: float, *, excluded: Sequence[int] = ()
) -> list[DuplicatePair]:
    """Exact near-duplicates among the rows of one delivery (unit vectors), in delivery order: a row is a
    duplicate when its similarity to an earlier *kept* row reaches `threshold`, and is reported against the
    most similar such row (so `duplicate_of` is always a kept row, never another duplicate). `excluded` rows
    (already duplicates of stored rows) are neither judged nor kept.

    Computed block by block: memory holds BLOCK_ROWS x COLUMN_BLOCK similarities, whatever the delivery's size.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    kept = np.ones(len(ids), dtype=bool)
    kept[list(excluded)] = False
    judged = kept.copy()
    pairs: list[DuplicatePair] = []
    for start in range(0, len(ids), BLOCK_ROWS):
        end = min(start + BLOCK_ROWS, len(ids))
        rows = vectors[start:end]
        # The most similar kept row of the earlier blocks (whose decisions are final), a column block at a time.
        best_sim = np.full(end - start, -np.inf, dtype=np.float32)
        best_of = np.full(end - start, -1, dtype=np.int64)
        for column in range(0, start, COLUMN_BLOCK):
            stop = min(column + COLUMN_BLOCK, start)
            similarities = rows @ vectors[column:stop].T
            similarities[:, ~kept[column:stop]] = -np.inf
            best = similarities.argmax(axis=1)
            value = similarities[np.arange(len(rows)), best]
            better = value > best_sim
            best_sim[better], best_of[better] = value[better], column + best[better]
        # Within the block the decisions depend on each other (a row is kept unless an earlier kept row is its
        # twin), so they are taken in order.
        local = rows @ rows.T
        for offset in range(end - start):
            row = start + offset
            if not judged[row]:
                continue
            earlier = np.flatnonzero(kept[start:row])
            value, twin = float(best_sim[offset]), int(best_of[offset])
            if len(earlier):
                candidate = earlier[local[offset, earlier].argmax()]
                if local[offset, candidate] > value:
                    value, twin = float(local[offset, candidate]), start + int(candidate)
            if twin >= 0 and value >= threshold:
                kept[row] = False
                pairs.append(DuplicatePair(ids[row], ids[twin], round(value, 6), True))
    return pairs


def search_neighbours(
    table: lancedb.table.Table,
    vectors: np.ndarray,
    *,
    key: str,
    limit: int,
    where: str | None = None,
    nprobes: int = NPROBES,
    vector_column: str = "vector",
) -> Iterator[tuple[int, str, float]]:
    """(row of `vectors`, key of a stored neighbour, cosine distance) for each row's `limit` nearest rows of
    `table` (those matching `where`, filtered before the search), QUERY_BATCH rows per LanceDB call, through
    the table's ANN index (a flat scan when it has none).

    The index ranks the candidates by their compressed (PQ) vectors; the distance returned is exact, computed
    here from the candidates' stored vectors. Reading `limit` vectors per row this way is about 3x faster than
    LanceDB's refine step, which reads refine_factor x limit of them (benchmarks/curation_bench.py).
    """
    from platform_assets.lib.vector_store import vector_matrix

    for start in range(0, len(vectors), QUERY_BATCH):
        batch = np.asarray(vectors[start : start + QUERY_BATCH], dtype=np.float32)
        query: Any = table.search(list(batch)).metric("cosine").limit(limit).select([key, vector_column])
        if where is not None:
            query = query.where(where, prefilter=True)
        found = query.nprobes(nprobes).to_arrow()
        if not found.num_rows:
            continue
        # A search with one vector answers without `query_index`.
        indexes = (
            found.column("query_index").to_numpy()
            if "query_index" in found.column_names
            else np.zeros(found.num_rows, dtype=np.int64)
        )
        stored = vector_matrix(found.column(vector_column))
        distances = 1.0 - np.einsum("ij,ij->i", batch[indexes], stored)
        keys = found.column(key).to_pylist()
        for index, other, distance in zip(indexes.tolist(), keys, distances.tolist(), strict=True):
            yield start + index, other, float(distance)


def pairs_against_table(
    table: lancedb.table.Table,
    ids: Sequence[str],
    vectors: np.ndarray,
    threshold: float,
    *,
    key: str,
    earlier_rows: str | None,
    neighbours: int = 8,
) -> list[DuplicatePair]:
    """Each row's most similar stored row among `earlier_rows` (a SQL filter on the table; None: every row) at or
    above `threshold`."""
    best: dict[int, tuple[float, str]] = {}
    for row, other, distance in search_neighbours(
        table, vectors, key=key, limit=neighbours, where=earlier_rows
    ):
        similarity = 1.0 - distance
        if similarity >= threshold and (row not in best or similarity > best[row][0]):
            best[row] = (similarity, other)
    return [
        DuplicatePair(ids[row], other, round(similarity, 6), False)
        for row, (similarity, other) in sorted(best.items())
    ]


def find_near_duplicates(
    table: lancedb.table.Table | None,
    ids: Sequence[str],
    vectors: np.ndarray,
    threshold: float,
    *,
    key: str = "review_id",
    earlier_rows: str | None = None,
) -> list[DuplicatePair]:
    """A delivery's near-duplicates: against the stored earlier rows (`table`, `earlier_rows`) first — the first
    delivered is kept — then, for rows without such a twin, within the delivery."""
    against: list[DuplicatePair] = []
    if table is not None and earlier_rows is not None and table.count_rows(earlier_rows):
        against = pairs_against_table(table, ids, vectors, threshold, key=key, earlier_rows=earlier_rows)
    position = {review_id: index for index, review_id in enumerate(ids)}
    taken = [position[pair.review_id] for pair in against]
    within = pairs_within(ids, vectors, threshold, excluded=taken)
    return sorted(against + within, key=lambda pair: position[pair.review_id])


def full_pass_pairs(
    ids: Sequence[str],
    vectors: np.ndarray,
    threshold: float,
    *,
    rows_per_cluster: int = FULL_PASS_CLUSTER_ROWS,
    probes: int = FULL_PASS_PROBES,
    seed: int = 0,
) -> list[DuplicatePair]:
    """Near-duplicates among all `ids` at once (a re-curation after re-calibration, say), in position order: the
    first of twins is kept, each duplicate reported against its most similar kept row.

    NeMo Curator's route, without its miss at cluster borders: k-means (scikit-learn's MiniBatchKMeans on a
    sample) splits the rows into clusters of about `rows_per_cluster`; each row is compared exactly with the rows
    of its nearest centroid's cluster and of its `probes - 1` next nearest, so the work is about
    probes x rows x rows_per_cluster dot products instead of rows².
    """
    from sklearn.cluster import MiniBatchKMeans

    vectors = np.asarray(vectors, dtype=np.float32)
    count = len(ids)
    if count < 2:
        return []
    clusters = max(1, count // rows_per_cluster)
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(count, min(count, 50 * clusters), replace=False)]
    centroids = (
        MiniBatchKMeans(n_clusters=clusters, n_init=1, random_state=seed, batch_size=4096)
        .fit(sample)
        .cluster_centers_.astype(np.float32)
    )
    nearest = np.empty((count, min(probes, clusters)), dtype=np.int64)
    for start in range(0, count, COLUMN_BLOCK):
        scores = vectors[start : start + COLUMN_BLOCK] @ centroids.T
        order = np.argpartition(-scores, nearest.shape[1] - 1, axis=1)[:, : nearest.shape[1]]
        ranked = np.take_along_axis(scores, order, axis=1).argsort(axis=1)[:, ::-1]
        nearest[start : start + COLUMN_BLOCK] = np.take_along_axis(order, ranked, axis=1)
    home = nearest[:, 0]
    visits = [np.flatnonzero((nearest == cluster).any(axis=1)) for cluster in range(clusters)]
    # Similar pairs (i < j), each with its similarity; a pair met in two clusters is kept once.
    similar: dict[tuple[int, int], float] = {}
    for cluster in range(clusters):
        members = np.flatnonzero(home == cluster)
        candidates = visits[cluster]
        if not len(members) or len(candidates) < 2:
            continue
        for start in range(0, len(members), BLOCK_ROWS):
            rows = members[start : start + BLOCK_ROWS]
            similarities = vectors[rows] @ vectors[candidates].T
            hit_rows, hit_columns = np.nonzero(similarities >= threshold)
            for row, column in zip(hit_rows.tolist(), hit_columns.tolist(), strict=True):
                first, second = int(rows[row]), int(candidates[column])
                if first != second:
                    similar[(min(first, second), max(first, second))] = float(similarities[row, column])
    earlier: dict[int, list[tuple[int, float]]] = {}
    for (first, second), similarity in similar.items():
        earlier.setdefault(second, []).append((first, similarity))
    kept = np.ones(count, dtype=bool)
    pairs = []
    for row in sorted(earlier):
        twins = [(similarity, first) for first, similarity in earlier[row] if kept[first]]
        if twins:
            similarity, first = max(twins)
            kept[row] = False
            pairs.append(DuplicatePair(ids[row], ids[first], round(similarity, 6), True))
    return pairs
