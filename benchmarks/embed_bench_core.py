"""The embedding stage measured on one set of texts, for the benchmark harness (`run_embed_stage`).

In one run, on the same texts: direct encode throughput of every backend (torch, ONNX fp32, ONNX int8); the
platform's pipeline path (`TextEmbedder` on Ray with the default backend) against a direct encode with that
backend; int8's agreement with torch (cosine, top-10 neighbour overlap); and the cost of re-running the real
`embedded/reviews` asset after 1 % of the texts changed, as a fraction of the full run.

Exporting and verifying the ONNX models (once per cache) is timed apart from every throughput figure.
Nothing here asserts a threshold: the machines are noisy, the figures are for reading.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("torch", "onnx", "onnx-int8")
# The one delivery (review_deliveries partition) the re-run's texts belong to: embedded/reviews runs per delivery.
RERUN_DELIVERY = "bench_rerun.csv"


def _seconds(run: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = run()
    return time.perf_counter() - started, value


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int = 10, chunk: int = 1024) -> float:
    """Mean share of each row's k nearest neighbours (cosine, itself excluded) that `a` and `b` agree on."""
    n = len(a)
    k = min(k, n - 1)
    if k < 1:
        return 1.0
    shares = []
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        neighbours = []
        for vectors in (a, b):
            similarity = vectors[rows] @ vectors.T
            similarity[np.arange(len(rows)), rows] = -np.inf
            neighbours.append(np.argpartition(-similarity, k, axis=1)[:, :k])
        shares.extend(
            len(set(x.tolist()) & set(y.tolist())) / k
            for x, y in zip(neighbours[0], neighbours[1], strict=True)
        )
    return float(np.mean(shares))


def _cleaned_frame(texts: list[str]) -> Any:
    import pandas as pd

    n = len(texts)
    return pd.DataFrame(
        {
            "review_id": [f"bench-{i:07d}" for i in range(n)],
            "product_id": [f"p{i % 97}" for i in range(n)],
            "user_id": [f"u{i}" for i in range(n)],
            "rating": [1 + i % 5 for i in range(n)],
            "text": list(texts),
            "created_at": pd.to_datetime(["2026-01-01"] * n, utc=True),
            "_source_file": RERUN_DELIVERY,
        }
    )


