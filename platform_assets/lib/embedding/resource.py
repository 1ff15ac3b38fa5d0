"""`TextEmbedder`, the Dagster resource that embeds texts on Ray (local or a cluster), one model per actor.

The backend (torch, ONNX fp32 or int8) is resolved once in the driver, where the ONNX export and its
verification happen; actors only load the cached file (policy.py). Vectors are L2-normalised float32, so
cosine similarity is a dot product.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
from pydantic import Field

from platform_assets.lib.embedding.model import VECTOR_COLUMN
from platform_assets.lib.embedding.policy import BackendSpec, cuda_available, load_encoder, resolve_backend
from platform_assets.lib.embedding.ray_actor import RayTableEncoder
from platform_assets.lib.ray_resource import RayResource

if TYPE_CHECKING:
    import pyarrow as pa


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
    actors: int | None = Field(
        default=None,
        description="Model actors in the pool. Unset: 1 on a local Ray (with all its CPUs as threads); on a "
        "cluster one per GPU when actors use GPUs, else one per threads_per_actor CPUs of the cluster.",
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
        description="GPUs per actor; > 0 schedules actors on GPU workers. Unset: 1 when the Ray in use has GPUs "
        "(this machine's CUDA GPU for a local Ray, the cluster's GPU workers for a cluster), else 0.",
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
            import ray

            # On a cluster the driver (a job on the head) usually has no GPU: ask the cluster, not this machine.
            self.ray.connect()
            return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return 1.0 if cuda_available() else 0.0

    def backend_spec(self) -> BackendSpec:
        """The backend this resource embeds with, resolved (exported and verified if needed) in this process."""
        device = "cuda" if self._gpus() > 0 else "cpu"
        return resolve_backend(self.backend, device=device)

    def vector_space(self) -> str:
        """The id of the vector space this resource's vectors live in, e.g. minilm-l6-v2/fp32."""
        return self.backend_spec().space_id

    def runs_inline(self, texts: int) -> bool:
        """True when `texts` texts are embedded in this process rather than on Ray actors."""
        return texts <= self.inline_max_texts and not self.ray.resolved_address()

    def embed(self, keys: list[str], texts: list[str]) -> dict[str, np.ndarray]:
        """Embed `texts`; return {key: 384-d normalised float32 vector} in `vector_space()`.

        Large inputs run on the Ray actor pool; with a local Ray, up to `inline_max_texts` run in this process.
        """
        if not texts:
            return {}
        # Resolve (and export) here, once, before any actor starts: actors only load the cached model.
        spec = self.backend_spec()
        if self.runs_inline(len(texts)):
            vectors = load_encoder(spec).encode(list(texts), batch_size=self.batch_size)
            return dict(zip(keys, vectors, strict=True))
        import pyarrow as pa

        result: dict[str, np.ndarray] = {}
        table = pa.table({"key": pa.array(keys, pa.string()), "text": pa.array(texts, pa.string())})
        for batch in self.embed_on_ray([table], rows=len(texts)):
            # The blocks come back as tables: a column is chunked, whose `flatten()` splits structs, not lists.
            column = batch.column(VECTOR_COLUMN).combine_chunks()
            vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, -1)
            result.update(zip(batch.column("key").to_pylist(), vectors, strict=True))
        missing = len(set(keys)) - len(result)
        if missing:
            raise RuntimeError(f"embedding lost {missing} of {len(set(keys))} texts on Ray")
        return result

    def embed_tables(self, tables: Iterable[pa.Table], *, rows: int, key: str) -> Iterator[pa.Table]:
        """Embed the `text` column of `tables` (`rows` rows in all, `key` unique); yield them with a `vector`
        column, in batches of any order and size.

        With a local Ray, what the tables actually hold decides (`rows` may be an upper bound, say a delivery
        of which a few texts changed): up to `inline_max_texts` are embedded here, table by table, through
        `embed`. Anything more, or any cluster, runs on one Ray actor pool for all the tables (`embed_on_ray`,
        whose batches also carry `_node`).
        """
        tables = iter(tables)
        buffered: list[pa.Table] = []
        if self.runs_inline(0):
            count = 0
            for table in tables:
                buffered.append(table)
                count += table.num_rows
                if not self.runs_inline(count):
                    break
            else:
                yield from self._embed_inline(buffered, key)
                return
        yield from self.embed_on_ray(itertools.chain(buffered, tables), rows=rows)

    def _embed_inline(self, tables: list[pa.Table], key: str) -> Iterator[pa.Table]:
        from platform_assets.lib.embedding.ray_actor import vector_array

        for table in tables:
            if not table.num_rows:
                continue
            keys = table.column(key).to_pylist()
            vectors = self.embed(keys, table.column("text").to_pylist())
            yield table.append_column(VECTOR_COLUMN, vector_array(np.stack([vectors[k] for k in keys])))

    def embed_on_ray(self, tables: Iterable[pa.Table], *, rows: int) -> Iterator[pa.Table]:
        """Embed the `text` column of `tables` on one Ray actor pool; yield each block back with `vector` and
        `_node` (the IP of the node that embedded it) appended, as blocks finish.

        The tables go to Ray's object store in blocks of `rows_per_block` as they arrive (so the caller never
        holds them all), then one pool of `actors` model actors embeds every block.
        """
        import ray
        import ray.data

        spec = self.backend_spec()  # before any actor starts: actors only load the cached model
        self.ray.connect()
        actors, threads, gpus = self.pool_shape()
        # Default: the texts shared among the actors, within 512..4096 per block. Each block is sorted by length
        # inside the actor, so bigger blocks pad less; more blocks than actors keep every actor busy.
        rows_per_block = self.rows_per_block or min(4096, max(512, -(-rows // actors)))
        refs = [
            ray.put(table.slice(start, rows_per_block))
            for table in tables
            for start in range(0, table.num_rows, rows_per_block)
        ]
        if not refs:
            return
        dataset = ray.data.from_arrow_refs(refs)
        with warnings.catch_warnings():
            # Ray deprecates ray_remote_args_fn for 2.64 with no replacement for max_restarts yet (pinned 2.60).
            warnings.simplefilter("ignore", DeprecationWarning)
            embedded = dataset.map_batches(
                RayTableEncoder,
                fn_constructor_kwargs={
                    "spec": spec.to_dict(),
                    "threads": threads,
                    "batch_size": self.batch_size,
                },
                compute=ray.data.ActorPoolStrategy(size=actors),
                batch_size=rows_per_block,
                batch_format="pyarrow",
                num_gpus=gpus or None,
                num_cpus=threads if gpus == 0 else None,
                # A restarted actor could not rebuild itself (its constructor arguments live in the object store);
                # a failed embedding step is retried by Dagster instead.
                ray_remote_args_fn=_no_actor_restarts,
            )
        import pyarrow as pa

        for batch in embedded.iter_batches(batch_format="pyarrow", batch_size=None):
            yield batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])

    def pool_shape(self) -> tuple[int, int, float]:
        """(actors, threads per actor, GPUs per actor) of the actor pool on the connected Ray.

        Configured values win. Unset on a local Ray: one actor with all its CPUs as threads (two torch
        processes with two threads each on two cores lost up to 5x). Unset on a cluster: one actor per GPU
        when actors use GPUs, else one single-threaded actor per CPU the cluster has.
        """
        import ray

        gpus = self._gpus()
        resources = ray.cluster_resources()
        # Asking for more CPUs or GPUs than the Ray has would leave the actors pending forever.
        cpus = max(1, int(resources.get("CPU", 1)))
        if gpus > 0:
            actors = self.actors or max(1, int(resources.get("GPU", 1) // gpus))
            return actors, self.threads_per_actor or 1, gpus
        if self.ray.resolved_address():
            threads = self.threads_per_actor or 1
            return self.actors or max(1, cpus // threads), threads, 0.0
        actors = self.actors or 1
        return actors, self.threads_per_actor or max(1, cpus // actors), 0.0
