"""Semantic search over the embedded reviews (LanceDB, cosine similarity on normalised MiniLM vectors).

`search_vectors` is the vector part (ANN settings, prefilter, errors) shared by `semantic_search` and the
search benchmark (benchmarks/search_bench.py), so the benchmark measures the path users get. Users import
them from `platform_assets.search`, which re-exports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from platform_assets.defs.reviews.contract import LANCEDB_TABLE
from platform_assets.defs.reviews.filters import FilterError, check_filter, filter_columns
from platform_assets.lib.embedding import EMBEDDING_SPACE_COLUMN, embed_query
from platform_assets.lib.vector_store import VECTOR_COLUMN, connect_lancedb, has_vector_index, open_table

if TYPE_CHECKING:
    import lancedb
    import numpy as np

RESULT_COLUMNS = ["review_id", "product_id", "rating", "text"]
# IVF_PQ search settings, measured with benchmarks/search_bench.py --sweep at 1M rows (1000 partitions, 48
# sub-vectors, k=10, 2 shared cores). Recall is limited by PQ's coarse distances, not by the probes: at
# nprobes 20, refine_factor 1/10/30/50 gave recall@10 0.35/0.90/0.992/0.998 on the hard `--mixture
# isotropic` data (0.64/0.999/1.0/1.0 on the default topic mixture), nearly the same at nprobes 10 or 40;
# with `rating <= 2` nprobes 10 lost up to 0.013 against 20. Latency grows with the refine (the full
# vectors it re-reads): p50 about 9, 11, 13 and 17 ms for refine 10/20/30/50, interleaved on one table.
# refine 30 keeps recall >= 0.985 with and without the filter on both mixtures, at p95 17-22 ms on a loaded
# machine where refine 50 ran 20-27 ms (idle machine, default run: p50 14.3 ms, p95 18.9 ms, recall 1.0).
NPROBES = 20
REFINE_FACTOR = 30


class SearchError(RuntimeError):
    """The search cannot run (no table yet, a bad filter); the message says what to do.

    For a filter that is not one condition over the table's columns, `__cause__` is the FilterError, whose
    `position` is where the problem is.
    """


def checked_filter(table: lancedb.table.Table, where: str) -> str:
    """The SQL to run for the filter `where` on `table`: parsed whole, over the table's scalar columns.

    Raises SearchError (caused by a FilterError) when anything is left over or not allowed.
    """
    try:
        return check_filter(where, filter_columns(table.schema))
    except FilterError as err:
        raise SearchError(str(err)) from err


def search_vectors(
    table: lancedb.table.Table,
    vector: Sequence[float] | np.ndarray,
    k: int = 10,
    where: str | None = None,
    *,
    columns: Sequence[str] | None = None,
    nprobes: int = NPROBES,
    refine_factor: int = REFINE_FACTOR,
    exact: bool = False,
) -> list[dict[str, Any]]:
    """The `k` rows of `table` nearest to `vector` by cosine distance, best first, as dicts with `_distance`.

    `where` is a SQL filter applied before the vector search (a prefilter: a postfilter drops most true
    neighbours of a selective filter); it must be one condition over the table's scalar columns
    (`checked_filter`). With an ANN index, `nprobes` and `refine_factor` apply; `exact` skips the index (a
    flat scan, the ground truth for recall). `columns` limits the columns returned.
    Raises SearchError for a bad filter and when LanceDB rejects the query (a wrong vector width).
    """
    # LanceDB runs the first statement of `WHERE <filter>` and ignores what follows: it gets the checked SQL.
    filter_sql = checked_filter(table, where) if where else None
    search = table.search(vector, vector_column_name=VECTOR_COLUMN).distance_type("cosine")
    if exact:
        search = search.bypass_vector_index()
    elif has_vector_index(table):
        # PQ distances alone rank poorly (recall@10 0.35-0.64 at 1M); re-ranking refine_factor * k
        # candidates on the full vectors restores the order.
        search = search.nprobes(nprobes).refine_factor(refine_factor)
    if filter_sql:
        search = search.where(filter_sql, prefilter=True)
    if columns is not None:
        search = search.select(list(columns))
    try:
        return search.limit(k).to_list()
    except Exception as err:  # LanceDB reports filter errors as several exception types
        raise SearchError(f"search failed (filter {where!r}): {err}") from err


def semantic_search(
    query: str, k: int = 10, where: str | None = None, *, table: str = LANCEDB_TABLE, uri: str | None = None
) -> list[dict[str, Any]]:
    """The `k` reviews closest in meaning to `query`, best first.

    `where` is a SQL filter on the table's columns applied before the vector search (e.g. "rating <= 2"); a
    filter that is not one condition over those columns raises SearchError naming the character at fault.
    Each result holds review_id, product_id, rating, text and score (cosine similarity, 1.0 = identical).
    """
    if not query or not query.strip():
        raise SearchError("the query is empty")
    if k < 1:
        raise SearchError(f"k must be at least 1, got {k}")
    lance_table = open_table(connect_lancedb(uri), table)
    if lance_table is None:
        raise SearchError(f"no LanceDB table {table!r} yet: materialize embedded/reviews first (make run)")
    if where:
        checked_filter(lance_table, where)  # a bad filter fails before the model loads
    columns = [c for c in RESULT_COLUMNS if c in lance_table.schema.names]
    query_vector = embed_query(query, space=_embedding_space(lance_table))
    rows = search_vectors(lance_table, query_vector, k, where, columns=columns)
    results = []
    for row in rows:
        result = {name: row.get(name) for name in columns}
        result["score"] = round(1.0 - float(row["_distance"]), 6)
        results.append(result)
    return results


def _embedding_space(table: Any) -> str | None:
    """The vector space the table was written in (embedded/reviews writes one per table), so the query is
    embedded in the same one; None for a table written before spaces were recorded."""
    if EMBEDDING_SPACE_COLUMN not in table.schema.names:
        return None
    rows = table.search().select([EMBEDDING_SPACE_COLUMN]).limit(1).to_list()
    return rows[0][EMBEDDING_SPACE_COLUMN] if rows else None
