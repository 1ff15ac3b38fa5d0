"""Semantic search over the embedded reviews: `semantic_search("battery dies too fast", k=10)`.

The search lives with its domain (`platform_assets.defs.reviews.search`); this module keeps the import path
users, the CLI and the benchmarks use.
"""

from platform_assets.defs.reviews.search import (
    NPROBES,
    REFINE_FACTOR,
    RESULT_COLUMNS,
    SearchError,
    search_vectors,
    semantic_search,
)

__all__ = ["NPROBES", "REFINE_FACTOR", "RESULT_COLUMNS", "SearchError", "search_vectors", "semantic_search"]
