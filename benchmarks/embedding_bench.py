"""Embedding throughput: the platform's Ray path (`TextEmbedder`, one model per actor) against a direct
`SentenceTransformer.encode` of the same texts in the same run, with the vectors compared.

On one small machine Ray only costs (process start, serialisation); the ratio shows how much, and on a GPU
node the same code shows what the accelerator gives. Run:
`.venv/bin/python -m benchmarks embedding [--rows 2000] [--device cpu|cuda] [--actors 1]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def sample_texts(rows: int) -> list[str]:
    """Cleaned review texts from the deterministic sample (what embedded/reviews embeds)."""
    from platform_assets.defs.reviews.assets import REVIEW_SCHEMA
    from platform_assets.defs.reviews.cleaning import clean_reviews
    from platform_assets.defs.reviews.sample_data import write_sample_reviews
    from platform_assets.lib.landing import read_landing

    directory = Path(tempfile.mkdtemp(prefix="embed-bench-"))
    write_sample_reviews(directory, rows=int(rows * 1.1) + 10)
    raw, _ = read_landing(directory, REVIEW_SCHEMA)
    return clean_reviews(raw).cleaned["text"].tolist()[:rows]


def run(rows: int = 2000, device: str = "cpu", actors: int = 1, batch_size: int = 128) -> dict[str, Any]:
    """Direct encode vs the Ray path on the same texts; texts/s for each, their ratio, and vector agreement."""
    import torch

    from platform_assets.lib.embedding import TextEmbedder, load_model
    from platform_assets.lib.ray_resource import RayResource

    texts = sample_texts(rows)
    threads = torch.get_num_threads()
    model = load_model(device=device)
    model.encode(texts[:64], batch_size=batch_size)  # warm-up: first-call allocation and kernel selection
    start = time.perf_counter()
    direct = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    direct_s = time.perf_counter() - start

    gpus = 1.0 if device == "cuda" else 0.0
    embedder = TextEmbedder(
        ray=RayResource(),
        actors=actors,
        batch_size=batch_size,
        gpus_per_actor=gpus,
        threads_per_actor=max(1, threads // max(actors, 1)),
    )
    embedder.ray.connect()
    embedder.embed([f"w{i}" for i in range(64)], texts[:64])  # warm-up: actor start and model load
    start = time.perf_counter()
    vectors = embedder.embed([str(i) for i in range(len(texts))], texts)
    ray_s = time.perf_counter() - start
    stacked = np.stack([vectors[str(i)] for i in range(len(texts))])
    cosine = np.sum(stacked * direct, axis=1)
    return {
        "rows": len(texts),
        "device": device,
        "actors": actors,
        "direct_texts_per_s": round(len(texts) / direct_s, 1),
        "ray_texts_per_s": round(len(texts) / ray_s, 1),
        "ray_over_direct": round(direct_s / ray_s, 3),
        "min_cosine_ray_vs_direct": round(float(cosine.min()), 6),
        "torch_threads": threads,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the report as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rows, args.device, args.actors, args.batch_size), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
