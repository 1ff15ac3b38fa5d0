"""Run automation against a Dagster webserver: the seed-004 task API (launch, status, logs, outputs, list,
cancel, wait, monitoring) on top of Dagster's GraphQL API.

Launching, polling a run's status and terminating go through dagster-graphql's `DagsterGraphQLClient` (the
supported client); everything it has no call for (per-step stats, logs, outputs, run lists, daemon health) is
raw GraphQL over HTTP against the same `/graphql` endpoint. Every failure surfaces as a `PlatformGraphQLError`
with a one-line message: `WebserverUnreachable` when nothing answers at the URL, `RunNotFound` for an unknown
run id.

dagster-graphql (and with it dagster) is imported only when a call needs it: `platform --help` stays fast.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import requests

if TYPE_CHECKING:
    from dagster_graphql import DagsterGraphQLClient

DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"
# Dagster's implicit job that materializes any selection of assets of one code location.
ASSET_JOB_NAME = "__ASSET_JOB"
# The run tag Dagster reads a run's partition from (asset jobs and partitioned jobs alike).
PARTITION_TAG = "dagster/partition"

RUN_STATUSES = (
    "QUEUED",
    "NOT_STARTED",
    "MANAGED",
    "STARTING",
    "STARTED",
    "SUSPENDED",
    "SUCCESS",
    "FAILURE",
    "CANCELING",
    "CANCELED",
)
# A run in one of these will not change any more.
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
# Dagster's ACTIVE_RUN_STATUSES: the runs that hold a worker and count against the queue's limits.
IN_PROGRESS_STATUSES = ("STARTING", "STARTED", "CANCELING")
# Dagster's log levels, least severe first; `--level X` keeps X and everything more severe.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class PlatformGraphQLError(Exception):
    """A call to the Dagster webserver failed; the message is one line meant for a person."""


class WebserverUnreachable(PlatformGraphQLError):
    """Nothing (or nothing that speaks Dagster GraphQL) answers at the webserver URL."""


class RunNotFound(PlatformGraphQLError):
    """The webserver's instance has no run with that id."""


class SelectionError(PlatformGraphQLError):
    """An asset selection names no asset, an unknown asset, or assets of different code locations."""


# ---------------------------------------------------------------------------------------------------------------
# GraphQL documents (raw GraphQL for what DagsterGraphQLClient has no call for)
# ---------------------------------------------------------------------------------------------------------------

_METADATA_FRAGMENT = """
fragment PlatformMetadata on MetadataEntry {
  label
  __typename
  ... on TextMetadataEntry { text }
  ... on PathMetadataEntry { path }
  ... on UrlMetadataEntry { url }
  ... on IntMetadataEntry { intValue intRepr }
  ... on FloatMetadataEntry { floatValue floatRepr }
  ... on BoolMetadataEntry { boolValue }
  ... on JsonMetadataEntry { jsonString }
}
"""

RUN_QUERY = """
query PlatformRun($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId jobName status creationTime startTime endTime canTerminate
      tags { key value }
      stepKeysToExecute
      assetSelection { path }
      executionPlan { steps { key } }
      stepStats { stepKey status startTime endTime attempts { startTime endTime } }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

LOGS_QUERY = (
    """
query PlatformRunLogs($runId: ID!, $cursor: String, $limit: Int) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: $limit) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message timestamp level stepKey eventType }
        ... on ErrorEvent { error { message causes { message } } }
        ... on MaterializationEvent { assetKey { path } partition metadataEntries { ...PlatformMetadata } }
        ... on AssetCheckEvaluationEvent {
          evaluation {
            checkName success severity description partition
            assetKey { path }
            metadataEntries { ...PlatformMetadata }
          }
        }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""
    + _METADATA_FRAGMENT
)

RUNS_QUERY = """
query PlatformRuns($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime tags { key value } } }
    ... on InvalidPipelineRunsFilterError { message }
    ... on PythonError { message }
  }
}
"""

ASSET_NODES_QUERY = """
query PlatformAssetNodes {
  assetNodes {
    assetKey { path }
    dependencyKeys { path }
    dependedByKeys { path }
    groupName
    isMaterializable
    isPartitioned
    repository { name location { name } }
  }
}
"""

