"""Publishing back: the lineage record (from the asset graph) and the optional Cube Studio publisher."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg


def asset_lineage(context: dg.AssetExecutionContext) -> list[str]:
    """Every upstream asset of the running asset, read from the asset graph (not a hand-kept list)."""
    # The job's asset graph (the whole code location's when run from the UI) — the same graph the UI draws.
    graph = context.job_def.asset_layer.asset_graph
    seen: list[str] = []
    frontier = [context.asset_key]
    while frontier:
        key = frontier.pop()
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            name = parent.to_user_string()
            if name not in seen:
                seen.append(name)
                frontier.append(parent)
    return seen


def lineage_record(
    context: dg.AssetExecutionContext, source: dict[str, Any], training_id: str
) -> dict[str, Any]:
    """The seed-000 lineage record of the training-ready dataset."""
    metadata = source.get("metadata") or {}
    upstream: dict[str, list[str]] = {
        "datasets": [f"{source['dataset_id']}@v{source['version']}"],
        "dagster_assets": [f"{name}[{context.partition_key}]" for name in asset_lineage(context)],
        "dagster_runs": [context.run_id],
    }
    if metadata.get("etl_job_id"):
        upstream["etl_jobs"] = [str(metadata["etl_job_id"])]
    if metadata.get("source_tables"):
        upstream["source_tables"] = [str(t) for t in metadata["source_tables"]]
    return {
        "entity_type": "dataset",
        "entity_id": training_id,
        "lineage": {"upstream": upstream, "downstream": {}},
    }


def publish_to_cube_studio(payload: dict[str, Any], log: Any) -> str:
    """POST the dataset to a real Cube Studio when CUBE_STUDIO_URL and CUBE_STUDIO_TOKEN are set.

    Cube Studio's dataset API (`/dataset_modelview/api/`, header `Authorization: <token>`) keeps HTTP download
    URLs in `path` and drops s3:// ones, so the storage URI travels in `expand`.
    """
    import json

    import requests

    url, token = os.environ.get("CUBE_STUDIO_URL"), os.environ.get("CUBE_STUDIO_TOKEN")
    if not url or not token:
        return "off (set CUBE_STUDIO_URL and CUBE_STUDIO_TOKEN)"
    storage = payload["storage_path"]
    body = {
        "name": payload["dataset_id"],
        "label": payload["name"],
        "describe": f"{payload['name']} — registered by platform_assets",
        "path": storage if storage.startswith(("http://", "https://")) else "",
        "storage_class": payload["format"],
        "entries_num": str(payload["row_count"]),
        "status": "online",
        "expand": json.dumps({"uri": storage, "tags": payload["tags"], "metadata": payload["metadata"]}),
    }
    response = requests.post(
        f"{url.rstrip('/')}/dataset_modelview/api/", json=body, headers={"Authorization": token}, timeout=15
    )
    if response.status_code >= 300:
        message = f"Cube Studio answered HTTP {response.status_code}: {response.text[:200]}"
        log.warning(message)
        raise dg.Failure(description=message)
    return f"published to {url}"
