"""Embedding a search query in this process, in the vector space of the table it will search."""

from __future__ import annotations

import numpy as np

from platform_assets.lib.embedding.policy import backend_for_space, load_encoder, resolve_backend


def embed_query(text: str, space: str | None = None) -> np.ndarray:
    """Embed one query string in this process (the encoder is loaded once and cached).

    `space`: the vector space of the table being searched (its `embedding_space` column); unset, the
    configured backend (PLATFORM_EMBED_BACKEND). Pass it so a query meets an int8 table with int8 vectors.
    """
    backend = backend_for_space(space) if space else None
    return load_encoder(resolve_backend(backend)).encode([text])[0]
