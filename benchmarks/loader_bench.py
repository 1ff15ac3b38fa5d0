"""The `loader` stage: `Dataset.to_torch` over a published version of reviews with vectors, against a bare
pyarrow scan of the same columns of the same files, in the same run.

The version is written the way the platform publishes one (lib/published.StagedVersion: one parquet file in row
groups of 16,384 rows) with `rows` reviews: a 384-d float32 unit vector, a rating and a review id. Both sides
read the columns a training loop reads (`vector`, `rating`); the loader shuffles (units and rows) and hands out
dicts of tensors of 256 rows, in process (`num_workers=0`) and with 2 DataLoader workers. Each side is timed
`REPEATS` times, alternating, and its best time kept (the machine is shared and noisy; the page cache is warm
for both after the first pass).

Figures: loader_rows_per_s and loader_mb_per_s (in process), loader_rows_per_s_workers, bare_scan_rows_per_s,
loader_vs_bare_scan (bare seconds / loader seconds, in process; the goal is >= 0.8),
loader_vs_bare_scan_workers, loader_first_batch_s (from `to_torch` to the first batch, in process; goal < 1 s)
and loader_first_batch_s_workers.
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
BATCH = 256
COLUMNS = ["rating", "vector"]
REPEATS = 3
WRITE_BATCH = 50_000


def write_version(lake_root: str, rows: int, seed: int = 0) -> Any:
    """`rows` synthetic reviews with unit vectors, published as version 1 of `loader_bench`; the SDK's Dataset."""
    from platform_assets.lib.published import StagedVersion
    from platform_assets.sdk import Dataset

    rng = np.random.default_rng(seed)
    schema = pa.schema(
        [
            ("review_id", pa.string()),
            ("rating", pa.int64()),
            ("vector", pa.list_(pa.float32(), DIM)),
        ]
    )
    staged = StagedVersion(lake_root, "loader_bench", schema)
    for start in range(0, rows, WRITE_BATCH):
        count = min(WRITE_BATCH, rows - start)
        vectors = rng.standard_normal((count, DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        staged.write(
            pa.record_batch(
                [
                    pa.array([f"r{start + i:08d}" for i in range(count)]),
                    pa.array(rng.integers(1, 6, count)),
                    pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
                ],
                schema=schema,
            )
        )
    version = staged.publish(1)
    return Dataset(
        "loader_bench",
        1,
        "loader bench",
        f"file://{version.directory}",
        "parquet",
        {"columns": []},
        row_count=rows,
    )


def bare_scan(directory: str) -> tuple[float, int]:
    """Seconds and rows of a plain pyarrow.dataset scan of COLUMNS."""
    import pyarrow.dataset as pads

    start = time.perf_counter()
    rows = sum(
        batch.num_rows for batch in pads.dataset(directory, format="parquet").to_batches(columns=COLUMNS)
    )
    return time.perf_counter() - start, rows


def loader_epoch(dataset: Any, num_workers: int, epoch: int) -> tuple[float, float, int]:
    """(seconds to the first batch, seconds for the epoch, rows) of `to_torch` with shuffle."""
    start = time.perf_counter()
    loader = dataset.to_torch(
        batch_size=BATCH, columns=COLUMNS, shuffle=True, seed=1, rank=0, world_size=1, num_workers=num_workers
    )
    loader.set_epoch(epoch)
    first, rows = None, 0
    for batch in loader:
        if first is None:
            first = time.perf_counter() - start
        rows += len(batch["rating"])
    return first or 0.0, time.perf_counter() - start, rows


def run_loader_stage(rows: int) -> dict[str, Any]:
    """The stage's figures for a version of `rows` reviews written into the platform's lake (see the module
    docstring); the version is removed afterwards."""
    from platform_assets.lib.config import get_settings

    lake = get_settings().lake_uri
    written = time.perf_counter()
    dataset = write_version(lake, rows)
    write_s = time.perf_counter() - written
    directory = dataset.location.path
    size_bytes = sum(f.stat().st_size for f in Path(directory).iterdir())
    column_bytes = rows * (DIM * 4 + 8)
    bare, in_process, workers = [], [], []
    for repeat in range(REPEATS):
        seconds, scanned = bare_scan(directory)
        assert scanned == rows
        bare.append(seconds)
        first, seconds, loaded = loader_epoch(dataset, 0, repeat)
        assert loaded == rows
        in_process.append((first, seconds))
        first, seconds, loaded = loader_epoch(dataset, 2, repeat)
        assert loaded == rows
        workers.append((first, seconds))
    shutil.rmtree(directory, ignore_errors=True)
    best_bare = min(bare)
    best = min(s for _, s in in_process)
    best_workers = min(s for _, s in workers)
    return {
        "loader_rows": rows,
        "loader_version_bytes": size_bytes,
        "loader_write_rows_per_s": round(rows / write_s),
        "bare_scan_rows_per_s": round(rows / best_bare),
        "loader_rows_per_s": round(rows / best),
        "loader_mb_per_s": round(column_bytes / best / 1e6, 1),
        "loader_rows_per_s_workers": round(rows / best_workers),
        "loader_vs_bare_scan": round(best_bare / best, 3),
        "loader_vs_bare_scan_workers": round(best_bare / best_workers, 3),
        "loader_first_batch_s": round(min(f for f, _ in in_process), 3),
        "loader_first_batch_s_workers": round(min(f for f, _ in workers), 3),
    }


def main(argv: list[str]) -> int:
    """`python -m benchmarks loader [rows]`: the stage alone."""
    import json

    rows = int(argv[0]) if argv else 1_000_000
    print(json.dumps(run_loader_stage(rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