def measure_rerun(texts: list[str], actors: int | None = None) -> dict[str, Any]:
    """Materialize the real embedded/reviews asset on `texts`, change 1 % of them, materialize again.

    Uses the project's asset and resources on a throwaway data directory: the texts are written to its lake as
    the cleaned rows of one delivery (RERUN_DELIVERY, a partition of review_deliveries), which the asset reads,
    then rewritten with 1 % of the texts changed, as a corrected re-delivery of a file would be.
    """
    import dagster as dg

    from platform_assets.defs.reviews.assets import CLEANED, embedded_reviews
    from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN, review_deliveries
    from platform_assets.lib.config import env_overrides
    from platform_assets.lib.embedding import TextEmbedder
    from platform_assets.lib.lake import open_catalog, write_table
    from platform_assets.lib.ray_resource import RayResource
    from platform_assets.lib.vector_store import LanceDBIOManager

    workdir = Path(tempfile.mkdtemp(prefix="embed-rerun-"))
    uri = str(workdir / "lancedb")
    resources = {
        "embedder": TextEmbedder(ray=RayResource(), actors=actors),
        "lancedb_io_manager": LanceDBIOManager(uri=uri),
    }

    def materialize(frame: Any) -> tuple[float, dict[str, Any]]:
        write_table(
            open_catalog(), CLEANED, frame, partition_column=DELIVERY_COLUMN, partition_key=RERUN_DELIVERY
        )
        started = time.perf_counter()
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(review_deliveries.name, [RERUN_DELIVERY])
        result = dg.materialize(
            [embedded_reviews], resources=resources, instance=instance, partition_key=RERUN_DELIVERY
        )
        seconds = time.perf_counter() - started
        (event,) = [
            e for e in result.get_asset_materialization_events() if e.asset_key == embedded_reviews.key
        ]
        return seconds, {key: value.value for key, value in event.materialization.metadata.items()}

    lake = {"PLATFORM_DATA_DIR": str(workdir), "PLATFORM_LAKE_URI": None, "PLATFORM_CATALOG_URI": None}
    try:
        with env_overrides(lake):
            frame = _cleaned_frame(texts)
            full_s, full = materialize(frame)
            changed = frame.index[:: max(1, len(frame) // max(1, len(frame) // 100))][
                : max(1, len(frame) // 100)
            ]
            frame.loc[changed, "text"] = frame.loc[changed, "text"] + " (Edited: still happy with it.)"
            rerun_s, rerun = materialize(frame)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "rerun_full_s": round(full_s, 2),
        "rerun_1pct_s": round(rerun_s, 2),
        "embed_rerun_1pct_fraction": round(rerun_s / full_s, 3),
        "rerun_changed_rows": len(changed),
        "rerun_embedded_rows": rerun["embedded_rows"],
        "rerun_reused_rows": rerun["reused_rows"],
        "rerun_full_embedded_rows": full["embedded_rows"],
    }


def run_embed_stage(
    texts: list[str], *, actors: int = 1, repeats: int = 1, rerun: bool = True
) -> dict[str, Any]:
    """Measure the embedding stage on `texts` (a few thousand review texts); a flat JSON-able report.

    `repeats`: timed rounds per backend and for the pipeline (the best counts; see below).
    On a GPU machine "torch" is torch fp16 on the GPU (the default there) and the ONNX figures are CPU ones.

    Keys: embed_texts_per_s (pipeline, default backend), embed_vs_direct_encode, embed_rerun_1pct_fraction,
    embed_backend (the resolved default), backend_texts_per_s {torch, onnx, onnx-int8}, default_vs_torch,
    int8_vs_torch, int8_mean_cosine, int8_min_cosine, int8_top10_overlap, gpu, plus export and detail figures.
    """
    from platform_assets.lib import embedding as emb
    from platform_assets.lib.embedding import TextEmbedder
    from platform_assets.lib.ray_resource import RayResource

    texts = list(texts)
    report: dict[str, Any] = {"rows": len(texts), "cpus": emb.default_threads()}
    gpu = None
    if emb.cuda_available():
        import torch

        gpu = torch.cuda.get_device_name(0)
    report["gpu"] = gpu

    # Export, quantise and verify (nothing when the cache is warm): timed apart from every throughput.
    started = time.perf_counter()
    specs = {
        "torch": emb.resolve_backend("torch"),
        "onnx": emb.resolve_backend("onnx", device="cpu"),
        "onnx-int8": emb.resolve_backend("onnx-int8", device="cpu"),
    }
    default = emb.resolve_backend(None)
    report["export_resolve_s"] = round(time.perf_counter() - started, 2)
    fp32_manifest = emb.read_manifest(Path(specs["onnx"].model_file)) or {}
    int8_manifest = emb.read_manifest(Path(specs["onnx-int8"].model_file)) or {}
    report["onnx_export_s"] = fp32_manifest.get("build_seconds")
    report["onnx_verify_s"] = fp32_manifest.get("verify_seconds")
    report["int8_quantise_s"] = int8_manifest.get("build_seconds")
    report["embed_backend"] = default.backend
    report["embed_backend_name"] = default.name
    report["embed_space"] = default.space_id

    # Direct encodes. The machines are shared and noisy: every round times each backend once, in a rotating
    # order, and the best round counts, so a burst of load elsewhere does not decide the ratios.
    encoders = {name: specs[name].load() for name in BACKENDS}
    for encoder in encoders.values():
        encoder.encode(texts[:64])  # first-call allocation, kernel selection, thread-pool start
    seconds: dict[str, float] = dict.fromkeys(BACKENDS, float("inf"))
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(max(1, repeats)):
        for name in BACKENDS[round_ % 3 :] + BACKENDS[: round_ % 3]:
            elapsed, vectors[name] = _seconds(lambda name=name: encoders[name].encode(texts))
            seconds[name] = min(seconds[name], elapsed)

    for name, key in (("onnx", "onnx"), ("onnx-int8", "int8")):
        cosine = np.sum(vectors[name] * vectors["torch"], axis=1)
        report[f"{key}_mean_cosine"] = round(float(cosine.mean()), 6)
        report[f"{key}_min_cosine"] = round(float(cosine.min()), 6)
    report["int8_top10_overlap"] = round(top_k_overlap(vectors["onnx-int8"], vectors["torch"]), 4)
    report["onnx_top10_overlap"] = round(top_k_overlap(vectors["onnx"], vectors["torch"]), 4)

    # The pipeline path: TextEmbedder on Ray, default backend and settings, each run paired with a direct
    # encode by the same backend right before it. Ray's own start is outside the timing (once per process);
    # the actor pool's start and model load are inside (every run pays them).
    embedder = TextEmbedder(ray=RayResource(), actors=actors)
    embedder.ray.connect()
    keys = [str(i) for i in range(len(texts))]
    direct_s = pipeline_s = float("inf")
    direct = encoders[default.backend]
    for _ in range(max(1, repeats)):
        elapsed, _vectors = _seconds(lambda: direct.encode(texts))
        direct_s = min(direct_s, elapsed)
        elapsed, embedded = _seconds(lambda: embedder.embed(keys, texts))
        pipeline_s = min(pipeline_s, elapsed)
    encoders.clear()  # free the models before the re-run measure
    seconds[default.backend] = min(seconds[default.backend], direct_s)
    pipeline = np.stack([embedded[key] for key in keys])
    report["embed_texts_per_s"] = round(len(texts) / pipeline_s, 1)
    report["embed_direct_texts_per_s"] = round(len(texts) / direct_s, 1)
    report["embed_vs_direct_encode"] = round(direct_s / pipeline_s, 3)
    report["embed_min_cosine_vs_direct"] = round(
        float(np.sum(pipeline * vectors[default.backend], axis=1).min()), 6
    )
    report["pipeline_threads_per_actor"] = embedder.pool_shape()[1]
    report["pipeline_actors"] = actors

    report["backend_names"] = {name: specs[name].name for name in BACKENDS}
    report["backend_texts_per_s"] = {name: round(len(texts) / seconds[name], 1) for name in BACKENDS}
    report["default_vs_torch"] = round(seconds["torch"] / seconds[default.backend], 3)
    report["onnx_vs_torch"] = round(seconds["torch"] / seconds["onnx"], 3)
    report["int8_vs_torch"] = round(seconds["torch"] / seconds["onnx-int8"], 3)
    report["repeats"] = max(1, repeats)

    if rerun:
        report.update(measure_rerun(texts, actors=actors))
    return report
