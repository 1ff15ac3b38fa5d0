"""What the webserver's GraphQL answers become for a person or a script: plain, JSON-ready shapes.

Times are ISO-8601 UTC strings, durations seconds, asset keys slash-separated, metadata plain JSON values.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from platform_assets.ops.graphql.errors import first_line

# Dagster's log levels, least severe first; `--level X` keeps X and everything more severe.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass
class LogEvent:
    """One event of a run's event log."""

    timestamp: str
    level: str
    event_type: str | None
    step_key: str | None
    message: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict."""
        return {
            "timestamp": self.timestamp,
            "level": self.level,
            "event_type": self.event_type,
            "step_key": self.step_key,
            "message": self.message,
            "error": self.error,
        }


@dataclass
class RunOutputs:
    """What a run produced: asset materializations (with URI and row count) and asset check results."""

    run_id: str
    materializations: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The outputs as a JSON-ready dict."""
        return {"run_id": self.run_id, "materializations": self.materializations, "checks": self.checks}


def asset_key(key: Mapping[str, Any]) -> str:
    """A GraphQL `AssetKey { path }` as the slash-separated string users type."""
    return "/".join(key["path"])


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run's id, job, status, times and tags."""
    return {
        "run_id": run["runId"],
        "job": run["jobName"],
        "status": run["status"],
        "created": _iso(run.get("creationTime")),
        "started": _iso(run.get("startTime")),
        "ended": _iso(run.get("endTime")),
        "duration_s": _duration(run.get("startTime"), run.get("endTime")),
        "tags": {tag["key"]: tag["value"] for tag in run.get("tags") or []},
    }


