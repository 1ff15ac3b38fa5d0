"""`platform runs …` and `platform instance …`: launch and follow Dagster runs from a terminal or a script.

Launch a whole job or one step (an asset selection), follow each step's status, read the logs by level and
step, list what a run wrote (asset materializations with their URIs), watch the daemons and the run queue.
Every command talks to a Dagster webserver (`--url`, else $DAGSTER_WEBSERVER_URL, else http://127.0.0.1:3000)
and prints JSON with `--json`. Errors are one line on stderr with exit status 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from platform_assets.ops.graphql_client import (
    DEFAULT_WEBSERVER_URL,
    LOG_LEVELS,
    RUN_STATUSES,
    DagsterWebserver,
    PlatformGraphQLError,
    TerminateRunFailed,
)

F = TypeVar("F", bound=Callable[..., Any])
URL_ENV = "DAGSTER_WEBSERVER_URL"


def _configured_webserver_url() -> str:
    from platform_assets.lib.config import get_settings

    return get_settings().dagster_webserver_url


def _common_options(command: F) -> F:
    """--url and --json on every command, and one-line errors instead of tracebacks."""

    @click.option(
        "--url",
        default=_configured_webserver_url,
        show_default=f"${URL_ENV}, else {DEFAULT_WEBSERVER_URL}",
        help="The Dagster webserver.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @functools.wraps(command)
    def wrapper(*args: Any, url: str, as_json: bool, **kwargs: Any) -> Any:
        try:
            return command(*args, webserver=DagsterWebserver(url), as_json=as_json, **kwargs)
        except PlatformGraphQLError as err:
            raise click.ClickException(str(err)) from err

    return wrapper  # type: ignore[return-value]


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--tag")
        tags[key.strip()] = value
    return tags


def _load_run_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise click.BadParameter(f"{path} does not hold a mapping", param_hint="--config")
    return loaded


@click.group("runs")
def runs_cli() -> None:
    """Launch, follow and cancel runs on a Dagster webserver (over its GraphQL API)."""


@runs_cli.command("launch")
@click.option("--job", default=None, help="Run this job: the whole pipeline.")
@click.option(
    "--select",
    "selection",
    default=None,
    help="Materialize these assets instead of a job, in Dagster's asset selection syntax: "
    "'cleaned/reviews' (one step), 'raw/reviews+' (and one level downstream), '*embedded/reviews' "
    "(and everything upstream), 'group:reviews', or the UI's form, e.g. 'key:\"raw/reviews\"+' (and "
    "everything downstream), '1+key:\"embedded/reviews\"', 'kind:parquet'; comma-separated clauses add up.",
)
@click.option("--partition", default=None, help="The partition key to run (partitioned assets and jobs).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A run tag; repeat for more.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A YAML file with run config (e.g. resource settings).",
)
@_common_options
def launch(
    webserver: DagsterWebserver,
    as_json: bool,
    job: str | None,
    selection: str | None,
    partition: str | None,
    tags: tuple[str, ...],
    config_path: Path | None,
) -> None:
    """Launch a job, or an asset selection down to a single step. Prints the run id."""
    if (job is None) == (selection is None):
        raise click.UsageError("give exactly one of --job NAME or --select SELECTION")
    launched = webserver.launch(
        job=job,
        selection=selection,
        partition=partition,
        tags=_parse_tags(tags),
        run_config=_load_run_config(config_path),
    )
    launched["status"] = webserver.status(launched["run_id"])
    if as_json:
        _echo_json(launched)
        return
    # The id alone on stdout, so `RUN=$(platform runs launch …)` works; the rest is for the person.
    click.echo(launched["run_id"])
    what = f"job {job}" if job else f"assets {', '.join(launched['asset_selection'])}"
    click.echo(
        f"{launched['status']}: {what} (follow it with `platform runs wait {launched['run_id']}`)", err=True
    )


@runs_cli.command("status")
@click.argument("run_id")
@_common_options
def status(webserver: DagsterWebserver, as_json: bool, run_id: str) -> None:
    """A run's status and every step's status with its timings."""
    run = webserver.run_status(run_id)
    if as_json:
        _echo_json(run)
        return
    click.echo(f"run {run['run_id']}  job {run['job']}  {run['status']}")
    click.echo(
        f"created {run['created']}  started {run['started'] or '-'}  ended {run['ended'] or '-'}"
        + (f"  ({run['duration_s']} s)" if run["duration_s"] is not None else "")
    )
    if run["tags"]:
        click.echo("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(run["tags"].items())))
    rows = [
        (step["step_key"], step["status"], step["started"], step["ended"], step["duration_s"])
        for step in run["steps"]
    ]
    click.echo(_table(rows, ("STEP", "STATUS", "STARTED", "ENDED", "SECONDS")))


@runs_cli.command("logs")
@click.argument("run_id")
@click.option(
    "--level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Only events at this level or more severe.",
)
@click.option("--step", default=None, help="Only events of this step.")
@_common_options
def logs(
    webserver: DagsterWebserver, as_json: bool, run_id: str, level: str | None, step: str | None
) -> None:
    """A run's event log, optionally filtered by level and step."""
    events = webserver.logs(run_id, level=level, step=step)
    if as_json:
        _echo_json([event.to_json() for event in events])
        return
    for event in events:
        where = f" [{event.step_key}]" if event.step_key else ""
        error = f" | {event.error}" if event.error else ""
        click.echo(f"{event.timestamp} {event.level:<8}{where} {event.message}{error}")


