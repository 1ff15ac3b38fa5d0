"""The `curation` stage: near-duplicate search for a delivery against a stored table through LanceDB's ANN index,
and a full pass over every stored vector (k-means clusters, exact inside), each beside an exact brute-force
computation of the same pairs in the same run.

Vectors are synthetic, with the structure embeddings have: unit vectors scattered around 2,000 topic centres
(two reviews of one topic have cosine similarity about 0.7), of which 1 % are near-duplicates (a light
perturbation of an earlier row, similarity about 0.99). The delivery brings its own twins of stored rows and
of its own rows. The threshold is 0.9: only the planted twins reach it.

Exact pairs: for a sample of `EXACT_SAMPLE` planted twins plus as many random rows (a full rows x rows product is
out of reach on this machine), their similarity to every stored row by blocked numpy; recall is the share of the
sample's exact twins the route found (the random rows would show natural pairs the generator did not plant).

Figures: curation_delivery_rows_per_s (the ANN route, delivery against the table, plus within the delivery),
curation_recall_vs_exact (of that route; goal >= 0.98), curation_index_build_s, curation_full_pass_s_1m
(every stored row against every other; goal < 120 s at 1M rows), curation_full_pass_recall, and the exact
computation's time per row (exact_seconds_per_row) for scale.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

DIM = 384
TOPICS = 2_000
DUPLICATE_SHARE = 0.01
THRESHOLD = 0.9
EXACT_SAMPLE = 2_000
WRITE_ROWS = 100_000


def synthetic_vectors(
    rows: int, seed: int, earlier: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around shared topic centres, and which rows are twins: `DUPLICATE_SHARE` of them are light
    perturbations of an earlier row (of this set, or, for about half, of `earlier` when given)."""
    centres = np.random.default_rng(0).standard_normal((TOPICS, DIM), dtype=np.float32)
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(0, TOPICS, rows)] + 0.6 * rng.standard_normal(
        (rows, DIM), dtype=np.float32
    )
    twins = rng.choice(np.arange(1, rows), int(rows * DUPLICATE_SHARE), replace=False)
    for row in twins:
        source = earlier if earlier is not None and rng.random() < 0.5 else vectors[:row]
        original = source[rng.integers(0, len(source))]
        vectors[row] = original / np.linalg.norm(original) + 0.006 * rng.standard_normal(
            DIM, dtype=np.float32
        )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.sort(twins)


def _table(db: Any, vectors: np.ndarray) -> Any:
    schema = pa.schema([("review_id", pa.string()), ("vector", pa.list_(pa.float32(), DIM))])
    table = None
    for start in range(0, len(vectors), WRITE_ROWS):
        chunk = vectors[start : start + WRITE_ROWS]
        batch = pa.table(
            {
                "review_id": pa.array([f"s{start + i:08d}" for i in range(len(chunk))]),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.ravel()), DIM),
            },
            schema=schema,
        )
        table = db.create_table("stored", batch) if table is None else table
        if start:
            table.add(batch)
    return table


def exact_twins(
    queries: np.ndarray, stored: np.ndarray, skip_self: np.ndarray | None = None
) -> list[set[int]]:
    """For each query, the stored rows at or above THRESHOLD (blocked numpy); `skip_self`: each query's own row."""
    found: list[set[int]] = [set() for _ in range(len(queries))]
    for start in range(0, len(stored), 100_000):
        similarities = queries @ stored[start : start + 100_000].T
        for query, column in zip(*np.nonzero(similarities >= THRESHOLD), strict=True):
            if skip_self is None or start + column != skip_self[query]:
                found[query].add(start + int(column))
    return found


