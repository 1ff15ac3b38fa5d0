"""The embedding as a Ray job: `python -m platform_assets.jobs.embed --delivery KEY [options]`.

The Dagster step `embedded/reviews` submits this to the cluster's job API (RAY_ADDRESS=http(s)://head:8265)
through dagster-ray's PipesRayJobClient. On the cluster, Ray sets RAY_ADDRESS for the job's driver, so the
embedder attaches there: the delivery is read from the lake, embedded on an actor pool over the cluster's
CPU or GPU workers, and written to LanceDB by this driver in bounded batches (defs/reviews/embedding.py).
Progress goes to the Dagster run's logs and the outcome to the asset's metadata through Pipes.

Run by hand (`ray job submit -- python -m platform_assets.jobs.embed --delivery …`), outside Dagster, it
prints the outcome's metadata as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from platform_assets.lib.config import get_settings, launched_through_pipes
from platform_assets.lib.runtime_env import apply_runtime_defaults


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The job's command line (the Dagster step builds it from the embedder's and the IO manager's config)."""
    parser = argparse.ArgumentParser(prog="python -m platform_assets.jobs.embed", description=__doc__)
    parser.add_argument("--delivery", required=True, help="the review_deliveries partition to embed")
    parser.add_argument(
        "--backend", default=None, help="auto | torch | onnx | onnx-int8 (default: PLATFORM_EMBED_BACKEND)"
    )
    parser.add_argument("--actors", type=int, default=None, help="model actors (default: one per GPU or CPU)")
    parser.add_argument("--threads-per-actor", type=int, default=None)
    parser.add_argument("--gpus-per-actor", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="texts per model call")
    parser.add_argument("--rows-per-block", type=int, default=None, help="texts per Ray Data block")
    parser.add_argument("--lancedb-uri", default=None, help="default: PLATFORM_LANCEDB_URI")
    parser.add_argument("--index-min-rows", type=int, default=None, help="rows before an ANN index is built")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    """Embed the delivery on the Ray cluster this process runs on; return the metadata for the asset."""
    from platform_assets.defs.reviews.embedding import embed_delivery
    from platform_assets.lib.embedding.resource import TextEmbedder
    from platform_assets.lib.ray_resource import RayResource

    # Inside a Ray job Ray sets RAY_ADDRESS to the cluster's GCS; `auto` finds the node's cluster otherwise.
    ray = RayResource(address=get_settings().ray_address or "auto")
    embedder = TextEmbedder(
        ray=ray,
        backend=args.backend,
        actors=args.actors,
        threads_per_actor=args.threads_per_actor,
        gpus_per_actor=args.gpus_per_actor,
        batch_size=args.batch_size,
        rows_per_block=args.rows_per_block,
    )
    outcome = embed_delivery(
        args.delivery, embedder, lancedb_uri=args.lancedb_uri, index_min_rows=args.index_min_rows, log=log
    )
    return outcome.metadata()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job: through Dagster Pipes when a Dagster step launched it, else printing JSON."""
    apply_runtime_defaults()
    args = parse_args(argv)
    from dagster_pipes import open_dagster_pipes

    if not launched_through_pipes():
        metadata = run(args, log=lambda message: print(message, file=sys.stderr, flush=True))
        print(json.dumps({name: entry["raw_value"] for name, entry in metadata.items()}))
        return 0
    with open_dagster_pipes() as pipes:
        metadata = run(args, log=pipes.log.info)
        pipes.report_asset_materialization(metadata=metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