def run_status(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's summary, its asset selection and every step's status and timings.

    Steps in the run's plan that have not started yet are listed as NOT_STARTED, so a queued or young run
    shows all the work ahead of it.
    """
    stats = {step["stepKey"]: step for step in run["stepStats"]}
    planned = [step["key"] for step in (run.get("executionPlan") or {}).get("steps", [])]
    if run.get("stepKeysToExecute"):
        planned = [key for key in planned if key in run["stepKeysToExecute"]] or run["stepKeysToExecute"]
    # Started steps in the order they ran, then the steps still ahead in plan order.
    started = sorted(
        (key for key in stats if stats[key]["startTime"] is not None), key=lambda k: stats[k]["startTime"]
    )
    order = list(dict.fromkeys(started + planned + list(stats)))
    summary = run_summary(run)
    summary["asset_selection"] = [asset_key(key) for key in run.get("assetSelection") or []]
    summary["can_terminate"] = run["canTerminate"]
    summary["steps"] = [_step(key, stats.get(key)) for key in order]
    return summary


def _step(key: str, stats: Mapping[str, Any] | None) -> dict[str, Any]:
    if stats is None:
        return {
            "step_key": key,
            "status": "NOT_STARTED",
            "started": None,
            "ended": None,
            "duration_s": None,
            "attempts": 0,
        }
    return {
        "step_key": key,
        "status": stats["status"] or "NOT_STARTED",
        "started": _iso(stats["startTime"]),
        "ended": _iso(stats["endTime"]),
        "duration_s": _duration(stats["startTime"], stats["endTime"]),
        "attempts": max(1, len(stats["attempts"])),
    }


def log_events(
    events: Iterable[Mapping[str, Any]], level: str | None = None, step: str | None = None
) -> list[LogEvent]:
    """The events at `level` or more severe, of one step if `step` is given."""
    minimum = LOG_LEVELS.index(level.upper()) if level else 0
    selected = []
    for event in events:
        event_level = event.get("level") or "INFO"
        if LOG_LEVELS.index(event_level) < minimum:
            continue
        if step is not None and event.get("stepKey") != step:
            continue
        error = event.get("error")
        selected.append(
            LogEvent(
                timestamp=_event_timestamp(event.get("timestamp")),
                level=event_level,
                event_type=event.get("eventType"),
                step_key=event.get("stepKey"),
                message=event.get("message") or "",
                error=_root_cause(error) if error else None,
            )
        )
    return selected


def run_outputs(run_id: str, events: Iterable[Mapping[str, Any]]) -> RunOutputs:
    """The materializations (asset, partition, URI, row count, other simple metadata) and check results."""
    outputs = RunOutputs(run_id=run_id)
    for event in events:
        kind = event["__typename"]
        if kind == "MaterializationEvent" and event.get("assetKey"):
            metadata = _simple_metadata(event.get("metadataEntries") or [])
            outputs.materializations.append(
                {
                    "asset_key": asset_key(event["assetKey"]),
                    "partition": event.get("partition"),
                    "step_key": event.get("stepKey"),
                    "uri": metadata.pop("dagster/uri", None) or metadata.pop("path", None),
                    "row_count": metadata.pop("dagster/row_count", None),
                    "metadata": metadata,
                }
            )
        elif kind == "AssetCheckEvaluationEvent":
            evaluation = event["evaluation"]
            outputs.checks.append(
                {
                    "asset_key": asset_key(evaluation["assetKey"]),
                    "check_name": evaluation["checkName"],
                    "passed": evaluation["success"],
                    "severity": evaluation["severity"],
                    "partition": evaluation.get("partition"),
                    "description": evaluation.get("description"),
                    "metadata": _simple_metadata(evaluation.get("metadataEntries") or []),
                }
            )
    return outputs


def instance_status(webserver_url: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Daemon health, queued and in-progress run counts, the run queue's limits, code location status."""
    instance = data["instance"]
    now = time.time()
    daemons = [
        {
            "daemon": status["daemonType"],
            "required": status["required"],
            "healthy": bool(status["healthy"]),
            "last_heartbeat": _iso(status["lastHeartbeatTime"]),
            "seconds_since_heartbeat": round(now - status["lastHeartbeatTime"], 1)
            if status["lastHeartbeatTime"]
            else None,
            "errors": [first_line(error["message"]) for error in status["lastHeartbeatErrors"]],
        }
        for status in instance["daemonHealth"]["allDaemonStatuses"]
    ]
    locations = [
        {
            "name": entry["name"],
            "load_status": entry["loadStatus"],
            "error": first_line(entry["locationOrLoadError"].get("message"))
            if (entry.get("locationOrLoadError") or {}).get("__typename") == "PythonError"
            else None,
        }
        for entry in (data["workspaceOrError"].get("locationEntries") or [])
    ]
    queue = instance.get("runQueueConfig") or {}
    return {
        "webserver": webserver_url,
        "dagster_version": data["version"],
        "run_launcher": (instance.get("runLauncher") or {}).get("name"),
        "run_queuing": instance["runQueuingSupported"],
        "max_concurrent_runs": queue.get("maxConcurrentRuns"),
        "tag_concurrency_limits": queue.get("tagConcurrencyLimitsYaml"),
        "queued_runs": _count(data["queued"]),
        "in_progress_runs": _count(data["inProgress"]),
        "daemons": daemons,
        "healthy": all(d["healthy"] for d in daemons if d["required"])
        and all(location["error"] is None for location in locations),
        "code_locations": locations,
    }


def _iso(timestamp: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="milliseconds")


def _duration(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start is not None and end is not None else None


def _event_timestamp(raw: str | None) -> str:
    """Event timestamps arrive as epoch milliseconds in a string."""
    return _iso(float(raw) / 1000.0) if raw else ""


def _root_cause(error: Mapping[str, Any]) -> str:
    """The innermost cause of a step error: the user's exception, not Dagster's wrapper around it."""
    causes = error.get("causes") or []
    return first_line((causes[-1] if causes else error).get("message"))


def _count(result: Mapping[str, Any]) -> int | None:
    return result.get("count") if result.get("__typename") == "Runs" else None


def _metadata_value(entry: Mapping[str, Any]) -> Any:
    """A metadata entry's value as plain JSON (None for kinds a terminal cannot show, e.g. markdown)."""
    kind = entry.get("__typename")
    if kind == "TextMetadataEntry":
        return entry.get("text")
    if kind == "PathMetadataEntry":
        return entry.get("path")
    if kind == "UrlMetadataEntry":
        return entry.get("url")
    if kind == "IntMetadataEntry":
        # intValue is null for numbers beyond 32 bits; intRepr always has the value.
        value = entry.get("intValue")
        return value if value is not None else int(entry["intRepr"])
    if kind == "FloatMetadataEntry":
        value = entry.get("floatValue")
        return value if value is not None else entry.get("floatRepr")
    if kind == "BoolMetadataEntry":
        return entry.get("boolValue")
    if kind == "JsonMetadataEntry":
        return json.loads(entry["jsonString"])
    return None


def _simple_metadata(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    values = {entry["label"]: _metadata_value(entry) for entry in entries}
    return {label: value for label, value in values.items() if value is not None}
