"""The Ray Data actor that embeds batches.

It imports only numpy, pyarrow, config and the embedding modules (no Dagster), so that a Ray worker unpickling
it starts quickly; the package's `__init__` keeps Dagster out of import time for the same reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from platform_assets.lib.embedding.model import NODE_COLUMN, VECTOR_COLUMN
from platform_assets.lib.embedding.policy import BackendSpec

if TYPE_CHECKING:
    import pyarrow as pa


def vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """Rows of float32 vectors as Arrow's fixed_size_list<float32, dim> (what LanceDB stores)."""
    import pyarrow as pa

    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


class RayTableEncoder:
    """A Ray Data actor: builds the resolved encoder once, then embeds the `text` column of the batches it is
    given. Every other column passes through; `vector` and `_node` (this node's IP, so the driver can say where
    the work ran) are appended."""

    def __init__(self, spec: dict[str, Any], threads: int | None, batch_size: int | None) -> None:
        import ray

        self.encoder = BackendSpec(**spec).load(threads=threads)
        self.batch_size = batch_size
        self.node = ray.util.get_node_ip_address()

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Embed one batch's texts; the batch comes back with its vectors and this node's address."""
        import pyarrow as pa

        vectors = self.encoder.encode(batch.column("text").to_pylist(), batch_size=self.batch_size)
        nodes = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(batch.num_rows, dtype=np.int32)), pa.array([self.node])
        )
        return batch.append_column(VECTOR_COLUMN, vector_array(vectors)).append_column(NODE_COLUMN, nodes)
