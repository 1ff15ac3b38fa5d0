"""The shared resources every domain uses, configured for the current environment."""

from __future__ import annotations

from typing import Any

from platform_assets.lib.config import PlatformSettings, get_settings, redact_url
from platform_assets.lib.curation.policy import CurationPolicy
from platform_assets.lib.embedding import TextEmbedder
from platform_assets.lib.lake import LakeIOManager
from platform_assets.lib.ray_resource import LOCAL, RayResource
from platform_assets.lib.spark import SparkResource, spark_config
from platform_assets.lib.vector_store import LanceDBIOManager, LanceDBResource


def shared_resources(settings: PlatformSettings | None = None) -> dict[str, Any]:
    """IO managers and resources by key, configured with `settings` (default: the environment, read now).

    The code location calls this when it loads, so the Dagster UI shows the resolved values (lake and LanceDB
    URIs, Ray address, Spark settings, embedding backend) instead of `None`. Secrets never go into these fields:
    S3 credentials are read from the environment when a run opens storage. A process that points the platform
    elsewhere after loading the definitions (a test changing PLATFORM_DATA_DIR) passes a fresh
    `shared_resources()` to its run.
    """
    settings = settings or get_settings()
    ray = RayResource(address=settings.ray_address or LOCAL)
    return {
        "pyspark": SparkResource(spark_conf=spark_config(settings)),
        "lake_io_manager": LakeIOManager(
            catalog_uri=redact_url(settings.catalog_uri), base_uri=settings.lake_uri
        ),
        "lancedb_io_manager": LanceDBIOManager(uri=settings.lancedb_uri),
        "lancedb": LanceDBResource(uri=settings.lancedb_uri),
        "ray": ray,
        "embedder": TextEmbedder(ray=ray, backend=settings.embed_backend),
        "curation": CurationPolicy(
            pii_policy=settings.curation_pii_policy,  # type: ignore[arg-type]
            duplicate_threshold=settings.curation_duplicate_threshold,
            drift_blocking=settings.curation_drift_blocking,
        ),
    }
