"""Heavy steps as Ray jobs on a cluster, followed through Dagster Pipes (dagster-ray's Pipes clients).

A step whose Ray target is a cluster's job API (RAY_ADDRESS=http(s)://head:8265, `lib/config.RayTarget`) runs
its work as `python -m <module> <arguments>` on that cluster (`PipesRayJobClient`); with PLATFORM_RAYJOB_TEMPLATE
set, as a KubeRay RayJob of its own made from that template (`PipesKubeRayJobClient`: a Ray cluster for the
step, deleted when the job ends). Either way the job reads and writes the lake itself, its log lines stream
into the step, and what it reports through Pipes becomes the step's materializations. Terminating the run stops
the job (forward_termination); a failed or stopped job fails the step with its error line and log tail.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from platform_assets.lib.config import get_settings, ray_job_env

# How many lines of a failed job's log the step's failure carries.
LOG_TAIL_LINES = 40


def runs_as_ray_job() -> bool:
    """True when heavy steps run as Ray jobs: RAY_ADDRESS is a job API, or PLATFORM_RAYJOB_TEMPLATE is set."""
    settings = get_settings()
    return settings.ray.mode == "jobs" or settings.rayjob_template is not None


def job_params(module: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The submission of `python -m module` with `arguments` (None values left out): its runtime_env holds
    where the data lives (`ray_job_env`, never a credential) and its driver asks for no CPU."""
    command = ["python", "-m", module]
    command += [part for name, value in arguments.items() if value is not None for part in (name, str(value))]
    return {
        "entrypoint": shlex.join(command),
        # The cluster's pods carry their own credentials (the dashboard shows a job's environment).
        "runtime_env": {"env_vars": ray_job_env()},
        # The driver reads, plans and writes; the work it starts asks for the CPUs or GPUs it needs.
        "entrypoint_num_cpus": 0,
    }


def run_ray_job(
    context: dg.AssetExecutionContext, module: str, arguments: Mapping[str, Any], what: str
) -> Any:
    """Run `python -m module arguments` as a Ray job for this step and wait for it; returns dagster-ray's
    completed invocation (`get_results()`: what the job reported). `what` names the work in logs and errors."""
    settings = get_settings()
    params = job_params(module, arguments)
    template = settings.rayjob_template
    extra: dict[str, Any] = {}
    if template is not None:
        from dagster_ray.kuberay import PipesKubeRayJobClient

        client: Any = PipesKubeRayJobClient(poll_interval=1)
        extra["ray_job"] = read_rayjob_template(template)
        context.log.info(f"{what}: a RayJob made from {template}")
    else:
        from dagster_ray import PipesRayJobClient

        job_api = settings.ray.job_api
        if job_api is None:
            raise dg.Failure(description=f"{what}: RAY_ADDRESS is not a Ray job API (http(s)://head:8265)")
        client = PipesRayJobClient(address=job_api, poll_interval=1)
        context.log.info(f"{what}: a Ray job on the cluster at {job_api}")
    try:
        invocation = client.run(context=context, submit_job_params=params, **extra)
    except RuntimeError as err:
        failed = re.search(r"Ray job (\S+) failed with status (\w+)", str(err))
        if failed is None:
            raise
        job_id, status = failed.groups()
        # The job failed or was stopped: the end of its log (its traceback) is the step's error.
        tail = _job_log_tail(client, job_id)
        error = next((line for line in reversed(tail) if re.match(r"^[\w.]+(Error|Exception)\b", line)), "")
        raise dg.Failure(
            description=f"Ray job {job_id} ({what}) ended {status}"
            + (f": {error}" if error else "; its log has no error line (see the job log below)"),
            metadata={"ray_job_id": job_id, "ray_job_log_tail": dg.MetadataValue.md(_code_block(tail))},
        ) from None
    if not invocation.get_results():
        raise dg.Failure(description=f"the Ray job ({what}) finished without reporting a result")
    return invocation


def read_rayjob_template(path: Path) -> dict[str, Any]:
    """The KubeRay RayJob template at `path` (deploy/kustomize/ray/rayjob-template.yaml); ValueError names it."""
    import yaml

    try:
        manifest = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"PLATFORM_RAYJOB_TEMPLATE={path}: cannot read a RayJob manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "RayJob":
        raise ValueError(f"PLATFORM_RAYJOB_TEMPLATE={path} is not a RayJob manifest (kind: RayJob)")
    if "rayClusterSpec" not in (manifest.get("spec") or {}):
        raise ValueError(
            f"PLATFORM_RAYJOB_TEMPLATE={path}: spec.rayClusterSpec is missing (the RayJob brings its own cluster)"
        )
    return manifest


def pipes_metadata(metadata: Mapping[str, Any]) -> dict[str, dg.MetadataValue]:
    """Metadata in Dagster Pipes' form ({"raw_value", "type"}) as MetadataValues, exactly as a Pipes session
    converts a job's report (Dagster's own converter), for work that ran in the step instead."""
    from dagster._core.definitions.metadata.external_metadata import metadata_map_from_external

    return dict(metadata_map_from_external(metadata))


def to_pipes_form(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """MetadataValues (or plain values) in Dagster Pipes' form, for a job to report what a step would have.

    Written here because Dagster converts only the other way (`metadata_map_from_external`)."""
    forms: dict[type, tuple[str, Any]] = {
        dg.TextMetadataValue: ("text", lambda v: v.text),
        dg.IntMetadataValue: ("int", lambda v: v.value),
        dg.FloatMetadataValue: ("float", lambda v: v.value),
        dg.BoolMetadataValue: ("bool", lambda v: v.value),
        dg.JsonMetadataValue: ("json", lambda v: v.data),
        dg.MarkdownMetadataValue: ("md", lambda v: v.md_str),
        dg.PathMetadataValue: ("path", lambda v: v.path),
        dg.UrlMetadataValue: ("url", lambda v: v.url),
        dg.TableSchemaMetadataValue: (
            "table_schema",
            lambda v: {"columns": [{"name": c.name, "type": c.type} for c in v.schema.columns]},
        ),
    }
    converted: dict[str, dict[str, Any]] = {}
    for name, value in metadata.items():
        if isinstance(value, dg.TableSchema):
            value = dg.MetadataValue.table_schema(value)
        kind, raw = forms.get(type(value), ("__infer__", lambda v: v))
        if kind == "__infer__" and isinstance(value, dg.MetadataValue):
            raise TypeError(f"metadata {name!r}: no Pipes form for {type(value).__name__}")
        converted[name] = {"raw_value": raw(value), "type": kind}
    return converted


def _job_log_tail(client: Any, job_id: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a Ray job's log that are not Dagster Pipes messages (empty if the log is gone)."""
    try:
        submission = getattr(client, "job_submission_client", None) or client.client
        log = submission.get_job_logs(job_id)
    except Exception:  # the log is a courtesy: the job's status already failed the step
        return []
    text = [line for line in log.splitlines() if line.strip() and '"__dagster_pipes_version"' not in line]
    return text[-lines:]


def _code_block(lines: list[str]) -> str:
    return "```\n" + "\n".join(lines) + "\n```"
