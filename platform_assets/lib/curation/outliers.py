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
) -> np.ndarray:
    """The mean cosine distance of each row to its `neighbours` nearest rows of `table` other than itself
    (1.0, the largest, for a row with no other row near)."""
    distances: dict[int, list[float]] = {}
    for row, other, distance in search_neighbours(table, vectors, key=key, limit=neighbours + 1):
        if other != ids[row]:
            distances.setdefault(row, []).append(distance)
    return np.array(
        [float(np.mean(sorted(distances.get(row, [1.0]))[:neighbours])) for row in range(len(ids))],
        dtype=np.float64,
    )


def flag_outliers(
    scores: np.ndarray, reference: np.ndarray | None = None, iqr_factor: float = IQR_FACTOR
) -> OutlierScores:
    """Outliers among `scores`: above Q3 + iqr_factor x IQR of `reference` (default: the scores themselves; pass
    the table's scores so that a delivery made mostly of outliers is still judged against the history)."""
    basis = np.asarray(reference if reference is not None else scores, dtype=np.float64)
    q1, q3 = np.percentile(basis, [25, 75])
    threshold = float(q3 + iqr_factor * (q3 - q1))
    return OutlierScores(scores=scores, threshold=threshold, flags=scores > threshold)
