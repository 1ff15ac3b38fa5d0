"""`TextEmbedder`, the Dagster resource that embeds texts on Ray (local or a cluster), one model per actor.

The backend (torch, ONNX fp32 or int8) is resolved once in the driver, where the ONNX export and its
verification happen; actors only load the cached file (policy.py). Vectors are L2-normalised float32, so
cosine similarity is a dot product.
"""

from __future__ import annotations

import warnings

import dagster as dg
import numpy as np
from pydantic import Field

from platform_assets.lib.embedding.policy import BackendSpec, cuda_available, load_encoder, resolve_backend
from platform_assets.lib.embedding.ray_actor import RayBatchEncoder
from platform_assets.lib.ray_resource import RayResource


def _no_actor_restarts() -> dict[str, int]:
    return {"max_restarts": 0}


class TextEmbedder(dg.ConfigurableResource):
    """Embeds texts with all-MiniLM-L6-v2 on Ray (local or a cluster), one model per actor.

    The backend (torch, ONNX fp32 or int8) is resolved in the driver before any actor starts; see
    policy.py for how `auto` decides and verification.py for which backends share a vector space.
    """

    ray: RayResource
    backend: str | None = Field(
        default=None,
        description="auto | torch | onnx | onnx-int8. Unset: PLATFORM_EMBED_BACKEND, else auto (ONNX fp32 on "
        "CPU when it verifiably matches torch, torch fp16 on a GPU). onnx-int8 is faster but approximate.",
    )
    actors: int = Field(
        default=1, description="Model actors in the pool; one per CPU core or GPU is a good start."
    )
    batch_size: int | None = Field(
        default=None, description="Texts per model call. Unset: 512 on a GPU, 64 on CPU."
    )
    rows_per_block: int | None = Field(
        default=None,
        description="Texts per Ray Data block (the unit handed to an actor). Unset: the texts shared among the "
        "actors, within 512..4096.",
    )
    threads_per_actor: int | None = Field(
        default=None,
        description="CPU threads per actor (torch or ONNX Runtime). Unset: a local Ray's CPUs shared among "
        "the actors; 1 on a cluster.",
    )
    gpus_per_actor: float | None = Field(
        default=None,
        description="GPUs per actor; > 0 schedules actors on GPU workers. Unset: 1 when Ray is local and this "
        "machine has a CUDA GPU, else 0.",
    )
    inline_max_texts: int = Field(
        default=256,
        description="With a local Ray, up to this many texts are embedded in this process: starting an actor "
        "and loading the model costs more than encoding them.",
    )

    def _gpus(self) -> float:
        if self.gpus_per_actor is not None:
            return self.gpus_per_actor
        if self.ray.resolved_address():
            return 0.0
        return 1.0 if cuda_available() else 0.0

    def backend_spec(self) -> BackendSpec:
        """The backend this resource embeds with, resolved (exported and verified if needed) in this process."""
        device = "cuda" if self._gpus() > 0 else "cpu"
        return resolve_backend(self.backend, device=device)

    def vector_space(self) -> str:
        """The id of the vector space this resource's vectors live in, e.g. minilm-l6-v2/fp32."""
        return self.backend_spec().space_id

    def embed(self, keys: list[str], texts: list[str]) -> dict[str, np.ndarray]:
        """Embed `texts`; return {key: 384-d normalised float32 vector} in `vector_space()`.

        Large inputs run on the Ray actor pool; with a local Ray, up to `inline_max_texts` run in this process.
        """
        if not texts:
            return {}
        # Resolve (and export) here, once, before any actor starts: actors only load the cached model.
        spec = self.backend_spec()
        gpus = self._gpus()
        if len(texts) <= self.inline_max_texts and not self.ray.resolved_address():
            vectors = load_encoder(spec).encode(list(texts), batch_size=self.batch_size)
            return dict(zip(keys, vectors, strict=True))
        import ray.data

        self.ray.connect()
        threads = self._threads()
        # Default: one block per actor, within 512..4096 texts. Each block is sorted by length inside the actor,
        # so bigger blocks pad less, and on one machine fewer blocks means fewer round trips.
        rows_per_block = self.rows_per_block or min(4096, max(512, -(-len(texts) // max(self.actors, 1))))
        import pandas as pd

        # One frame per block, split here: from_pandas(override_num_blocks=…) splits with a deprecated pandas
        # call and may cut blocks unevenly.
        blocks = [
            pd.DataFrame(
                {"key": keys[start : start + rows_per_block], "text": texts[start : start + rows_per_block]}
            )
            for start in range(0, len(texts), rows_per_block)
        ]
        dataset = ray.data.from_pandas(blocks)
        with warnings.catch_warnings():
            # Ray deprecates ray_remote_args_fn for 2.64 with no replacement for max_restarts yet (pinned 2.60).
            warnings.simplefilter("ignore", DeprecationWarning)
            embedded = dataset.map_batches(
                RayBatchEncoder,
                fn_constructor_kwargs={
                    "spec": spec.to_dict(),
                    "threads": threads,
                    "batch_size": self.batch_size,
                },
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                batch_size=rows_per_block,
                batch_format="numpy",
                num_gpus=gpus or None,
                num_cpus=threads if gpus == 0 else None,
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

    def _threads(self) -> int:
        """Threads per actor: configured, else a local Ray's CPUs shared among the actors (1 on a cluster)."""
        if self.threads_per_actor:
            return self.threads_per_actor
        if self.ray.resolved_address():
            return 1
        import ray

        # Asking for more CPUs than the local Ray has would leave the actor pending forever.
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return max(1, cpus // max(self.actors, 1))
