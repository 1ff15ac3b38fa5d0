"""Embedding throughput: every backend (torch, ONNX fp32, ONNX int8) encoding the same review texts directly,
the platform's Ray path (`TextEmbedder`, default backend) against a direct encode with that backend, int8's
agreement with torch, and the cost of re-running embedded/reviews after 1 % of the texts changed.

The measuring lives in benchmarks/embed_bench_core.py (`run_embed_stage`), shared with the benchmark harness.
On one small machine Ray only costs (process start, serialisation); the ratio shows how much, and on a GPU
node the same code shows what the accelerator gives. Run:
`.venv/bin/python -m benchmarks embedding [--rows 2000] [--actors 1] [--repeats 2] [--join 3] [--no-rerun]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any


def sample_texts(rows: int, join: int = 1) -> list[str]:
    """Cleaned review texts from the deterministic sample (what embedded/reviews embeds).

    The sample's texts are short (about 18 tokens); `join` > 1 joins that many consecutive texts into one,
    for review-length inputs (join=3: about 55 tokens).
    """
    from platform_assets.defs.reviews.cleaning import clean_reviews
    from platform_assets.defs.reviews.contract import RAW_REVIEWS
    from platform_assets.defs.reviews.sample_data import write_sample_reviews
    from platform_assets.lib.landing import read_landing

    with tempfile.TemporaryDirectory(prefix="embed-bench-") as directory:
        write_sample_reviews(Path(directory), rows=int(rows * join * 1.1) + 10)
        raw, _ = read_landing(Path(directory), RAW_REVIEWS.reader_schema())
    texts = clean_reviews(raw).cleaned["text"].tolist()
    return [" ".join(texts[i * join : (i + 1) * join]) for i in range(rows)]


def run(
    rows: int = 2000, actors: int = 1, repeats: int = 2, rerun: bool = True, join: int = 1
) -> dict[str, Any]:
    """The embedding stage report (see embed_bench_core.run_embed_stage) on `rows` cleaned sample reviews."""
    from benchmarks.embed_bench_core import run_embed_stage

    return {
        "join": join,
        **run_embed_stage(sample_texts(rows, join), actors=actors, repeats=repeats, rerun=rerun),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the report as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds per backend (best counts)")
    parser.add_argument("--join", type=int, default=1, help="sample texts per input (3: review-length)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the 1 %% re-run of embedded/reviews")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rows, args.actors, args.repeats, not args.no_rerun, args.join), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
