"""Vector search: p50/p95 latency of k=10 queries, recall@10 against exact search, with and without `where`.

The table is built the way production builds `embedded/reviews`: rows cast by the LanceDB IO manager's
`to_arrow`, written in one `create_table` (the IO manager's first write; streamed in 100K-row chunks so
memory stays modest), then the two steps of the IO manager's `maintain_indexes`, timed apart: the scalar
indexes the embedded_reviews asset declares (btree on review_id, bitmap on rating) and the IVF_PQ index of
`ensure_vector_index` (partitions and sub-vectors from `ivf_pq_params`). Queries go through `search_vectors`,
the function `semantic_search` calls (NPROBES, REFINE_FACTOR, prefilter).

The vectors are a Gaussian mixture, not uniform noise: on uniform random vectors IVF-PQ recall collapses and
says nothing about text embeddings. Topics → cluster centres around them → points around the centres (unit
norm, 384-d; see `Mixture`), with uneven cluster sizes and spreads, and a rating whose distribution depends on
the cluster (some topics are mostly complaints), so `rating <= 2` selects about a fifth of the rows, unevenly.
Queries are held-out draws from the same mixture (not in the table). Recall@10 is measured against an exact
numpy scan of the stored vectors (computed chunk by chunk as they are generated); a few LanceDB flat searches
(`bypass_vector_index`) check that ground truth and give the exact-search latency the index is compared with.

Run: `.venv/bin/python -m benchmarks.search_bench [--sizes 100000 1000000] [--queries 200] [--sweep]
[--mixture topics|isotropic]` (100K + 1M: 5-8 minutes on 2 cores, mostly the IVF_PQ builds).
Progress goes to stderr, the JSON report to stdout. Nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
K = 10
WHERE = "rating <= 2"
CHUNK_ROWS = 100_000
# A first pass of separate held-out queries loads the index partitions into LanceDB's cache; the figures are
# taken after it (a serving process is warm). Its own latencies are reported as first_pass_*: on a freshly
# opened 1M table they ran from about the warm p95 (idle machine) to 3x it (loaded machine).
WARMUP_QUERIES = 100
EXACT_QUERIES = 5
TABLE = "search_bench"
# nprobes x refine_factor grid of `--sweep`: the settings around the production ones.
SWEEP_NPROBES = (5, 10, 20, 40)
SWEEP_REFINE = (1, 10, 30, 50)


def _log(message: str) -> None:
    print(f"[search_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def size_label(rows: int) -> str:
    """100_000 → "100k", 1_000_000 → "1m"; other sizes as digits."""
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}m"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@dataclass
class Mixture:
    """A two-level Gaussian mixture of unit vectors with a cluster-dependent rating.

    Topics → cluster centres around them → points around the centres. Kind "topics" (the default): most of a
    point's offset from its centre lies in a 16-d subspace of its topic (text embeddings vary along few
    directions), plus a little isotropic noise; a held-out query's true top-10 at 1M rows sits at cosine
    ~0.83 (1st) to ~0.78 (10th), a third of it outside the query's own cluster: clusters overlap. Kind
    "isotropic", a harder stress case: the whole offset is isotropic 384-d noise, so cluster-mates are all
    nearly equally far (1st and 10th neighbour within ~0.02 of each other) and PQ's coarse distances rank
    them worst; real embeddings lie between the two.
    """

    topic_of: np.ndarray  # (clusters,) topic index of each cluster
    bases: np.ndarray  # (topics, DIM, SUBSPACE) orthonormal bases of the topics' variation
    centres: np.ndarray  # (clusters, DIM) unit vectors
    weights: np.ndarray  # (clusters,) sampling probabilities, uneven
    spread: np.ndarray  # (clusters,) norm of a point's in-subspace offset from its (unit) centre
    rating_probs: np.ndarray  # (clusters, 5) P(rating = 1..5)
    isotropic: float  # norm of the isotropic part of a point's offset

    SUBSPACE = 16
    KINDS = ("topics", "isotropic")

    @classmethod
    def make(
        cls, rng: np.random.Generator, clusters: int = 4_000, topics: int = 100, kind: str = "topics"
    ) -> Mixture:
        """Topics, cluster centres scattered around them, uneven cluster weights and spreads."""
        if kind not in cls.KINDS:
            raise ValueError(f"mixture kind {kind!r}: choose from {cls.KINDS}")
        topic_dirs = _normalise(rng.standard_normal((topics, DIM)))
        bases = np.linalg.qr(rng.standard_normal((topics, DIM, cls.SUBSPACE)))[0].astype(np.float32)
        topic_of = rng.integers(0, topics, clusters)
        # Centres of one topic share a direction (cosine ~0.85), as related subjects do.
        centres = _normalise(topic_dirs[topic_of] + 0.4 * rng.standard_normal((clusters, DIM)) / np.sqrt(DIM))
        weights = rng.dirichlet(np.full(clusters, 1.0))
        spread = rng.uniform(0.6, 1.0, clusters) * (kind == "topics")
        # Reviews skew positive; each cluster draws its own mix around that, so complaints concentrate.
        base = np.array([0.10, 0.08, 0.12, 0.25, 0.45])
        rating_probs = rng.dirichlet(base * 4.0, size=clusters)
        return cls(
            topic_of,
            bases,
            centres.astype(np.float32),
            weights,
            spread.astype(np.float32),
            rating_probs,
            isotropic=0.3 if kind == "topics" else 0.8,
        )

    @property
    def clusters(self) -> int:
        """Number of clusters."""
        return len(self.weights)

    def sample(self, rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`rows` unit vectors (float32), their ratings (int32, 1..5) and clusters (int32)."""
        cluster = rng.choice(self.clusters, size=rows, p=self.weights)
        vectors = self.centres[cluster] + rng.standard_normal((rows, DIM), dtype=np.float32) * np.float32(
            self.isotropic / np.sqrt(DIM)
        )
        latent = rng.standard_normal((rows, self.SUBSPACE), dtype=np.float32) * (
            self.spread[cluster, None] / np.float32(np.sqrt(self.SUBSPACE))
        )
        topic = self.topic_of[cluster]
        for t in np.unique(topic):  # per topic, so no (rows, DIM, SUBSPACE) gather is ever materialised
            members = topic == t
            vectors[members] += latent[members] @ self.bases[t].T
        cumulative = np.cumsum(self.rating_probs[cluster], axis=1)
        ratings = (rng.random(rows)[:, None] > cumulative).sum(axis=1).clip(0, 4) + 1
        return _normalise(vectors).astype(np.float32), ratings.astype(np.int32), cluster.astype(np.int32)


