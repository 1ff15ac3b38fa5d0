"""The `platform` command: run the main job, write sample data, search."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from platform_assets.lib.config import get_settings
from platform_assets.metadata_center.cli import echo_table

EXAMPLE_QUERY = "battery dies too fast"


@click.group()
def main() -> None:
    """platform_assets: the AI data platform on Dagster."""
    from platform_assets.lib.runtime_env import apply_runtime_defaults

    # The command is where the process starts: set the environment before any heavy library loads.
    apply_runtime_defaults()


@main.command("sample-data")
@click.option("--rows", default=2000, show_default=True, help="Reviews to generate (before duplicates).")
@click.option(
    "--seed", default=42, show_default=True, help="Random seed; the same seed writes the same files."
)
def sample_data(rows: int, seed: int) -> None:
    """Write deterministic sample reviews into $PLATFORM_DATA_DIR/landing/reviews."""
    from platform_assets.defs.reviews.sample_data import write_sample_reviews

    for path in write_sample_reviews(get_settings().landing_dir_for("reviews"), rows=rows, seed=seed):
        click.echo(str(path))


@main.command("run")
@click.option("--rows", default=2000, show_default=True, help="Sample reviews to write first.")
@click.option("--days", default=7, show_default=True, help="Days of sample user events to write first.")
@click.option("--no-sample", is_flag=True, help="Use the landing files as they are; write no sample data.")
def run(rows: int, days: int, no_sample: bool) -> None:
    """Write sample data, materialize every domain with its checks, print a summary and an example search."""
    from platform_assets.lib.domains import SampleSize
    from platform_assets.lib.instance import local_instance
    from platform_assets.main_run import run_main

    instance = local_instance()
    click.echo(f"Materializing every domain (Dagster instance: {get_settings().dagster_home})")
    summary = run_main(
        instance, size=None if no_sample else SampleSize(rows=rows, days=days), echo=click.echo
    )
    click.echo(summary.render())
    if "embedded/reviews" in summary.partitions:
        try:
            from platform_assets.search import semantic_search

            click.echo(f'\nExample search: "{EXAMPLE_QUERY}" (k=3)')
            for hit in semantic_search(EXAMPLE_QUERY, k=3):
                click.echo(json.dumps(hit, ensure_ascii=False, default=str))
        except Exception as err:
            click.echo(f"example search failed: {err}", err=True)
            sys.exit(1)
    if not summary.ok:
        sys.exit(1)


@main.command("search")
@click.argument("query")
@click.option("--k", default=10, show_default=True, help="How many results.")
@click.option(
    "--where",
    default=None,
    help='SQL filter applied before the search: one condition over the table\'s columns, e.g. "rating <= 2"; '
    "anything else (text left over, a ';', a subquery) is refused.",
)
def search(query: str, k: int, where: str | None) -> None:
    """Semantic search over the embedded reviews; prints one JSON object per line, best first."""
    from platform_assets.defs.reviews.filters import FilterError
    from platform_assets.search import SearchError, semantic_search

    try:
        hits: list[dict[str, Any]] = semantic_search(query, k=k, where=where)
    except SearchError as err:
        message = str(err)
        cause = err.__cause__
        if isinstance(cause, FilterError) and cause.position is not None and "\n" not in cause.filter:
            # Point at the problem under the filter; tabs copied so the caret lines up.
            pad = "".join("\t" if char == "\t" else " " for char in cause.filter[: cause.position])
            message += f"\n  {cause.filter}\n  {pad}^"
        raise click.ClickException(message) from err
    for hit in hits:
        click.echo(json.dumps(hit, ensure_ascii=False, default=str))


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@main.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of the Dagster UI.")
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
@click.option("--mc-host", default="127.0.0.1", show_default=True, help="Address of the metadata center.")
@click.option("--mc-port", default=8090, show_default=True, help="Port of the metadata center.")
def dev(host: str, port: int, mc_host: str, mc_port: int) -> None:
    """The Dagster UI and daemon, with the metadata center beside them; Ctrl-C stops both."""
    import signal
    import subprocess
    from pathlib import Path

    from platform_assets.lib.config import child_env
    from platform_assets.lib.processes import stop_session
    from platform_assets.metadata_center.embedded import EmbeddedMetadataCenter, MetadataCenterStartError

    settings = get_settings()
    location = (
        ["-w", "workspace.yaml"] if Path("workspace.yaml").exists() else ["-m", "platform_assets.definitions"]
    )
    try:
        service = EmbeddedMetadataCenter(settings.data_dir, host=mc_host, port=mc_port)
        service.start()
    except MetadataCenterStartError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"metadata center at {service.url} (log: {service.log_path})")
    env = child_env({"METADATA_CENTER_URL": service.url})
    # Ctrl-C, and SIGTERM from a supervisor or a script, stop both services (also when started in the
    # background, where SIGINT arrives ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    ui = subprocess.Popen(
        ["dagster", "dev", *location, "-h", host, "-p", str(port)], env=env, start_new_session=True
    )
    try:
        ui.wait()
    except KeyboardInterrupt:
        pass
    finally:
        # dagster dev shuts its webserver and daemon down on SIGINT, not SIGTERM.
        stop_session(ui, first_signal=signal.SIGINT)
        service.stop()


@main.group("features")
def features() -> None:
    """Feast: online lookups and realtime pushes."""


@features.command("online")
@click.option("--user-id", "user_ids", type=int, multiple=True, required=True, help="A user id (repeatable).")
@click.option(
    "--features", "feature_refs", default=None, help="Comma-separated view:feature refs (default: all)."
)
def features_online(user_ids: tuple[int, ...], feature_refs: str | None) -> None:
    """Print the online feature values of each user as one JSON object per line."""
    from platform_assets.features import online_features

    refs = [ref.strip() for ref in feature_refs.split(",") if ref.strip()] if feature_refs else None
    try:
        rows = online_features(list(user_ids), refs)
    except Exception as err:  # Feast raises many types (unknown view, store not applied)
        raise click.ClickException(f"online lookup failed: {err}") from err
    for row in rows:
        click.echo(json.dumps(row, default=str))


@features.command("push")
@click.argument("source", type=click.File("r"))
@click.option("--offline", is_flag=True, help="Also append the records to the view's offline log.")
def features_push(source: Any, offline: bool) -> None:
    """Push JSON Lines records (user_id, last_action, session_duration, page_views_1h[, event_timestamp]) from
    SOURCE (a file, or - for standard input) into the user_realtime_activity view."""
    from platform_assets.features import FeaturePushError, push_realtime

    records = []
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise click.ClickException(f"line {number}: invalid JSON: {err.msg}") from err
    try:
        pushed = push_realtime(records, offline=offline)
    except FeaturePushError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"pushed {pushed} record(s) to user_realtime_activity")


# `platform lake …` for the Iceberg tables: added to the lake group (whose sync commands live in
# platform_assets/lake_sync/cli.py). Exit codes: 0 success, 1 the operation failed, 2 unknown table, snapshot
# or tag (or bad usage).


def _lake_lookup(call: Any) -> Any:
    """Run `call`; an unknown table, snapshot or tag (or a name that is not <layer>/<name>) exits 2."""
    try:
        return call()
    except (LookupError, ValueError) as err:
        error = click.ClickException(str(err).strip("'\""))
        error.exit_code = 2
        raise error from err


@click.command("tables")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per table instead of a table.")
def lake_tables(as_json: bool) -> None:
    """List every table in the lake catalog with its current snapshot, rows and data files."""
    from platform_assets import lake

    catalog = lake.catalog()
    infos = [lake.describe(name, catalog=catalog) for name in lake.tables(catalog)]
    if as_json:
        for info in infos:
            click.echo(json.dumps(info.as_dict(), default=str))
        return
    rows = [
        [
            i.name,
            str(i.snapshot_id or "-"),
            i.updated.strftime("%Y-%m-%d %H:%M:%S") if i.updated else "-",
            str(i.total_rows),
            str(i.data_files),
            str(i.snapshots),
            i.partitioned_by or "-",
        ]
        for i in infos
    ]
    echo_table(["table", "snapshot", "updated (UTC)", "rows", "files", "snapshots", "partitioned by"], rows)


@click.command("history")
@click.argument("table")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per snapshot instead of a table.")
def lake_history(table: str, as_json: bool) -> None:
    """The snapshots of TABLE (<layer>/<name>), oldest first: id, time, operation, run id, rows, tags."""
    from platform_assets import lake

    records = _lake_lookup(lambda: lake.history(table))
    if as_json:
        for record in records:
            click.echo(json.dumps(record.as_dict(), default=str))
        return
    rows = [
        [
            str(r.snapshot_id) + (" *" if r.current else ""),
            r.time.strftime("%Y-%m-%d %H:%M:%S"),
            r.operation
            + (
                f" ({r.properties['platform-maintenance']})" if "platform-maintenance" in r.properties else ""
            ),
            r.run_id or "-",
            r.partition_key or "-",
            f"+{r.rows_added}",
            f"-{r.rows_removed}",
            str(r.total_rows),
            ", ".join(r.tags) or "-",
        ]
        for r in records
    ]
    echo_table(
        [
            "snapshot (* current)",
            "time (UTC)",
            "operation",
            "run id",
            "partition",
            "added",
            "removed",
            "rows",
            "tags",
        ],
        rows,
    )


@click.command("read")
@click.argument("table")
@click.option("--snapshot", "snapshot_id", type=int, default=None, help="Read this snapshot (time travel).")
@click.option("--tag", default=None, help="Read the snapshot this tag points at.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many rows.")
@click.option("--columns", default=None, help="Comma-separated columns (default: all).")
def lake_read(
    table: str, snapshot_id: int | None, tag: str | None, limit: int | None, columns: str | None
) -> None:
    """Print the rows of TABLE (<layer>/<name>) as JSON lines, at the current snapshot or a pinned one."""
    from platform_assets import lake

    if snapshot_id is not None and tag is not None:
        raise click.UsageError("give --snapshot or --tag, not both")
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    arrow = _lake_lookup(
        lambda: lake.read_table(table, snapshot_id=snapshot_id, tag=tag, columns=names, limit=limit)
    )
    for batch in arrow.to_batches(max_chunksize=10_000):
        for row in batch.to_pylist():
            click.echo(json.dumps(row, ensure_ascii=False, default=str))


@click.command("maintain")
@click.argument("tables", nargs=-1)
@click.option(
    "--older-than-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Expire snapshots older than this (default: PLATFORM_SNAPSHOT_RETENTION_DAYS, 7); tagged ones stay.",
)
@click.option("--small-file-mib", type=click.FloatRange(min=0), default=32, show_default=True)
@click.option(
    "--small-files-limit",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="A partition with more small data files than this is rewritten as one file.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per table instead of a summary line.")
def lake_maintain(
    tables: tuple[str, ...],
    older_than_days: float | None,
    small_file_mib: float,
    small_files_limit: int,
    as_json: bool,
) -> None:
    """Expire old snapshots and compact small files of TABLES (<layer>/<name>; default: every lake table).

    The same work as the Dagster job lake_maintenance_job. Expiry removes snapshots from the metadata only;
    unreferenced data files stay on storage.
    """
    from platform_assets import lake

    reports = _lake_lookup(
        lambda: lake.maintain(
            list(tables) or None,
            older_than_days=older_than_days,
            small_file_bytes=int(small_file_mib * 1024 * 1024),
            small_files_limit=small_files_limit,
        )
    )
    for report in reports:
        click.echo(json.dumps(report.as_dict()) if as_json else report.summary())


def _add_subcommands() -> None:
    # Each group imports only click and its own light modules; heavy work happens inside the commands.
    from platform_assets.lake_sync.cli import lake_cli
    from platform_assets.metadata_center.cli import datasets_cli, metadata_center_cli
    from platform_assets.ops.runs_cli import instance_cli, runs_cli

    main.add_command(lake_cli, name="lake")
    for command in (lake_tables, lake_history, lake_read, lake_maintain):
        lake_cli.add_command(command)
    main.add_command(metadata_center_cli)
    main.add_command(datasets_cli)
    main.add_command(runs_cli)
    main.add_command(instance_cli)


_add_subcommands()

if __name__ == "__main__":
    main()