INSTANCE_QUERY = """
query PlatformInstanceStatus {
  version
  instance {
    runQueuingSupported
    runLauncher { name }
    runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml }
    daemonHealth {
      allDaemonStatuses { daemonType required healthy lastHeartbeatTime lastHeartbeatErrors { message } }
    }
  }
  queued: runsOrError(filter: {statuses: [QUEUED]}) { __typename ... on Runs { count } }
  inProgress: runsOrError(filter: {statuses: [STARTING, STARTED, CANCELING]}) { __typename ... on Runs { count } }
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""


# ---------------------------------------------------------------------------------------------------------------
# Asset selections
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetNodeInfo:
    """One asset of the webserver's workspace, as far as selecting and launching it needs."""

    key: str
    dependencies: tuple[str, ...]
    dependents: tuple[str, ...]
    group: str
    location: str
    repository: str
    partitioned: bool
    materializable: bool


_CLAUSE = re.compile(r"(?P<up>\*|\+*)(?P<key>[^*+]+?)(?P<down>\*|\+*)")


def _depth(marker: str) -> int | None:
    """`*` walks the whole graph (None), each `+` one level."""
    return None if marker == "*" else len(marker)


def _walk(start: str, edges: Mapping[str, Sequence[str]], depth: int | None) -> set[str]:
    """Every key reachable from `start` along `edges` within `depth` levels (None: unbounded)."""
    found: set[str] = set()
    frontier = {start}
    level = 0
    while frontier and (depth is None or level < depth):
        frontier = {nxt for key in frontier for nxt in edges.get(key, ()) if nxt not in found}
        found |= frontier
        level += 1
    return found


def resolve_selection(selection: str, nodes: Sequence[AssetNodeInfo]) -> list[str]:
    """Resolve an asset selection to asset keys (slash-separated), sorted.

    The syntax is Dagster's classic `--select`: comma-separated clauses, each either `group:NAME` or an asset
    key (`raw/reviews`) with optional graph markers: `+key` adds one level of upstream assets per `+`, `*key`
    all upstream assets, `key+` / `key*` the same downstream. Only materializable assets are returned.
    """
    by_key = {node.key: node for node in nodes}
    upstream = {node.key: node.dependencies for node in nodes}
    downstream = {node.key: node.dependents for node in nodes}
    selected: set[str] = set()
    clauses = [clause.strip() for clause in selection.split(",")]
    if not any(clauses):
        raise SelectionError("empty asset selection")
    for clause in clauses:
        if not clause:
            raise SelectionError(f"empty clause in asset selection {selection!r}")
        if clause.startswith("group:"):
            group = clause.removeprefix("group:").strip()
            matches = {key for key, node in by_key.items() if node.group == group}
            if not matches:
                groups = sorted({node.group for node in nodes})
                raise SelectionError(f"no asset in group {group!r} (groups: {', '.join(groups)})")
            selected |= matches
            continue
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise SelectionError(f"cannot parse asset selection clause {clause!r}")
        key = match["key"].strip().strip("/")
        if key not in by_key:
            known = ", ".join(sorted(by_key)) or "none"
            raise SelectionError(f"unknown asset {key!r} (assets: {known})")
        selected.add(key)
        selected |= _walk(key, upstream, _depth(match["up"]))
        selected |= _walk(key, downstream, _depth(match["down"]))
    materializable = sorted(key for key in selected if key in by_key and by_key[key].materializable)
    if not materializable:
        raise SelectionError(f"asset selection {selection!r} contains no materializable asset")
    return materializable


# ---------------------------------------------------------------------------------------------------------------
# Result shapes
# ---------------------------------------------------------------------------------------------------------------


def _iso(timestamp: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="milliseconds")