class TopK:
    """Running exact top-k (by cosine similarity) of each query over row chunks seen so far."""

    def __init__(self, queries: np.ndarray, k: int = K) -> None:
        self.queries = queries
        self.k = k
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.rows = np.full((len(queries), k), -1, dtype=np.int64)

    def update(self, vectors: np.ndarray, first_row: int, mask: np.ndarray | None = None) -> None:
        """Fold a chunk of vectors (global rows first_row…) into the top-k; `mask` keeps only some rows."""
        scores = self.queries @ vectors.T
        if mask is not None:
            scores[:, ~mask] = -np.inf
        take = min(self.k, scores.shape[1])
        best = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        merged_scores = np.concatenate([self.scores, np.take_along_axis(scores, best, axis=1)], axis=1)
        merged_rows = np.concatenate([self.rows, best + first_row], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, : self.k]
        self.scores = np.take_along_axis(merged_scores, order, axis=1)
        self.rows = np.where(np.isfinite(self.scores), np.take_along_axis(merged_rows, order, axis=1), -1)


def review_id(row: int) -> str:
    """The review_id of global row `row`."""
    return f"r{row:09d}"


def _percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(float(np.percentile(ordered, 95)) * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def _recall(found: list[list[str]], truth: np.ndarray) -> float:
    hits = total = 0
    for ids, rows in zip(found, truth, strict=True):
        expected = {review_id(int(r)) for r in rows if r >= 0}
        hits += len(expected & set(ids))
        total += len(expected)
    return round(hits / max(total, 1), 4)


def _timed_searches(
    table: Any, queries: np.ndarray, where: str | None, **search_options: Any
) -> tuple[list[float], list[list[str]]]:
    """Run `search_vectors` for each query: the latencies (s) and the review_ids found."""
    from platform_assets.search import search_vectors

    latencies, found = [], []
    for vector in queries:
        start = time.perf_counter()
        rows = search_vectors(table, vector, K, where, columns=["review_id"], **search_options)
        latencies.append(time.perf_counter() - start)
        found.append([row["review_id"] for row in rows])
    return latencies, found


def _measure(
    table: Any,
    queries: np.ndarray,
    where: str | None,
    truth: np.ndarray,
    warmup: np.ndarray,
    warmups: int = 5,
    **search_options: Any,
) -> dict[str, Any]:
    """Latency percentiles and recall@K of `search_vectors` over `queries`, after `warmups` warm-ups."""
    _timed_searches(table, warmup[:warmups], where, **search_options)
    latencies, found = _timed_searches(table, queries, where, **search_options)
    return {**_percentiles(latencies), "recall_at_10": _recall(found, truth)}


def build_table(
    directory: Path,
    rows: int,
    mixture: Mixture,
    queries: np.ndarray,
    *,
    seed: int,
    index_min_rows: int,
) -> tuple[Any, dict[str, Any], TopK, TopK, np.ndarray]:
    """Write `rows` mixture rows through the production write and index path; exact top-k on the way."""
    import pyarrow as pa

    from platform_assets.defs.reviews.assets import EMBEDDED, embedded_reviews
    from platform_assets.lib.vector_store import (
        connect_lancedb,
        ensure_scalar_indexes,
        ensure_vector_index,
        to_arrow,
    )

    truth, truth_where = TopK(queries), TopK(queries)
    rng = np.random.default_rng([seed, rows])
    ratings = np.empty(rows, dtype=np.int32)
    clusters = np.empty(rows, dtype=np.int32)
    schema = pa.schema(
        [("review_id", pa.string()), ("rating", pa.int32()), ("vector", pa.list_(pa.float32(), DIM))]
    )
    with tempfile.TemporaryDirectory(prefix="search-bench-vectors-") as scratch:
        # Generate first, into a memory-mapped file (1.5 GB at 1M rows stays out of RAM), so that the timed
        # write below measures LanceDB and not the generator; the exact top-k is computed chunk by chunk.
        start = time.perf_counter()
        vectors = np.lib.format.open_memmap(
            Path(scratch) / "vectors.npy", mode="w+", dtype=np.float32, shape=(rows, DIM)
        )
        for first in range(0, rows, CHUNK_ROWS):
            end = min(first + CHUNK_ROWS, rows)
            chunk, ratings[first:end], clusters[first:end] = mixture.sample(rng, end - first)
            vectors[first:end] = chunk
            truth.update(chunk, first)
            truth_where.update(chunk, first, ratings[first:end] <= 2)  # WHERE, evaluated in numpy
        vectors.flush()
        _log(f"  generated {rows:,} rows and their exact top-{K} in {time.perf_counter() - start:.1f} s")

        def batches() -> Iterator[pa.RecordBatch]:
            for first in range(0, rows, CHUNK_ROWS):
                end = min(first + CHUNK_ROWS, rows)
                frame = pa.table(
                    {
                        "review_id": pa.array([review_id(row) for row in range(first, end)], pa.string()),
                        "rating": pa.array(ratings[first:end], pa.int32()),
                        "vector": pa.FixedSizeListArray.from_arrays(
                            pa.array(np.ascontiguousarray(vectors[first:end]).reshape(-1)), DIM
                        ),
                    }
                )
                yield from to_arrow(frame, DIM).to_batches(max_chunksize=end - first)

        # One create_table, as the IO manager's first write of an asset, streamed chunk by chunk.
        db = connect_lancedb(str(directory))
        start = time.perf_counter()
        table = db.create_table(TABLE, pa.RecordBatchReader.from_batches(schema, batches()), mode="overwrite")
        write_s = time.perf_counter() - start
    _log(f"  wrote {rows:,} rows in {write_s:.1f} s")

    # Exactly the indexes embedded/reviews gets from the IO manager: its declared scalar ones, then IVF_PQ.
    scalar_indexes = embedded_reviews.metadata_by_key[EMBEDDED]["lancedb/scalar_indexes"]
    start = time.perf_counter()
    ensure_scalar_indexes(table, scalar_indexes)
    scalar_s = time.perf_counter() - start
    _log(f"  scalar indexes {scalar_indexes} in {scalar_s:.1f} s; building the vector index…")
    start = time.perf_counter()
    note = ensure_vector_index(table, index_min_rows=index_min_rows, vector_dim=DIM)
    vector_s = time.perf_counter() - start
    _log(f"  {note} in {vector_s:.1f} s")
    stats = {
        "insert_rows_per_s": round(rows / write_s),
        "scalar_index_build_s": round(scalar_s, 2),
        "index_build_s": round(vector_s, 2),
        "index": note,
        "where_selectivity": round(float((ratings <= 2).mean()), 4),
        "indexes": sorted(f"{index.columns[0]}:{index.index_type}" for index in table.list_indices()),
    }
    return table, stats, truth, truth_where, clusters


def bench_size(
    rows: int,
    directory: Path,
    mixture: Mixture,
    queries: np.ndarray,
    query_clusters: np.ndarray,
    warmup: np.ndarray,
    *,
    seed: int,
    index_min_rows: int,
    sweep: bool,
) -> dict[str, Any]:
    """Build one table of `rows` and measure it: indexed search with and without WHERE, exact baseline."""
    from platform_assets.lib.vector_store import connect_lancedb, has_vector_index, open_table

    _log(f"{rows:,} rows: generating and writing")
    _, stats, truth, truth_where, clusters = build_table(
        directory, rows, mixture, queries, seed=seed, index_min_rows=index_min_rows
    )
    # Searched through a fresh handle, as semantic_search opens it.
    table = open_table(connect_lancedb(str(directory)), TABLE)
    _log(f"  searching: {len(queries)} queries, k={K}, without and with {WHERE!r}")
    first_pass = _percentiles(_timed_searches(table, warmup, None)[0])
    first_pass_where = _percentiles(_timed_searches(table, warmup, WHERE)[0])
    plain = _measure(table, queries, None, truth.rows, warmup)
    filtered = _measure(table, queries, WHERE, truth_where.rows, warmup)
    # LanceDB's own flat scan on a few queries: the latency the index saves, and a check of the numpy truth.
    exact = _measure(table, queries[:EXACT_QUERIES], None, truth.rows[:EXACT_QUERIES], warmup, 1, exact=True)
    result = {
        "rows": rows,
        **stats,
        "indexed": has_vector_index(table),
        "p50_ms": plain["p50_ms"],
        "p95_ms": plain["p95_ms"],
        "mean_ms": plain["mean_ms"],
        "recall_at_10": plain["recall_at_10"],
        "p50_ms_where": filtered["p50_ms"],
        "p95_ms_where": filtered["p95_ms"],
        "recall_at_10_where": filtered["recall_at_10"],
        "first_pass_p50_ms": first_pass["p50_ms"],
        "first_pass_p95_ms": first_pass["p95_ms"],
        "first_pass_p95_ms_where": first_pass_where["p95_ms"],
        "exact_p50_ms": exact["p50_ms"],
        "exact_recall_vs_numpy": exact["recall_at_10"],
        # Similarity of the queries to their 1st and 10th true neighbours: compare with real embeddings.
        "neighbour_cosine_1st": round(float(truth.scores[:, 0].mean()), 3),
        "neighbour_cosine_10th": round(float(truth.scores[:, -1].mean()), 3),
        # Share of the true top-10 in the query's own cluster: well below 1 means the clusters overlap.
        "neighbours_in_query_cluster": round(
            float((clusters[truth.rows] == query_clusters[:, None]).mean()), 3
        ),
    }
    _log(
        f"  p50 {plain['p50_ms']} ms, p95 {plain['p95_ms']} ms, recall@10 {plain['recall_at_10']}; "
        f"where: p95 {filtered['p95_ms']} ms, recall@10 {filtered['recall_at_10']}; "
        f"exact p50 {exact['p50_ms']} ms"
    )
    if sweep and result["indexed"]:
        grid = []
        for nprobes in SWEEP_NPROBES:
            for refine in SWEEP_REFINE:
                options = {"nprobes": nprobes, "refine_factor": refine}
                one = _measure(table, queries, None, truth.rows, warmup, **options)
                where = _measure(table, queries, WHERE, truth_where.rows, warmup, **options)
                grid.append(
                    {
                        **options,
                        "p95_ms": one["p95_ms"],
                        "recall_at_10": one["recall_at_10"],
                        "p95_ms_where": where["p95_ms"],
                        "recall_at_10_where": where["recall_at_10"],
                    }
                )
                _log(f"  sweep {grid[-1]}")
        result["sweep"] = grid
    return result


def run_search_stage(
    sizes: Sequence[int] = (100_000, 1_000_000),
    queries: int = 200,
    seed: int = 8,
    directory: str | Path | None = None,
    *,
    index_min_rows: int | None = None,
    sweep: bool = False,
    mixture_kind: str = "topics",
) -> dict[str, Any]:
    """Measure search latency and recall at each size; the report's flat keys plus a per-size breakdown.

    Keys: `search_p50_ms_<size>`, `search_p95_ms_<size>`, `search_recall_at_10_<size>` and the same with
    `_where` (size as "100k", "1m"…), plus the contract keys `search_p95_ms_100k`, `search_p95_ms_1m` (None
    when that size was not run) and `search_recall_at_10` (at 1M without the filter, else at the largest size
    run; `search_recall_at_10_rows` says which). `directory` holds the tables (default: a temporary one,
    removed afterwards); `index_min_rows` defaults to the IO manager's; `mixture_kind` picks the data
    (see `Mixture`); `sweep` adds a grid of nprobes x refine_factor per size.
    """
    from platform_assets.lib.vector_store import DEFAULT_INDEX_MIN_ROWS
    from platform_assets.search import NPROBES, REFINE_FACTOR

    rng = np.random.default_rng(seed)
    mixture = Mixture.make(rng, kind=mixture_kind)
    # Held-out queries: fresh draws from the mixture, a stream the table rows never use.
    query_vectors, _, query_clusters = mixture.sample(np.random.default_rng([seed, 0]), queries)
    warmup_vectors, _, _ = mixture.sample(np.random.default_rng([seed, 1]), WARMUP_QUERIES)
    report: dict[str, Any] = {
        "search_p95_ms_100k": None,
        "search_p95_ms_1m": None,
        "search_recall_at_10": None,
        "search_k": K,
        "search_queries": queries,
        "search_where": WHERE,
        "search_nprobes": NPROBES,
        "search_refine_factor": REFINE_FACTOR,
        "search_data": (
            f"Gaussian mixture ({mixture_kind}): {mixture.clusters} clusters around {len(mixture.bases)} "
            f"topics, {DIM}-d unit vectors; held-out queries"
        ),
        "search_sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="search-bench-") as scratch:
        base = Path(directory) if directory else Path(scratch)
        for rows in sorted(sizes):
            result = bench_size(
                rows,
                base / size_label(rows),
                mixture,
                query_vectors,
                query_clusters,
                warmup_vectors,
                seed=seed,
                index_min_rows=DEFAULT_INDEX_MIN_ROWS if index_min_rows is None else index_min_rows,
                sweep=sweep,
            )
            label = size_label(rows)
            report["search_sizes"][label] = result
            for key in ("p50_ms", "p95_ms", "recall_at_10"):
                report[f"search_{key}_{label}"] = result[key]
                report[f"search_{key}_{label}_where"] = result[f"{key}_where"]
            report[f"search_index_build_s_{label}"] = result["index_build_s"]
            report[f"search_insert_rows_per_s_{label}"] = result["insert_rows_per_s"]
    headline = 1_000_000 if 1_000_000 in sizes else max(sizes)
    chosen = report["search_sizes"][size_label(headline)]
    report["search_recall_at_10"] = chosen["recall_at_10"]
    report["search_recall_at_10_where"] = chosen["recall_at_10_where"]
    report["search_recall_at_10_rows"] = headline
    return report


def main(argv: list[str] | None = None) -> int:
    """Print the report as JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--dir", default=None, help="keep the tables here (default: a temporary directory)")
    parser.add_argument("--sweep", action="store_true", help="also measure a grid of nprobes x refine_factor")
    parser.add_argument("--mixture", choices=Mixture.KINDS, default="topics", help="the data (see Mixture)")
    args = parser.parse_args(argv)
    os.environ.setdefault("LANCEDB_LOG", "error")  # LanceDB's Rust warnings would bury the progress lines
    report = run_search_stage(
        args.sizes, args.queries, args.seed, args.dir, sweep=args.sweep, mixture_kind=args.mixture
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
