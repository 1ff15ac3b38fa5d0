"""Run automation against a Dagster webserver: launch, status, logs, outputs, list, cancel, wait and the
instance's health, over Dagster's GraphQL API.

A run is a Dagster run, a step an asset's step, a run's outputs its asset materializations with their URIs.
Every call is one GraphQL document over plain HTTP (`platform_assets.ops.graphql.transport`), so every failure
surfaces the same way: a `PlatformGraphQLError` with a one-line message, `WebserverUnreachable` when nothing
answers at the URL, `RunNotFound` for an unknown run id. The documents live in `ops.graphql.documents`, the
result shapes in `ops.graphql.reports`, asset selections in `ops.selection`.

Only `launch(selection=…)` imports dagster (to parse the selection), so `platform --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tenacity

from platform_assets.ops.graphql import documents, reports
from platform_assets.ops.graphql.errors import (
    PlatformGraphQLError,
    RunNotFound,
    TerminateRunFailed,
    WebserverUnreachable,
    first_line,
)
from platform_assets.ops.graphql.reports import LOG_LEVELS, LogEvent, RunOutputs
from platform_assets.ops.graphql.transport import DEFAULT_WEBSERVER_URL, GraphQLTransport
from platform_assets.ops.selection import AssetNodeInfo, SelectionError, resolve_selection

__all__ = [
    "ASSET_JOB_NAME",
    "DEFAULT_WEBSERVER_URL",
    "LOG_LEVELS",
    "PARTITION_TAG",
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "AssetNodeInfo",
    "DagsterWebserver",
    "LogEvent",
    "PlatformGraphQLError",
    "RunNotFound",
    "RunOutputs",
    "SelectionError",
    "TerminateRunFailed",
    "WebserverUnreachable",
]

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


class DagsterWebserver:
    """A Dagster webserver's GraphQL API, for launching and following runs.

    `url` is the webserver's base URL (`http://127.0.0.1:3000`, `https://dagster.example.com/prefix`).
    """

    def __init__(self, url: str = DEFAULT_WEBSERVER_URL, timeout: float = 30.0) -> None:
        self._transport = GraphQLTransport(url, timeout)
        self.url = self._transport.url
        self.graphql_url = self._transport.graphql_url
        self.timeout = timeout

    def query(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a GraphQL query or mutation; return its `data`."""
        return self._transport.execute(document, variables)

    # -- reading -----------------------------------------------------------------------------------------------

    def asset_nodes(self) -> list[AssetNodeInfo]:
        """Every asset the webserver's workspace defines."""
        return [
            AssetNodeInfo(
                key=reports.asset_key(node["assetKey"]),
                dependencies=tuple(reports.asset_key(key) for key in node["dependencyKeys"]),
                dependents=tuple(reports.asset_key(key) for key in node["dependedByKeys"]),
                group=node["groupName"],
                location=node["repository"]["location"]["name"],
                repository=node["repository"]["name"],
                partitioned=node["isPartitioned"],
                materializable=node["isMaterializable"],
                kinds=tuple(node["kinds"]),
                tags=tuple((tag["key"], tag["value"]) for tag in node["tags"]),
            )
            for node in self.query(documents.ASSET_NODES_QUERY)["assetNodes"]
        ]

    def _run(self, run_id: str) -> dict[str, Any]:
        result = self.query(documents.RUN_QUERY, {"runId": run_id})["runOrError"]
        return self._transport.expect(result, "Run", run_id=run_id)

    def run_status(self, run_id: str) -> dict[str, Any]:
        """The run's status, times and tags, and every step's status and timings (planned steps included)."""
        return reports.run_status(self._run(run_id))

    def _events(self, run_id: str, page_size: int = 1000) -> list[dict[str, Any]]:
        """The run's whole event log, page by page."""
        events: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            variables = {"runId": run_id, "cursor": cursor, "limit": page_size}
            result = self.query(documents.LOGS_QUERY, variables)["logsForRun"]
            page = self._transport.expect(result, "EventConnection", run_id=run_id)
            events.extend(page["events"])
            if not page["hasMore"] or not page["events"]:
                return events
            cursor = page["cursor"]

    def logs(self, run_id: str, level: str | None = None, step: str | None = None) -> list[LogEvent]:
        """The run's log: every event at `level` or more severe, of one step if `step` is given."""
        return reports.log_events(self._events(run_id), level=level, step=step)

    def outputs(self, run_id: str) -> RunOutputs:
        """What the run materialized (asset, partition, URI, row count, other simple metadata) and its checks."""
        outputs = reports.run_outputs(run_id, self._events(run_id))
        if not outputs.materializations and not outputs.checks:
            # An unknown id has an empty log too: tell the two apart.
            self._run(run_id)
        return outputs

    def list_runs(self, statuses: Sequence[str] = (), limit: int = 20) -> list[dict[str, Any]]:
        """The most recent runs, newest first, optionally only those in `statuses`."""
        run_filter = {"statuses": [status.upper() for status in statuses]} if statuses else None
        result = self.query(documents.RUNS_QUERY, {"filter": run_filter, "limit": limit})["runsOrError"]
        return [reports.run_summary(run) for run in self._transport.expect(result, "Runs")["results"]]

    def instance_status(self) -> dict[str, Any]:
        """Daemon health, queued and in-progress run counts, the run queue's limits, code location status."""
        return reports.instance_status(self.url, self.query(documents.INSTANCE_QUERY))

    def status(self, run_id: str) -> str:
        """Only the run's status (QUEUED, STARTED, SUCCESS, …)."""
        result = self.query(documents.RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]
        return self._transport.expect(result, "Run", run_id=run_id)["status"]

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
            location, repository = self._job_origin(job)
            run_id = self._launch_run(location, repository, job, run_tags, run_config)
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
        run_id = self._launch_run(location, repository, ASSET_JOB_NAME, run_tags, run_config, asset_keys=keys)
        return {"run_id": run_id, "job": ASSET_JOB_NAME, "asset_selection": keys, "tags": run_tags}

    def _job_origin(self, job: str) -> tuple[str, str]:
        """The (code location, repository) that defines `job`; it must be exactly one."""
        result = self.query(documents.JOBS_QUERY)["repositoriesOrError"]
        repositories = self._transport.expect(result, "RepositoryConnection")["nodes"]
        origins = sorted(
            (repo["location"]["name"], repo["name"])
            for repo in repositories
            if any(defined["name"] == job for defined in repo["jobs"])
        )
        if not origins:
            raise PlatformGraphQLError(f"JobNotFoundError: no job named {job!r} on {self.url}")
        if len(origins) > 1:
            raise PlatformGraphQLError(f"job {job!r} is defined in several code locations: {origins}")
        return origins[0]

    def _launch_run(
        self,
        location: str,
        repository: str,
        job: str,
        tags: Mapping[str, str],
        run_config: Mapping[str, Any] | None,
        asset_keys: Sequence[str] | None = None,
    ) -> str:
        selector: dict[str, Any] = {
            "repositoryLocationName": location,
            "repositoryName": repository,
            "jobName": job,
        }
        if asset_keys is not None:
            selector["assetSelection"] = [{"path": key.split("/")} for key in asset_keys]
        params = {
            "selector": selector,
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in tags.items()]},
        }
        result = self.query(documents.LAUNCH_RUN_MUTATION, {"executionParams": params})["launchRun"]
        return self._transport.expect(result, "LaunchRunSuccess")["run"]["runId"]

    def cancel(self, run_id: str) -> str:
        """Terminate a run (a queued run is canceled at once, a running one is asked to stop); return its status.

        Raises `TerminateRunFailed` when the run has not ended but could not be stopped: its worker is gone
        (killed, or an in-process run whose process died) or unreachable. Dagster has then already moved it
        to CANCELING, where it stays until `mark_canceled` (or run monitoring's cancel timeout) ends it.
        """
        result = self._terminate(run_id, "SAFE_TERMINATE")
        if result["__typename"] == "TerminateRunFailure":
            status = self.status(run_id)
            if status not in TERMINAL_STATUSES:
                raise TerminateRunFailed(
                    f"TerminateRunFailure: {first_line(result.get('message'))} (it is {status} now)",
                    run_id,
                    status,
                )
        self._transport.expect(result, "TerminateRunSuccess", run_id=run_id)
        return self.status(run_id)

    def mark_canceled(self, run_id: str) -> str:
        """Mark a run that has not ended CANCELED at once, whether or not its worker stops; return its status.

        For a run whose worker is gone: nothing else will ever end it. A worker that is still alive is asked
        to stop but not waited for, so what it started may still need cleaning up.
        """
        result = self._terminate(run_id, "MARK_AS_CANCELED_IMMEDIATELY")
        self._transport.expect(result, "TerminateRunSuccess", run_id=run_id)
        return self.status(run_id)

    def _terminate(self, run_id: str, policy: str) -> dict[str, Any]:
        variables = {"runId": run_id, "policy": policy}
        return self.query(documents.TERMINATE_RUN_MUTATION, variables)["terminateRun"]

    def wait(self, run_id: str, interval: float = 1.0, timeout: float | None = None) -> str:
        """Poll until the run reaches SUCCESS, FAILURE or CANCELED; return that status.

        Raises PlatformGraphQLError when `timeout` seconds pass first; any error of a poll ends the wait.
        """

        def still_running(state: tenacity.RetryCallState) -> str:
            status = state.outcome.result() if state.outcome is not None else "running"
            raise PlatformGraphQLError(
                f"run {run_id} is still {status} after {timeout:g} s (it keeps running; wait again later)"
            )

        poll = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda status: status not in TERMINAL_STATUSES),
            wait=tenacity.wait_fixed(interval),
            stop=tenacity.stop_never if timeout is None else tenacity.stop_after_delay(timeout),
            retry_error_callback=still_running,
        )
        return poll(self.status, run_id)