def run_curation_stage(workdir: Path, rows: int) -> dict[str, Any]:
    """Build a table of `rows` vectors, search a delivery of rows / 10 against it, and pass over the whole table."""
    from platform_assets.lib.curation.near_duplicates import (
        full_pass_pairs,
        pairs_against_table,
        pairs_within,
    )
    from platform_assets.lib.vector_store import connect_lancedb, ensure_vector_index

    delivery_rows = max(1_000, rows // 10)
    directory = workdir / "curation_lancedb"
    shutil.rmtree(directory, ignore_errors=True)
    stored, stored_twins = synthetic_vectors(rows, seed=1)
    delivery, delivery_twins = synthetic_vectors(delivery_rows, seed=2, earlier=stored)
    db = connect_lancedb(str(directory))
    table = _table(db, stored)
    started = time.perf_counter()
    index_note = ensure_vector_index(table, index_min_rows=1, vector_dim=DIM)
    index_seconds = time.perf_counter() - started
    _log(f"curation: {rows} stored vectors indexed in {index_seconds:.1f} s ({index_note})")

    ids = [f"d{i:08d}" for i in range(delivery_rows)]
    started = time.perf_counter()
    against = pairs_against_table(table, ids, delivery, THRESHOLD, key="review_id", earlier_rows=None)
    taken = [int(pair.review_id[1:]) for pair in against]
    within = pairs_within(ids, delivery, THRESHOLD, excluded=taken)
    delivery_seconds = time.perf_counter() - started
    _log(
        f"curation: delivery of {delivery_rows} rows in {delivery_seconds:.1f} s ({len(against)} + {len(within)})"
    )

    rng = np.random.default_rng(3)
    sample = _sample(rng, delivery_rows, delivery_twins)
    started = time.perf_counter()
    exact = exact_twins(delivery[sample], stored)
    exact_seconds = time.perf_counter() - started
    flagged = {int(pair.review_id[1:]) for pair in against}
    with_twin = [row for row, twins in zip(sample, exact, strict=True) if twins]
    delivery_recall = sum(int(row) in flagged for row in with_twin) / max(len(with_twin), 1)

    stored_ids = [f"s{i:08d}" for i in range(rows)]
    started = time.perf_counter()
    full = full_pass_pairs(stored_ids, stored, THRESHOLD)
    full_seconds = time.perf_counter() - started
    _log(f"curation: full pass over {rows} vectors in {full_seconds:.1f} s ({len(full)} duplicates)")
    # A stored row has an earlier twin when exact search finds one before it; the full pass must flag it.
    stored_sample = _sample(rng, rows, stored_twins)
    exact_stored = exact_twins(stored[stored_sample], stored, skip_self=stored_sample)
    full_flagged = {int(pair.review_id[1:]) for pair in full}
    duplicated = [
        int(row)
        for row, twins in zip(stored_sample, exact_stored, strict=True)
        if any(t < row for t in twins)
    ]
    full_recall = sum(row in full_flagged for row in duplicated) / max(len(duplicated), 1)
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "curation_rows": rows,
        "curation_delivery_rows": delivery_rows,
        "curation_threshold": THRESHOLD,
        "curation_index_build_s": round(index_seconds, 2),
        "curation_delivery_s": round(delivery_seconds, 2),
        "curation_delivery_rows_per_s": round(delivery_rows / delivery_seconds, 1),
        "curation_recall_vs_exact": round(delivery_recall, 4),
        "curation_recall_sample_twins": len(with_twin),
        "curation_full_pass_s": round(full_seconds, 2),
        "curation_full_pass_s_1m": round(full_seconds * 1_000_000 / rows, 2),
        "curation_full_pass_recall": round(full_recall, 4),
        "curation_full_pass_sample_twins": len(duplicated),
        "curation_exact_seconds_per_row": round(exact_seconds / len(sample), 5),
        "curation_exact_vs_ann_per_row": round(
            (exact_seconds / len(sample)) / (delivery_seconds / delivery_rows), 2
        ),
    }


def _sample(rng: np.random.Generator, rows: int, twins: np.ndarray) -> np.ndarray:
    """Up to EXACT_SAMPLE planted twins and EXACT_SAMPLE random rows."""
    planted = rng.choice(twins, min(EXACT_SAMPLE, len(twins)), replace=False)
    return np.unique(np.concatenate([planted, rng.choice(rows, min(EXACT_SAMPLE, rows), replace=False)]))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
