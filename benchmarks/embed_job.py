"""The embedding as a Ray job on a cluster, against a direct encode of the same texts, and the step's memory.

A real two-node Ray cluster on loopback (`platform_assets.lib.ray_cluster`; a head without CPUs and a worker
with this machine's CPUs) stands in for the KubeRay cluster. Each measured run is a child process
(`python -m benchmarks.embed_job --child …`) that materializes the real `embedded/reviews` asset with
RAY_ADDRESS set to the cluster's job API, as a Dagster run process would: its wall time is the step's, and its
peak RSS (VmHWM) is the step process's, whatever the job holds on the cluster. The direct encode runs in this
process with the default backend, on the same texts, in the same run.

Figures: embed_job_texts_per_s (texts / the step's wall time, job start and model load included),
embed_job_vs_direct_encode (direct seconds / step seconds), embed_job_step_peak_rss_gib (at `scale_rows`
rows when that run is made, else at the texts' count) and embed_job_min_cosine_vs_direct.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3


def _write_delivery(data_dir: Path, delivery: str, texts: list[str]) -> None:
    """The texts as one delivery's rows of cleaned/reviews in the lake under `data_dir`."""
    from benchmarks.embed_bench_core import _cleaned_frame
    from platform_assets.defs.reviews.assets import CLEANED
    from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN
    from platform_assets.lib.config import env_overrides
    from platform_assets.lib.lake import open_catalog, write_table

    frame = _cleaned_frame(texts).assign(**{DELIVERY_COLUMN: delivery})
    frame["review_id"] = [f"{delivery}-{i:07d}" for i in range(len(frame))]
    lake = {"PLATFORM_DATA_DIR": str(data_dir), "PLATFORM_LAKE_URI": None, "PLATFORM_CATALOG_URI": None}
    with env_overrides(lake):
        write_table(open_catalog(), CLEANED, frame, partition_column=DELIVERY_COLUMN, partition_key=delivery)


def _run_child(data_dir: Path, delivery: str, job_api: str, model_cache: str) -> dict[str, Any]:
    from platform_assets.lib.config import child_env

    env = {
        name: value
        for name, value in child_env().items()
        if not name.startswith(("PLATFORM_", "RAY_ADDRESS"))
    }
    env.update(
        {"PLATFORM_DATA_DIR": str(data_dir), "RAY_ADDRESS": job_api, "PLATFORM_MODEL_CACHE_DIR": model_cache}
    )
    command = [sys.executable, "-m", "benchmarks.embed_job", "--child", "--delivery", delivery]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"embed job child failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stored_vectors(data_dir: Path, delivery: str) -> tuple[list[str], np.ndarray]:
    from platform_assets.lib.vector_store import connect_lancedb, equals_any, read_columns

    table = connect_lancedb(str(data_dir / "lancedb")).open_table("reviews")
    frame = read_columns(table, ["text", "vector"], where=equals_any("_source_file", [delivery])).to_pandas()
    return frame["text"].tolist(), np.stack(frame["vector"].to_numpy()).astype(np.float32)


