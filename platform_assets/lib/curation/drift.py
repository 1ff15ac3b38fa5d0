"""Embedding drift between a reference set of vectors and a new delivery's: the kernel two-sample test (MMD²
with a Gaussian kernel, bandwidth by the median heuristic) with a permutation test for its threshold.

Why MMD and not a classifier two-sample test: MMD needs no model to train or tune, is exact about what it
compares (the two samples' mean embeddings in the kernel's feature space), and its permutation test gives a
threshold calibrated for the sample sizes at hand, so small deliveries are not flagged by chance; a classifier's
ROC AUC needs a train/test split that small deliveries cannot spare.

    result = mmd_drift(reference_vectors, delivery_vectors)
    result.drifted, result.mmd2, result.threshold, result.p_value
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERMUTATIONS = 200
SAMPLE = 1_000
ALPHA = 0.05


@dataclass(frozen=True)
class DriftResult:
    """MMD² of the two samples, the permutation threshold at level `alpha`, the p-value and the verdict."""

    mmd2: float
    threshold: float
    p_value: float
    drifted: bool
    reference_rows: int
    current_rows: int
    bandwidth: float


def mmd_drift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = PERMUTATIONS,
    sample: int = SAMPLE,
    alpha: float = ALPHA,
    seed: int = 0,
) -> DriftResult:
    """Whether `current` (rows of vectors) comes from another distribution than `reference`: MMD² above the
    (1 - alpha) quantile of its permutation distribution. At most `sample` rows of each are used (drawn with
    `seed`), so the cost does not grow with the table."""
    rng = np.random.default_rng(seed)
    x = _sample(np.asarray(reference, dtype=np.float64), sample, rng)
    y = _sample(np.asarray(current, dtype=np.float64), sample, rng)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"a drift test needs at least 2 rows on each side (got {len(x)} and {len(y)})")
    pooled = np.concatenate([x, y])
    squared = np.maximum(
        (pooled**2).sum(1)[:, None] + (pooled**2).sum(1)[None, :] - 2 * pooled @ pooled.T, 0.0
    )
    bandwidth = float(np.median(squared[np.triu_indices(len(pooled), k=1)])) or 1.0
    kernel = np.exp(-squared / bandwidth)
    observed = _mmd2(kernel, np.arange(len(x)), np.arange(len(x), len(pooled)))
    null = np.empty(permutations)
    for index in range(permutations):
        order = rng.permutation(len(pooled))
        null[index] = _mmd2(kernel, order[: len(x)], order[len(x) :])
    threshold = float(np.quantile(null, 1 - alpha))
    p_value = float((1 + np.sum(null >= observed)) / (1 + permutations))
    return DriftResult(
        mmd2=round(float(observed), 6),
        threshold=round(threshold, 6),
        p_value=round(p_value, 4),
        drifted=bool(observed > threshold),
        reference_rows=len(x),
        current_rows=len(y),
        bandwidth=round(bandwidth, 6),
    )


def _sample(rows: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= size else rows[rng.choice(len(rows), size, replace=False)]


def _mmd2(kernel: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased estimate of MMD² between the rows `a` and `b` of the pooled kernel matrix."""
    kaa, kbb, kab = kernel[np.ix_(a, a)], kernel[np.ix_(b, b)], kernel[np.ix_(a, b)]
    m, n = len(a), len(b)
    return float(
        (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
        + (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
        - 2 * kab.mean()
    )
