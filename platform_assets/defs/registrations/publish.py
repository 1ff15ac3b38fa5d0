"""Publishing back: the lineage record (from the asset graph) and the optional Cube Studio publisher."""

from __future__ import annotations

from typing import Any

import dagster as dg

from platform_assets.lib.config import get_settings
from platform_assets.lib.dataset_versions import asset_lineage


def lineage_record(
    context: dg.AssetExecutionContext, source: dict[str, Any], training_id: str
) -> dict[str, Any]:
    """The lineage record of the training-ready dataset: its source version, Dagster assets and run."""
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

    settings = get_settings()
    url, token = settings.cube_studio_url, settings.cube_studio_token
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


def emit_openlineage(
    context: dg.AssetExecutionContext, source: dict[str, Any], payload: dict[str, Any]
) -> str:
    """Send an OpenLineage COMPLETE event for the publication when OPENLINEAGE_URL or OPENLINEAGE_FILE is set."""
    settings = get_settings()
    url, path = settings.openlineage_url, settings.openlineage_file
    if not url and not path:
        return "off (set OPENLINEAGE_URL or OPENLINEAGE_FILE)"
    from datetime import UTC, datetime

    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState

    if url:
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        transport = HttpTransport(HttpConfig(url=url))
    else:
        from openlineage.client.transport.file import FileConfig, FileTransport

        transport = FileTransport(FileConfig(log_file_path=str(path), append=True))
    inputs = [
        InputDataset(
            namespace="metadata-center", name=f"{source['dataset_id']}@v{source['version']}", facets={}
        )
    ]
    if source.get("storage_path"):
        namespace, name = openlineage_name(source["storage_path"])
        inputs.append(InputDataset(namespace=namespace, name=name, facets={}))
    outputs = [OutputDataset(namespace="metadata-center", name=payload["dataset_id"], facets={})]
    namespace, name = openlineage_name(payload["storage_path"])
    outputs.append(OutputDataset(namespace=namespace, name=name, facets={}))
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=datetime.now(UTC).isoformat(),
        producer="https://github.com/platform-assets/platform_assets",
        run=Run(runId=context.run_id),
        job=Job(
            namespace="platform_assets", name=f"{context.asset_key.to_user_string()}[{context.partition_key}]"
        ),
        inputs=inputs,
        outputs=outputs,
    )
    OpenLineageClient(transport=transport).emit(event)
    return f"emitted to {url or path}"


def openlineage_name(storage_path: str) -> tuple[str, str]:
    """(namespace, name) of a storage location by the OpenLineage naming conventions, so consumers (Marquez)
    join our events with other producers': local files are namespace `file` with the absolute path as name;
    object stores are `s3://<bucket>` (gs://, …) with the object key, without a leading slash, as name."""
    import posixpath

    from platform_assets.metadata_center.storage import parse_storage_path

    location = parse_storage_path(storage_path)
    path = posixpath.normpath(location.path) if location.path else ""
    if location.is_local:
        return "file", path
    key = "" if path == "." else path.strip("/")
    return f"{location.protocol}://{location.bucket}", key