@runs_cli.command("outputs")
@click.argument("run_id")
@_common_options
def outputs(webserver: DagsterWebserver, as_json: bool, run_id: str) -> None:
    """What a run produced: materialized assets with URIs and row counts, and check results."""
    result = webserver.outputs(run_id)
    if as_json:
        _echo_json(result.to_json())
        return
    rows = [(m["asset_key"], m["partition"], m["row_count"], m["uri"]) for m in result.materializations]
    click.echo(_table(rows, ("ASSET", "PARTITION", "ROWS", "URI")) if rows else "no materializations")
    checks = [
        (c["asset_key"], c["check_name"], "PASSED" if c["passed"] else "FAILED", c["severity"])
        for c in result.checks
    ]
    click.echo(_table(checks, ("ASSET", "CHECK", "RESULT", "SEVERITY")) if checks else "no checks")


@runs_cli.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(RUN_STATUSES, case_sensitive=False),
    help="Only runs in this status; repeat for more.",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="At most this many.")
@_common_options
def list_runs(webserver: DagsterWebserver, as_json: bool, statuses: tuple[str, ...], limit: int) -> None:
    """Recent runs, newest first."""
    runs = webserver.list_runs(statuses=statuses, limit=limit)
    if as_json:
        _echo_json(runs)
        return
    rows = [(r["run_id"], r["job"], r["status"], r["created"], r["duration_s"]) for r in runs]
    click.echo(_table(rows, ("RUN", "JOB", "STATUS", "CREATED", "SECONDS")) if rows else "no runs")


@runs_cli.command("cancel")
@click.argument("run_id")
@click.option(
    "--force",
    is_flag=True,
    help="When the run cannot be stopped (its worker is gone) or is already CANCELING, mark it CANCELED "
    "anyway, which frees its place in the run queue.",
)
@_common_options
def cancel(webserver: DagsterWebserver, as_json: bool, run_id: str, force: bool) -> None:
    """Cancel a run: a queued run at once, a running one after its current step is interrupted.

    A run whose worker is gone cannot be stopped and stays CANCELING; --force marks it CANCELED.
    """
    forced = False
    try:
        if force and webserver.status(run_id) == "CANCELING":
            # Asked to stop before and still not stopped: asking again cannot help.
            raise TerminateRunFailed(f"run {run_id} is still CANCELING", run_id, "CANCELING")
        new_status = webserver.cancel(run_id)
    except TerminateRunFailed as err:
        if not force:
            raise click.ClickException(
                f"{err}; if its worker is gone (killed, or its process died), "
                f"`platform runs cancel --force {run_id}` marks it CANCELED"
            ) from err
        new_status = webserver.mark_canceled(run_id)
        forced = True
        click.echo(
            f"{err}: marked it {new_status} without its worker's acknowledgement; "
            "whatever the worker started (if it still lives) may need cleaning up",
            err=True,
        )
    if as_json:
        _echo_json({"run_id": run_id, "status": new_status, **({"forced": forced} if force else {})})
    else:
        click.echo(f"{run_id} {new_status}")


@runs_cli.command("wait")
@click.argument("run_id")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between polls.",
)
@click.option(
    "--timeout", default=None, type=click.FloatRange(min=0), help="Give up after this many seconds."
)
@_common_options
def wait(
    webserver: DagsterWebserver, as_json: bool, run_id: str, interval: float, timeout: float | None
) -> None:
    """Wait until a run ends; exit status 0 when it succeeded, 1 when it failed or was canceled."""
    final = webserver.wait(run_id, interval=interval, timeout=timeout)
    if as_json:
        _echo_json({"run_id": run_id, "status": final})
    else:
        click.echo(f"{run_id} {final}")
    if final != "SUCCESS":
        raise SystemExit(1)


@click.group("instance")
def instance_cli() -> None:
    """The Dagster instance behind a webserver: daemons and the run queue."""


@instance_cli.command("status")
@click.option(
    "--check",
    is_flag=True,
    help="Exit with status 1 when a required daemon is unhealthy or a code location failed to load.",
)
@_common_options
def instance_status(webserver: DagsterWebserver, as_json: bool, check: bool) -> None:
    """Daemon health, queued and in-progress runs, the run queue's limits, code locations."""
    report = webserver.instance_status()
    if as_json:
        _echo_json(report)
    else:
        click.echo(
            f"{report['webserver']}  dagster {report['dagster_version']}  run launcher {report['run_launcher']}"
        )
        click.echo(
            f"runs: {report['queued_runs']} queued, {report['in_progress_runs']} in progress "
            f"(at most {report['max_concurrent_runs']} at once)"
        )
        if report["tag_concurrency_limits"]:
            click.echo(
                "tag concurrency limits:\n  " + report["tag_concurrency_limits"].strip().replace("\n", "\n  ")
            )
        rows = [
            (
                d["daemon"],
                "healthy" if d["healthy"] else "UNHEALTHY",
                "required" if d["required"] else "optional",
                d["seconds_since_heartbeat"],
                d["errors"][0] if d["errors"] else "",
            )
            for d in report["daemons"]
        ]
        click.echo(_table(rows, ("DAEMON", "HEALTH", "", "HEARTBEAT_AGE_S", "LAST_ERROR")))
        for location in report["code_locations"]:
            click.echo(
                f"code location {location['name']}: {location['load_status']}"
                + (f" ({location['error']})" if location["error"] else "")
            )
    if check and not report["healthy"]:
        raise SystemExit(1)
