"""The search benchmark stage on a small table: contract keys, the production indexes, recall with the index.

No timing is asserted (a shared machine); recall and the ground truth's agreement with LanceDB's own flat scan
are behaviours that can fail (a lost refine_factor, a postfilter, a wrong distance type).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.search_bench import run_search_stage
from platform_assets.lib.config import PlatformSettings

CONTRACT_KEYS = ("search_p95_ms_100k", "search_p95_ms_1m", "search_recall_at_10")


def test_search_stage_recall_with_the_index(tmp_path: Path, platform_env: PlatformSettings) -> None:
    # 5,000 rows with index_min_rows lowered so the IVF_PQ index is built (a 20K-row build takes ~50 s here).
    report = run_search_stage(sizes=(5_000,), queries=20, seed=3, directory=tmp_path, index_min_rows=2_000)

    for key in CONTRACT_KEYS:
        assert key in report
    assert report["search_p95_ms_100k"] is None and report["search_p95_ms_1m"] is None  # sizes not run
    size = report["search_sizes"]["5k"]
    assert size["indexed"] and size["index"].startswith("IVF_PQ (cosine), built")
    # The scalar indexes embedded/reviews declares were built alongside.
    assert {"review_id:BTree", "rating:Bitmap"} <= set(size["indexes"])
    assert 0.05 < size["where_selectivity"] < 0.5
    # The numpy ground truth agrees with LanceDB's exhaustive search on the same table.
    assert size["exact_recall_vs_numpy"] >= 0.99
    assert report["search_recall_at_10_5k"] >= 0.9
    assert report["search_recall_at_10_5k_where"] >= 0.9
    assert report["search_recall_at_10"] == report["search_recall_at_10_5k"]
    assert report["search_recall_at_10_rows"] == 5_000
    assert report["search_p95_ms_5k"] > 0 and report["search_p95_ms_5k_where"] > 0
