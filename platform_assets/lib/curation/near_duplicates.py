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
BLOCK_ROWS = 4_096


@dataclass(frozen=True)
class DuplicatePair:
    """`review_id` duplicates the kept `duplicate_of` with cosine `similarity`; `within_delivery` when both are
    rows of the delivery."""

    review_id: str
    duplicate_of: str
    similarity: float
    within_delivery: bool


def pairs_within(ids: Sequence[str], vectors: np.ndarray, threshold: float) -> list[DuplicatePair]:
    """Exact near-duplicate pairs among the rows of one delivery (unit vectors), each later row against its most
    similar earlier row at or above `threshold`; computed block by block (memory: BLOCK_ROWS² similarities)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    best_sim = np.full(len(ids), -np.inf, dtype=np.float32)
    best_of = np.full(len(ids), -1, dtype=np.int64)
    for start in range(0, len(ids), BLOCK_ROWS):
        rows = vectors[start : start + BLOCK_ROWS]
        # Only earlier rows can be kept: columns [0, start + block).
        similarities = rows @ vectors[: start + len(rows)].T
        positions = np.arange(start, start + len(rows))
        later = np.arange(similarities.shape[1])[None, :] >= positions[:, None]
        similarities[later] = -np.inf
        best = similarities.argmax(axis=1)
        value = similarities[np.arange(len(rows)), best]
        best_sim[start : start + len(rows)] = value
        best_of[start : start + len(rows)] = best
    return [
        DuplicatePair(ids[i], ids[int(best_of[i])], round(float(best_sim[i]), 6), True)
        for i in np.flatnonzero(best_sim >= threshold)
    ]


def search_neighbours(
    table: lancedb.table.Table,
    vectors: np.ndarray,
    *,
    key: str,
    limit: int,
    where: str | None = None,
    nprobes: int = 20,
    refine_factor: int = 10,
) -> Iterator[tuple[int, str, float]]:
    """(row of `vectors`, key of a stored neighbour, cosine distance) for each row's `limit` nearest rows of
    `table` (those matching `where`, filtered before the search), QUERY_BATCH rows per LanceDB call, through
    the table's ANN index (a flat scan when it has none)."""
    for start in range(0, len(vectors), QUERY_BATCH):
        batch = [np.asarray(v, dtype=np.float32) for v in vectors[start : start + QUERY_BATCH]]
        query: Any = table.search(batch).metric("cosine").limit(limit).select([key])
        if where is not None:
            query = query.where(where, prefilter=True)
        found = query.nprobes(nprobes).refine_factor(refine_factor).to_arrow().to_pydict()
        for index, other, distance in zip(found["query_index"], found[key], found["_distance"], strict=True):
            yield start + index, other, float(distance)


def pairs_against_table(
    table: lancedb.table.Table,
    ids: Sequence[str],
    vectors: np.ndarray,
    threshold: float,
    *,
    key: str,
    earlier_rows: str,
    neighbours: int = 4,
) -> list[DuplicatePair]:
    """Each row's most similar stored row among `earlier_rows` (a SQL filter on the table) at or above
    `threshold`."""
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
    taken = {pair.review_id for pair in against}
    within = [pair for pair in pairs_within(ids, vectors, threshold) if pair.review_id not in taken]
    position = {review_id: index for index, review_id in enumerate(ids)}
    return sorted(against + within, key=lambda pair: position[pair.review_id])
