"""`make bench`: run the benchmarks (all, or those named) and print their reports.

Figures are ratios against a baseline measured in the same run on the same data: these machines are noisy,
so absolute times say little. Nothing here asserts a threshold.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "lake_sync": "benchmarks.lake_sync_bench",
    "feast_online": "benchmarks.feast_online_bench",
    "embedding": "benchmarks.embedding_bench",
}


def main(argv: list[str]) -> int:
    """Run the named benchmarks (default: all) one after another."""
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"=== {name} ===", flush=True)
        code = importlib.import_module(BENCHMARKS[name]).main([])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
