"""kNN-distance outliers: a text far from its nearest neighbours (gibberish, another language, a spam template
among reviews) gets a high score; a score above Q3 + `iqr_factor` x IQR of the scores is an outlier (the rule
Cleanlab's Datalab uses, with its factor 1.7).

The neighbours come from the vector table through its ANN index (the row itself left out), so a delivery's
scores cost k searches per row, not a pass over the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from platform_assets.lib.curation.near_duplicates import search_neighbours

if TYPE_CHECKING:
    import lancedb

IQR_FACTOR = 1.7
NEIGHBOURS = 5
# Neighbours fetched beyond k to replace near-duplicates, which do not count.
EXTRA_NEIGHBOURS = 16


@dataclass(frozen=True)
class OutlierScores:
    """Each row's mean cosine distance to its k nearest stored neighbours, the threshold and the flags."""

    scores: np.ndarray
    threshold: float
    flags: np.ndarray


def knn_scores(
    table: lancedb.table.Table,
    ids: Sequence[str],
    vectors: np.ndarray,
    *,
    key: str = "review_id",
    neighbours: int = NEIGHBOURS,
    duplicate_similarity: float | None = None,
    extra: int = EXTRA_NEIGHBOURS,
    where: str | None = None,
) -> np.ndarray:
    """The mean cosine distance of each row to its `neighbours` nearest rows of `table` (those matching the SQL
    filter `where`, when given) other than itself.

    With `duplicate_similarity`, neighbours at or above it (the row's near-duplicates) do not count and `extra`
    more are fetched to replace them: a text repeated a hundred times is not typical because of its copies. A
    row with no other row near scores 1.0; one whose fetched neighbours are all duplicates scores
    1 - duplicate_similarity, the closest a distinct text can be.
    """
    limit = neighbours + 1 + (extra if duplicate_similarity is not None else 0)
    floor = 1.0 - duplicate_similarity if duplicate_similarity is not None else None
    distances: dict[int, list[float]] = {}
    crowded: set[int] = set()
    for row, other, distance in search_neighbours(table, vectors, key=key, limit=limit, where=where):
        if other == ids[row]:
            continue
        if floor is not None and distance <= floor:
            crowded.add(row)
            continue
        distances.setdefault(row, []).append(distance)
    scores = []
    for row in range(len(ids)):
        found = sorted(distances.get(row, []))[:neighbours]
        if found:
            scores.append(float(np.mean(found)))
        else:
            scores.append(floor if row in crowded and floor is not None else 1.0)
    return np.array(scores, dtype=np.float64)


def flag_outliers(
    scores: np.ndarray,
    reference: np.ndarray | None = None,
    iqr_factor: float = IQR_FACTOR,
    min_score: float = 0.0,
) -> OutlierScores:
    """Outliers among `scores`: above Q3 + iqr_factor x IQR of `reference` (default: the scores themselves; pass
    the table's scores so that a delivery made mostly of outliers is still judged against the history), and
    above `min_score` (a floor for data so uniform that its IQR is nearly zero)."""
    basis = np.asarray(reference if reference is not None and len(reference) else scores, dtype=np.float64)
    if not len(basis):
        return OutlierScores(scores=scores, threshold=1.0, flags=np.zeros(len(scores), dtype=bool))
    q1, q3 = np.percentile(basis, [25, 75])
    threshold = max(float(q3 + iqr_factor * (q3 - q1)), min_score)
    return OutlierScores(scores=scores, threshold=threshold, flags=scores > threshold)