def _duration(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start is not None and end is not None else None


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


def _run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
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


def _event_timestamp(raw: str | None) -> str:
    """Event timestamps arrive as epoch milliseconds in a string."""
    return _iso(float(raw) / 1000.0) if raw else ""


# ---------------------------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------------------------


class DagsterWebserver:
    """A Dagster webserver's GraphQL API, for launching and following runs.

    `url` is the webserver's base URL (`http://127.0.0.1:3000`, `https://dagster.example.com/prefix`).
    """

    def __init__(self, url: str = DEFAULT_WEBSERVER_URL, timeout: float = 30.0) -> None:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PlatformGraphQLError(
                f"not a webserver URL: {url!r} (expected e.g. {DEFAULT_WEBSERVER_URL})"
            )
        self.url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.graphql_url = f"{self.url}/graphql"
        self.timeout = timeout
        self._parsed = parsed
        self._client: DagsterGraphQLClient | None = None

    # -- transport ---------------------------------------------------------------------------------------------

    def _unreachable(self, reason: BaseException) -> WebserverUnreachable:
        return WebserverUnreachable(
            f"cannot reach the Dagster webserver at {self.url} ({_connection_reason(reason)}); is it running? "
            "Point --url or DAGSTER_WEBSERVER_URL at it."
        )

    def client(self) -> DagsterGraphQLClient:
        """dagster-graphql's client for the same webserver (created on first use)."""
        if self._client is None:
            from dagster_graphql import DagsterGraphQLClient

            self._client = DagsterGraphQLClient(
                self._parsed.hostname or "127.0.0.1",
                port_number=self._parsed.port,
                use_https=self._parsed.scheme == "https",
                timeout=int(self.timeout),
                path_prefix=self._parsed.path.rstrip("/"),
            )
        return self._client

    def _client_call(self, call: str, *args: Any, **kwargs: Any) -> Any:
        """Call a DagsterGraphQLClient method, turning its errors into one-line PlatformGraphQLErrors."""
        from dagster_graphql import DagsterGraphQLClientError

        try:
            return getattr(self.client(), call)(*args, **kwargs)
        except DagsterGraphQLClientError as err:
            cause = err.__cause__
            # gql wraps the requests error (TransportConnectionFailed) in newer versions: look down the chain.
            link: BaseException | None = cause
            while link is not None:
                if isinstance(link, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
                    raise self._unreachable(link) from err
                link = link.__cause__ or link.__context__
            if len(err.args) >= 2:
                # The client's typed errors: (GraphQL result type, message or list of config errors).
                kind, detail = err.args[0], err.args[1]
                if kind in ("RunNotFoundError", "PipelineNotFoundError") and "run_id" in kwargs:
                    raise RunNotFound(f"run {kwargs['run_id']} not found on {self.url}") from err
                raise PlatformGraphQLError(f"{kind}: {_detail(detail)}") from err
            # Transport and GraphQL failures: the client's own message repeats the whole query; the cause says
            # what went wrong.
            raise PlatformGraphQLError(_first_line(cause if cause is not None else err)) from err

    def query(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a raw GraphQL query or mutation; return its `data`."""
        try:
            response = requests.post(
                self.graphql_url,
                json={"query": document, "variables": dict(variables or {})},
                timeout=self.timeout,
            )
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
            raise self._unreachable(err) from err
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or ("data" not in payload and "errors" not in payload):
            raise WebserverUnreachable(
                f"{self.graphql_url} answered HTTP {response.status_code} without GraphQL: "
                "is this a Dagster webserver?"
            )
        if payload.get("errors"):
            raise PlatformGraphQLError(f"GraphQL error: {_first_line(payload['errors'][0].get('message'))}")
        return payload["data"]

    # -- reading -----------------------------------------------------------------------------------------------

    def asset_nodes(self) -> list[AssetNodeInfo]:
        """Every asset the webserver's workspace defines."""
        nodes = self.query(ASSET_NODES_QUERY)["assetNodes"]
        return [
            AssetNodeInfo(
                key="/".join(node["assetKey"]["path"]),
                dependencies=tuple("/".join(k["path"]) for k in node["dependencyKeys"]),
                dependents=tuple("/".join(k["path"]) for k in node["dependedByKeys"]),
                group=node["groupName"],
                location=node["repository"]["location"]["name"],
                repository=node["repository"]["name"],
                partitioned=node["isPartitioned"],
                materializable=node["isMaterializable"],
            )
            for node in nodes
        ]

    def _run(self, run_id: str) -> dict[str, Any]:
        result = self.query(RUN_QUERY, {"runId": run_id})["runOrError"]
        if result["__typename"] == "RunNotFoundError":
            raise RunNotFound(f"run {run_id} not found on {self.url}")
        if result["__typename"] != "Run":
            raise PlatformGraphQLError(f"{result['__typename']}: {_first_line(result.get('message'))}")
        return result

    def run_status(self, run_id: str) -> dict[str, Any]:
        """The run's status, times and tags, and every step's status and timings.

        Steps in the run's plan that have not started yet are listed as NOT_STARTED, so a queued or young run
        shows all the work ahead of it (the seed-004 `step_status`).
        """
        run = self._run(run_id)
        stats = {step["stepKey"]: step for step in run["stepStats"]}
        planned = [step["key"] for step in (run.get("executionPlan") or {}).get("steps", [])]
        if run.get("stepKeysToExecute"):
            planned = [key for key in planned if key in run["stepKeysToExecute"]] or run["stepKeysToExecute"]
        # Started steps in the order they ran, then the steps still ahead in plan order.
        started = sorted(
            (key for key in stats if stats[key]["startTime"] is not None), key=lambda k: stats[k]["startTime"]
        )
        order = started + [key for key in planned + list(stats) if key not in started]
        order = list(dict.fromkeys(order))
        steps = []
        for key in order:
            step = stats.get(key)
            if step is None:
                steps.append(
                    {
                        "step_key": key,
                        "status": "NOT_STARTED",
                        "started": None,
                        "ended": None,
                        "duration_s": None,
                        "attempts": 0,
                    }
                )
                continue
            steps.append(
                {
                    "step_key": key,
                    "status": step["status"] or "NOT_STARTED",
                    "started": _iso(step["startTime"]),
                    "ended": _iso(step["endTime"]),
                    "duration_s": _duration(step["startTime"], step["endTime"]),
                    "attempts": max(1, len(step["attempts"])),
                }
            )
        summary = _run_summary(run)
        summary["asset_selection"] = ["/".join(k["path"]) for k in run.get("assetSelection") or []]
        summary["can_terminate"] = run["canTerminate"]
        summary["steps"] = steps
        return summary

    def _events(self, run_id: str, page_size: int = 1000) -> list[dict[str, Any]]:
        """The run's whole event log, page by page."""
        events: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            result = self.query(LOGS_QUERY, {"runId": run_id, "cursor": cursor, "limit": page_size})[
                "logsForRun"
            ]
            if result["__typename"] == "RunNotFoundError":
                raise RunNotFound(f"run {run_id} not found on {self.url}")
            if result["__typename"] != "EventConnection":
                raise PlatformGraphQLError(f"{result['__typename']}: {_first_line(result.get('message'))}")
            events.extend(result["events"])
            if not result["hasMore"] or not result["events"]:
                return events
            cursor = result["cursor"]

    def logs(self, run_id: str, level: str | None = None, step: str | None = None) -> list[LogEvent]:
        """The run's log: every event at `level` or more severe, of one step if `step` is given."""
        minimum = LOG_LEVELS.index(level.upper()) if level else 0
        selected = []
        for event in self._events(run_id):
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

    def outputs(self, run_id: str) -> RunOutputs:
        """What the run materialized (asset, partition, URI, row count, other simple metadata) and its checks."""
        outputs = RunOutputs(run_id=run_id)
        for event in self._events(run_id):
            kind = event["__typename"]
            if kind == "MaterializationEvent" and event.get("assetKey"):
                metadata = _simple_metadata(event.get("metadataEntries") or [])
                outputs.materializations.append(
                    {
                        "asset_key": "/".join(event["assetKey"]["path"]),
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
                        "asset_key": "/".join(evaluation["assetKey"]["path"]),
                        "check_name": evaluation["checkName"],
                        "passed": evaluation["success"],
                        "severity": evaluation["severity"],
                        "partition": evaluation.get("partition"),
                        "description": evaluation.get("description"),
                        "metadata": _simple_metadata(evaluation.get("metadataEntries") or []),
                    }
                )
        if not outputs.materializations and not outputs.checks:
            # An unknown id has an empty log too: tell the two apart.
            self._run(run_id)
        return outputs

    def list_runs(self, statuses: Sequence[str] = (), limit: int = 20) -> list[dict[str, Any]]:
        """The most recent runs, newest first, optionally only those in `statuses`."""
        run_filter = {"statuses": [status.upper() for status in statuses]} if statuses else None
        result = self.query(RUNS_QUERY, {"filter": run_filter, "limit": limit})["runsOrError"]
        if result["__typename"] != "Runs":
            raise PlatformGraphQLError(f"{result['__typename']}: {_first_line(result.get('message'))}")
        return [_run_summary(run) for run in result["results"]]

    def instance_status(self) -> dict[str, Any]:
        """Daemon health, queued and in-progress run counts, the run queue's limits, code location status."""
        data = self.query(INSTANCE_QUERY)
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
                "errors": [_first_line(error["message"]) for error in status["lastHeartbeatErrors"]],
            }
            for status in instance["daemonHealth"]["allDaemonStatuses"]
        ]
        workspace = data["workspaceOrError"]
        locations = [
            {
                "name": entry["name"],
                "load_status": entry["loadStatus"],
                "error": _first_line(entry["locationOrLoadError"].get("message"))
                if (entry.get("locationOrLoadError") or {}).get("__typename") == "PythonError"
                else None,
            }
            for entry in (workspace.get("locationEntries") or [])
        ]
        queue = instance.get("runQueueConfig") or {}
        return {
            "webserver": self.url,
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

    # -- acting ------------------------------------------------------------------------------------------------

    def launch(
        self,
        job: str | None = None,
        selection: str | None = None,
        partition: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Launch a job (the whole pipeline) or an asset selection (down to a single step); return the run.

        With the queued run coordinator the run starts QUEUED and the daemon launches it when the instance's
        concurrency limits allow.
        """
        if (job is None) == (selection is None):
            raise PlatformGraphQLError("give exactly one of a job name or an asset selection")
        run_tags = dict(tags or {})
        if partition is not None:
            run_tags[PARTITION_TAG] = partition
        if job is not None:
            run_id = self._client_call(
                "submit_job_execution", job, run_config=dict(run_config or {}), tags=run_tags or None
            )
            return {"run_id": run_id, "job": job, "asset_selection": None, "tags": run_tags}
        nodes = self.asset_nodes()
        keys = resolve_selection(selection or "", nodes)
        by_key = {node.key: node for node in nodes}
        origins = {(by_key[key].location, by_key[key].repository) for key in keys}
        if len(origins) > 1:
            raise SelectionError(
                f"selection {selection!r} spans several code locations ({sorted(origins)}): launch one at a time"
            )
        location, repository = origins.pop()
        run_id = self._client_call(
            "submit_job_execution",
            ASSET_JOB_NAME,
            repository_location_name=location,
            repository_name=repository,
            run_config=dict(run_config or {}),
            tags=run_tags or None,
            asset_selection=[key.split("/") for key in keys],
        )
        return {"run_id": run_id, "job": ASSET_JOB_NAME, "asset_selection": keys, "tags": run_tags}

    def status(self, run_id: str) -> str:
        """Only the run's status (QUEUED, STARTED, SUCCESS, …), through DagsterGraphQLClient.get_run_status."""
        return self._client_call("get_run_status", run_id=run_id).value

    def cancel(self, run_id: str) -> str:
        """Terminate a run (a queued run is canceled at once, a running one is asked to stop); return its status."""
        self._client_call("terminate_run", run_id=run_id)
        return self.status(run_id)

    def wait(self, run_id: str, interval: float = 1.0, timeout: float | None = None) -> str:
        """Poll until the run reaches SUCCESS, FAILURE or CANCELED; return that status.

        Raises PlatformGraphQLError when `timeout` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(run_id)
            if status in TERMINAL_STATUSES:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise PlatformGraphQLError(
                    f"run {run_id} is still {status} after {timeout:g} s (it keeps running; wait again later)"
                )
            time.sleep(interval)


def _count(result: Mapping[str, Any]) -> int | None:
    return result.get("count") if result.get("__typename") == "Runs" else None


def _connection_reason(err: BaseException) -> str:
    """'connection refused', 'timed out', … rather than urllib3's nested repr."""
    if isinstance(err, requests.exceptions.Timeout):
        return "timed out"
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(err))
    return found.group(1).strip().lower() if found else _first_line(err)


def _root_cause(error: Mapping[str, Any]) -> str:
    """The innermost cause of a step error: the user's exception, not Dagster's wrapper around it."""
    causes = error.get("causes") or []
    return _first_line((causes[-1] if causes else error).get("message"))


def _detail(detail: object) -> str:
    """A client error's detail on one line; run config errors arrive as a list of {message: …}."""
    if isinstance(detail, list):
        return "; ".join(
            _first_line(item.get("message") if isinstance(item, dict) else item) for item in detail
        )
    return _first_line(detail)


def _first_line(value: object) -> str:
    """The first non-empty line of a message, so every error stays on one line."""
    for line in str(value or "").splitlines():
        if line.strip():
            return line.strip()
    return ""
