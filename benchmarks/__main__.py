"""`make bench`: the benchmark suite (`python -m benchmarks [--size N] [--embed-texts M] [--stages …]`), or one
of the focused benchmarks by name (`python -m benchmarks lake_sync|feast_online|embedding|search [args]`).

Figures are ratios against a baseline measured in the same run on the same data: these machines are noisy,
so absolute times say little. Nothing here asserts a threshold.
"""

from __future__ import annotations

import importlib
import sys

FOCUSED = {
    "lake_sync": "benchmarks.lake_sync_bench",
    "feast_online": "benchmarks.feast_online_bench",
    "embedding": "benchmarks.embedding_bench",
    "search": "benchmarks.search_bench",
    "clean": "benchmarks.clean_baseline",
    "loader": "benchmarks.loader_bench",
}


def main(argv: list[str]) -> int:
    """Run one focused benchmark when named first, else the whole suite."""
    from platform_assets.lib.runtime_env import apply_runtime_defaults

    apply_runtime_defaults()
    if argv and argv[0] in FOCUSED:
        return importlib.import_module(FOCUSED[argv[0]]).main(argv[1:])
    from benchmarks.suite import main as suite_main

    return suite_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
