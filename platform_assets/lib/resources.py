"""The shared resources every domain uses, configured for the current environment."""

from __future__ import annotations

from typing import Any

from platform_assets.lib.embedding import TextEmbedder
from platform_assets.lib.lake import LakeIOManager
from platform_assets.lib.ray_resource import RayResource
from platform_assets.lib.spark import SparkResource
from platform_assets.lib.vector_store import LanceDBIOManager, LanceDBResource


def shared_resources() -> dict[str, Any]:
    """IO managers and resources by key. Their settings resolve from the environment when a run starts."""
    ray = RayResource()
    return {
        "pyspark": SparkResource(),
        "lake_io_manager": LakeIOManager(),
        "lancedb_io_manager": LanceDBIOManager(),
        "lancedb": LanceDBResource(),
        "ray": ray,
        "embedder": TextEmbedder(ray=ray),
    }
