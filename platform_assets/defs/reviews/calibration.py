"""The near-duplicate threshold of curated/reviews, calibrated on labelled pairs made from the review sentences
the platform knows (lib/curation/calibration.py), with the stored reviews' nearest-neighbour similarities beside
them, and how curation finds the threshold to use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg
import numpy as np

from platform_assets.defs.reviews.contract import LANCEDB_TABLE
from platform_assets.lib.embedding.model import MODEL_NAME, VECTOR_COLUMN

if TYPE_CHECKING:
    from platform_assets.lib.curation.calibration import Calibration
    from platform_assets.lib.curation.policy import CurationPolicy
    from platform_assets.lib.embedding.resource import TextEmbedder

CALIBRATION = dg.AssetKey(["curated", "reviews_near_duplicate_calibration"])
# Stored reviews whose nearest neighbour's similarity is histogrammed beside the labelled pairs.
NEIGHBOUR_SAMPLE = 1_000
# Where a threshold came from, as curated/reviews records it.
FROM_ENVIRONMENT = "PLATFORM_CURATION_DUPLICATE_THRESHOLD"
UNCALIBRATED = "uncalibrated default"


def calibration_groups() -> dict[str, list[str]]:
    """The sentences of each review topic of the sample generator: one group per topic, praise and complaints
    together (different reviews of one topic are the pairs a low threshold would merge)."""
    from platform_assets.defs.reviews.sample_data import TOPICS

    return {topic: [*good, *bad] for topic, (good, bad) in TOPICS.items()}


def calibrate_threshold(
    embedder: TextEmbedder, policy: CurationPolicy, lancedb_uri: str
) -> tuple[Calibration, dict[str, Any]]:
    """Embed the labelled pairs with the configured model, choose the threshold, and describe it (metadata with
    a histogram of the pairs' and the stored reviews' nearest-neighbour similarities)."""
    from platform_assets.lib.curation.calibration import calibrate, labelled_pairs, pair_similarities
    from platform_assets.lib.curation.plots import similarity_histogram

    pairs = labelled_pairs(calibration_groups())
    texts = sorted({text for pair in pairs for text in (pair.first, pair.second)})
    vectors = embedder.embed(texts, texts)
    similarities = pair_similarities(
        np.stack([vectors[pair.first] for pair in pairs]), np.stack([vectors[pair.second] for pair in pairs])
    )
    result = calibrate(
        pairs, similarities, target_precision=policy.target_precision, margin=policy.calibration_margin
    )
    labels = np.array([pair.duplicate for pair in pairs])
    stored, table_rows = stored_neighbour_similarities(lancedb_uri)
    plot = similarity_histogram(
        {
            "labelled duplicates": similarities[labels],
            "labelled different reviews": similarities[~labels],
            "stored reviews, nearest neighbour": stored,
        },
        result.threshold,
        f"{MODEL_NAME}: near-duplicate calibration",
    )
    examples = sorted(zip(similarities, pairs, strict=True), key=lambda item: item[0])
    metadata: dict[str, Any] = {
        **{key: _metadata_value(value) for key, value in result.as_metadata().items()},
        "embedding_model": MODEL_NAME,
        "embedding_space": embedder.vector_space(),
        "labelled_pairs": len(pairs),
        "similarity_histogram": dg.MetadataValue.md(plot),
        "stored_rows_sampled": len(stored),
        # What the calibration sensor compares with the vector table's rows now.
        "vector_table_rows": table_rows,
        "stored_share_at_or_above_threshold": round(float((stored >= result.threshold).mean()), 4)
        if len(stored)
        else 0.0,
        "stored_nearest_neighbour_quantiles": dg.MetadataValue.json(
            {f"p{q}": round(float(np.percentile(stored, q)), 4) for q in (5, 25, 50, 75, 95)}
            if len(stored)
            else {}
        ),
        "precision_recall_curve": dg.MetadataValue.json(result.curve[:: max(1, len(result.curve) // 50)]),
        "closest_pairs": dg.MetadataValue.md(_pairs_table(examples, result.threshold)),
    }
    return result, metadata


def stored_neighbour_similarities(lancedb_uri: str, sample: int = NEIGHBOUR_SAMPLE) -> tuple[np.ndarray, int]:
    """The cosine similarity of each of up to `sample` stored reviews to its nearest other review (ANN), and the
    vector table's rows."""
    from platform_assets.lib.curation.near_duplicates import search_neighbours
    from platform_assets.lib.vector_store import connect_lancedb, open_table, vector_matrix

    table = open_table(connect_lancedb(lancedb_uri), LANCEDB_TABLE)
    rows_now = table.count_rows() if table is not None else 0
    if table is None or rows_now < 2:
        return np.zeros(0), rows_now
    rows = table.search().select(["review_id", VECTOR_COLUMN]).limit(sample).to_arrow()
    ids = rows.column("review_id").to_pylist()
    vectors = vector_matrix(rows.column(VECTOR_COLUMN))
    best = np.full(len(ids), -1.0)
    for row, other, distance in search_neighbours(table, vectors, key="review_id", limit=2):
        if other != ids[row]:
            best[row] = max(best[row], 1.0 - distance)
    return best[best > -1.0], rows_now


def duplicate_threshold(instance: dg.DagsterInstance, policy: CurationPolicy) -> tuple[float, str]:
    """The threshold curation uses, and where it came from: the policy's fixed value, else the latest
    calibration of the current model, else UNCALIBRATED_THRESHOLD (conservative) until one exists."""
    from platform_assets.lib.curation.policy import UNCALIBRATED_THRESHOLD

    if policy.duplicate_threshold is not None:
        return policy.duplicate_threshold, FROM_ENVIRONMENT
    from platform_assets.lib.metadata import latest_materialization

    latest = latest_materialization(instance, CALIBRATION)
    if latest is not None:
        metadata, run_id = latest
        if metadata.get("embedding_model") == MODEL_NAME and metadata.get("threshold") is not None:
            return float(metadata["threshold"]), f"calibration in run {run_id}"
    return UNCALIBRATED_THRESHOLD, UNCALIBRATED


def _metadata_value(value: Any) -> Any:
    return dg.MetadataValue.json(value) if isinstance(value, dict) else value


def _pairs_table(examples: list[tuple[float, Any]], threshold: float) -> str:
    """The labelled pairs nearest the threshold on either side, as a markdown table."""
    below = [item for item in examples if item[0] < threshold][-5:]
    above = [item for item in examples if item[0] >= threshold][:5]
    lines = ["| similarity | kind | labelled | first | second |", "|---|---|---|---|---|"]
    for similarity, pair in below + above:
        label = "duplicate" if pair.duplicate else "different"
        lines.append(f"| {similarity:.4f} | {pair.kind} | {label} | {pair.first} | {pair.second} |")
    return "\n".join(lines)