def measure_job_path(texts: list[str], scale_texts: list[str] | None = None) -> dict[str, Any]:
    """The job path on a local two-node cluster against a direct encode of `texts`; with `scale_texts`, a second
    delivery of that many rows measures the step's peak RSS at scale. A flat JSON-able report."""
    from platform_assets.lib.config import get_settings
    from platform_assets.lib.embedding.policy import load_encoder, resolve_backend
    from platform_assets.lib.ray_cluster import local_ray_cluster

    report: dict[str, Any] = {"embed_job_rows": len(texts)}
    # Export and verify the default backend here, before anything is timed; the job finds the export in the
    # same cache (the child passes PLATFORM_MODEL_CACHE_DIR on, and so does the step to its job).
    spec = resolve_backend(device="cpu")
    encoder = load_encoder(spec)
    cache = str(get_settings().model_cache_dir)
    workdir = Path(tempfile.mkdtemp(prefix="embed-job-"))
    try:
        with local_ray_cluster(worker_cpus=os.cpu_count() or 2) as cluster:
            _write_delivery(workdir, "bench_job.csv", texts)
            child = _run_child(workdir, "bench_job.csv", cluster.dashboard_url, cache)
            started = time.perf_counter()
            direct = encoder.encode(texts)
            direct_s = time.perf_counter() - started
            stored_texts, stored = _stored_vectors(workdir, "bench_job.csv")
            order = {text: index for index, text in enumerate(texts)}
            cosine = np.sum(stored * direct[[order[text] for text in stored_texts]], axis=1)
            metadata = child["metadata"]
            report.update(
                {
                    "embed_job_texts_per_s": round(len(texts) / child["seconds"], 1),
                    "embed_job_direct_texts_per_s": round(len(texts) / direct_s, 1),
                    "embed_job_vs_direct_encode": round(direct_s / child["seconds"], 3),
                    "embed_job_step_s": round(child["seconds"], 2),
                    "embed_job_actors_texts_per_s": metadata["embed_texts_per_s"],
                    "embed_job_backend": metadata["embedding_backend"],
                    "embed_job_nodes": metadata["ray_nodes"],
                    "embed_job_embedded_rows": metadata["embedded_rows"],
                    "embed_job_min_cosine_vs_direct": round(float(cosine.min()), 6),
                    "embed_job_step_peak_rss_gib": round(child["peak_rss_bytes"] / GIB, 3),
                    "embed_job_step_peak_rss_rows": len(texts),
                }
            )
            if scale_texts:
                _write_delivery(workdir, "bench_job_scale.csv", scale_texts)
                scale = _run_child(workdir, "bench_job_scale.csv", cluster.dashboard_url, cache)
                report.update(
                    {
                        "embed_job_step_peak_rss_gib": round(scale["peak_rss_bytes"] / GIB, 3),
                        "embed_job_step_peak_rss_rows": len(scale_texts),
                        "embed_job_step_peak_rss_gib_small": round(child["peak_rss_bytes"] / GIB, 3),
                        "embed_job_scale_texts_per_s": round(len(scale_texts) / scale["seconds"], 1),
                        "embed_job_scale_embedded_rows": scale["metadata"]["embedded_rows"],
                    }
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def _child(delivery: str) -> dict[str, Any]:
    """Materialize embedded/reviews for `delivery` as a Dagster run process would (RAY_ADDRESS: the job API)."""
    from platform_assets.lib.runtime_env import apply_runtime_defaults

    apply_runtime_defaults()
    import dagster as dg

    from benchmarks.dataplane import peak_rss_bytes
    from platform_assets.defs.reviews.assets import embedded_reviews
    from platform_assets.defs.reviews.partitions import review_deliveries
    from platform_assets.lib.resources import shared_resources

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(review_deliveries.name, [delivery])
    started = time.perf_counter()
    result = dg.materialize(
        [embedded_reviews], resources=shared_resources(), instance=instance, partition_key=delivery
    )
    seconds = time.perf_counter() - started
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == embedded_reviews.key]
    metadata = {key: value.value for key, value in event.materialization.metadata.items()}
    return {"seconds": seconds, "peak_rss_bytes": peak_rss_bytes(), "metadata": metadata}


def main(argv: list[str] | None = None) -> int:
    """`--child --delivery D`: one measured run (prints JSON). Otherwise: the whole measurement on sample texts."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--delivery")
    parser.add_argument("--rows", type=int, default=2000, help="review-length texts for the ratio")
    parser.add_argument("--scale-rows", type=int, default=0, help="short texts for the memory run (0: none)")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.delivery), default=str))
        return 0
    from benchmarks.embedding_bench import sample_texts

    scale = sample_texts(args.scale_rows) if args.scale_rows else None
    print(json.dumps(measure_job_path(sample_texts(args.rows, join=3), scale), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
