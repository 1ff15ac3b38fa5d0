"""The Ray Data actor that embeds batches.

It imports only numpy, config and the embedding modules (no Dagster), so that a Ray worker unpickling it
starts quickly; the package's `__init__` keeps Dagster out of import time for the same reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from platform_assets.lib.embedding.policy import BackendSpec


class RayBatchEncoder:
    """A Ray Data actor: builds the resolved encoder once, then embeds the batches it is given."""

    def __init__(self, spec: dict[str, Any], threads: int | None, batch_size: int | None) -> None:
        self.encoder = BackendSpec(**spec).load(threads=threads)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed one batch's `text` column; `key` passes through beside each `vector`."""
        vectors = self.encoder.encode(batch["text"].tolist(), batch_size=self.batch_size)
        return {"key": batch["key"], "vector": vectors}
