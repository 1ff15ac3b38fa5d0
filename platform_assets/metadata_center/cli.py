"""`platform metadata-center …` (run the service) and `platform datasets …` (talk to it).

Both groups import only click and the light client at import time; the server stack (FastAPI, SQLAlchemy,
Alembic, uvicorn) loads when `serve` runs. Failures are one line on stderr ("Error: …") with exit status 1.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from platform_assets.metadata_center.client import MetadataCenterClient, MetadataCenterError

F = TypeVar("F", bound=Callable[..., Any])


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- platform metadata-center ----------------------------------------------------------------------------


@click.group("metadata-center")
def metadata_center_cli() -> None:
    """The metadata center: the dataset registry HTTP service (registrations, lineage, webhooks)."""


def _server_settings(db_url: str | None, require_key_for_reads: bool | None) -> Any:
    from platform_assets.metadata_center.settings import metadata_center_settings

    try:
        settings = metadata_center_settings()
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    changes: dict[str, Any] = {}
    if db_url:
        changes["db_url"] = db_url
    if require_key_for_reads is not None:
        changes["require_key_for_reads"] = require_key_for_reads
    return dataclasses.replace(settings, **changes)


def _reason(err: Exception) -> str:
    """The driver's own words for a database error (SQLAlchemy's wrapper adds the statement and a link)."""
    import sqlalchemy as sa

    return str(err.orig) if isinstance(err, sa.exc.DBAPIError) else str(err)


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    from platform_assets.metadata_center.db import normalize_db_url

    return sa.make_url(normalize_db_url(url)).render_as_string(hide_password=True)


@metadata_center_cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option(
    "--db",
    "db_url",
    default=None,
    help="SQLAlchemy URL of the registry database (default: $METADATA_CENTER_DB_URL, "
    "else sqlite:///$PLATFORM_DATA_DIR/metadata_center.db), e.g. postgresql+psycopg://user@host/db.",
)
@click.option(
    "--require-key-for-reads/--open-reads",
    default=None,
    help="Require X-API-Key on GET requests too (default: $METADATA_CENTER_REQUIRE_KEY_FOR_READS, else open).",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(
    host: str, port: int, db_url: str | None, require_key_for_reads: bool | None, log_level: str
) -> None:
    """Migrate the database (upgrade head) and serve the API until interrupted."""
    import uvicorn

    from platform_assets.metadata_center.app import create_app, prepare

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces every plugin and context at INFO; the upgrade itself is still logged.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    settings = _server_settings(db_url, require_key_for_reads)
    try:
        service = prepare(settings)
    except Exception as err:
        raise click.ClickException(
            _one_line(
                f"cannot start the metadata center on {_safe_url(settings.database_url)}: {_reason(err)}"
            )
        ) from err
    key_source = "METADATA_CENTER_API_KEY" if settings.api_key else str(settings.api_key_file)
    click.echo(
        f"metadata center on http://{host}:{port} (database {_safe_url(settings.database_url)} at revision "
        f"{service.schema_revision}; API key from {key_source}; "
        f"reads {'require the key' if settings.require_key_for_reads else 'open'})",
        err=True,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(service), host=host, port=port, log_level=log_level))
    server.run()
    if not server.started:
        sys.exit(1)


@metadata_center_cli.command("migrate")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL (default as for serve).")
@click.option("--revision", default="head", show_default=True, help="Target Alembic revision.")
def migrate(db_url: str | None, revision: str) -> None:
    """Apply the schema migrations without serving."""
    from platform_assets.metadata_center import db

    settings = _server_settings(db_url, None)
    try:
        engine = db.create_db_engine(settings.database_url)
        at = db.upgrade(engine, revision)
    except Exception as err:
        raise click.ClickException(
            _one_line(f"migration failed on {_safe_url(settings.database_url)}: {_reason(err)}")
        ) from err
    click.echo(f"{_safe_url(settings.database_url)} at revision {at}")


@metadata_center_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
@click.option(
    "--db", "db_url", default=None, help="Database to compare the models against (default as for serve)."
)
def revision(message: str, db_url: str | None) -> None:
    """Write a new migration, autogenerated from models.py against an up-to-date database (for developers)."""
    from alembic import command

    from platform_assets.metadata_center import db

    settings = _server_settings(db_url, None)
    command.revision(db.alembic_config(settings.database_url), message=message, autogenerate=True)


# -- platform datasets -----------------------------------------------------------------------------------


def _handle_errors(command: F) -> F:
    """One-line errors: unreachable service, 401, 404, 422 with the field."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MetadataCenterError as err:
            raise click.ClickException(_one_line(err.message)) from err

    return wrapper  # type: ignore[return-value]


def _client(ctx: click.Context) -> MetadataCenterClient:
    try:
        return MetadataCenterClient(url=ctx.obj.get("url"), api_key=ctx.obj.get("api_key"))
    except ValueError as err:  # a malformed METADATA_CENTER_* variable
        raise click.ClickException(str(err)) from err


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@click.group("datasets")
@click.option(
    "--url",
    default=None,
    help="The metadata center (default: $METADATA_CENTER_URL, else http://127.0.0.1:8090).",
)
@click.option(
    "--api-key",
    default=None,
    help="Default: $METADATA_CENTER_API_KEY, else the key a local service generated.",
)
@click.pass_context
def datasets_cli(ctx: click.Context, url: str | None, api_key: str | None) -> None:
    """Registered datasets in the metadata center: register, list, show, versions, diff, verify, lineage, mount."""
    ctx.ensure_object(dict)
    ctx.obj.update(url=url, api_key=api_key)


@datasets_cli.command("register")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the whole response as JSON.")
@click.pass_context
@_handle_errors
def register(ctx: click.Context, file: str, as_json: bool) -> None:
    """Register the dataset described in FILE (JSON as in docs/metadata_center.md; - reads stdin)."""
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as err:
        raise click.ClickException(_one_line(f"{file}: {err.strerror or err}")) from err
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise click.ClickException(f"{file}: invalid JSON: {err}") from err
    if not isinstance(payload, dict):
        raise click.ClickException(f"{file}: expected a JSON object, got {type(payload).__name__}")
    result = _client(ctx).register(payload)
    if as_json:
        _echo_json(result)
    else:
        click.echo(f"registered {result['dataset_id']} version {result['version']} (seq {result['seq']})")


@datasets_cli.command("list")
@click.option(
    "--after", default=0, show_default=True, type=click.IntRange(min=0), help="Registrations after this seq."
)
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="At most this many."
)
@click.option("--tag", "tags", multiple=True, help="Only registrations with this tag (repeat: all of them).")
@click.option("--latest", is_flag=True, help="Only the newest version of each dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (items, next_after, has_more).")
@click.pass_context
@_handle_errors
def list_(
    ctx: click.Context, after: int, limit: int, tags: tuple[str, ...], latest: bool, as_json: bool
) -> None:
    """Registrations in seq order."""
    page = _client(ctx).list(after=after, limit=limit, tags=tags, latest=latest)
    if as_json:
        _echo_json({"items": page.items, "next_after": page.next_after, "has_more": page.has_more})
        return
    rows = [
        [
            str(item["seq"]),
            item["dataset_id"],
            str(item["version"]),
            item["payload"]["format"],
            "-" if item["payload"].get("row_count") is None else str(item["payload"]["row_count"]),
            item["registered_at"],
        ]
        for item in page.items
    ]
    echo_table(["seq", "dataset_id", "version", "format", "rows", "registered_at"], rows)
    if page.has_more:
        click.echo(f"more: --after {page.next_after}", err=True)


@datasets_cli.command("show")
@click.argument("dataset_id")
@click.option(
    "--version", type=click.IntRange(min=1), default=None, help="A given version (default: the latest)."
)
@click.pass_context
@_handle_errors
def show(ctx: click.Context, dataset_id: str, version: int | None) -> None:
    """The Cube Studio view of a dataset (storage, schema, version, mount_command) as JSON."""
    _echo_json(_client(ctx).get(dataset_id, version=version))


@datasets_cli.command("versions")
@click.argument("dataset_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per version.")
@click.pass_context
@_handle_errors
def versions(ctx: click.Context, dataset_id: str, as_json: bool) -> None:
    """Every version of a dataset: when, rows, content digest, code and the inputs it was built from."""
    from platform_assets.lib.dataset_versions import version_summary

    client = _client(ctx)
    latest = client.get(dataset_id)
    summaries = [version_summary(client.get(dataset_id, version=v)) for v in latest["versions"]]
    if as_json:
        _echo_json(summaries)
        return
    rows = [
        [
            str(s["version"]),
            str(s["registered_at"] or "-"),
            "-" if s["rows"] is None else str(s["rows"]),
            (s["content_sha256"] or "-")[:12],
            (s["code"] or "-")[:12],
            ", ".join(s["inputs"]) or "-",
        ]
        for s in summaries
    ]
    echo_table(["version", "registered_at", "rows", "sha256", "code", "inputs"], rows)


@datasets_cli.command("diff")
@click.argument("dataset_id")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_context
@_handle_errors
def diff(ctx: click.Context, dataset_id: str, old: int, new: int, as_json: bool) -> None:
    """Compare versions OLD and NEW of a dataset: schema, rows, metrics side by side (like `dvc metrics diff`)."""
    from platform_assets.lib.dataset_versions import diff as compare

    client = _client(ctx)
    result = compare(client.get(dataset_id, version=old), client.get(dataset_id, version=new))
    if as_json:
        _echo_json(result)
        return
    schema = result["schema"]
    for label, columns in (("added", schema["added"]), ("removed", schema["removed"])):
        for name, kind in columns.items():
            click.echo(f"column {label}: {name} {kind}")
    for name, (was, now) in schema["changed"].items():
        click.echo(f"column changed: {name} {was} -> {now}")
    click.echo("same rows" if result["same_rows"] else "rows differ")
    rows = [
        [m["metric"], _cell(m["old"]), _cell(m["new"]), _cell(m["change"])]
        for m in result["metrics"]
        if m["old"] != m["new"] or m["metric"] == "rows"
    ]
    echo_table(["metric", f"v{old}", f"v{new}", "change"], rows)


@datasets_cli.command("verify")
@click.argument("dataset_id")
@click.option(
    "--version", type=click.IntRange(min=1), default=None, help="A given version (default: the latest)."
)
@click.pass_context
@_handle_errors
def verify(ctx: click.Context, dataset_id: str, version: int | None) -> None:
    """Rebuild a version's rows from its manifest's pinned inputs and compare them with the published digest."""
    from platform_assets.lib.dataset_versions import MANIFEST_KEY, VersionError, rebuild_digest

    view = _client(ctx).get(dataset_id, version=version)
    manifest = (view.get("metadata") or {}).get(MANIFEST_KEY)
    if not manifest:
        raise click.ClickException(f"{dataset_id} version {view['version']} has no manifest to rebuild from")
    try:
        digest, rows = rebuild_digest(manifest)
    except (VersionError, LookupError) as err:
        raise click.ClickException(_one_line(str(err))) from err
    recorded = view["metadata"].get("content_sha256")
    if digest != recorded:
        raise click.ClickException(
            f"{dataset_id} version {view['version']}: rebuilt {rows} rows with sha256 {digest[:12]}, "
            f"published {view.get('row_count')} rows with sha256 {(recorded or '-')[:12]}"
        )
    click.echo(
        f"{dataset_id} version {view['version']}: rebuilt {rows} rows, sha256 {digest[:12]} as published"
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def echo_table(header: list[str], rows: list[list[str]]) -> None:
    """Rows under a header, in columns padded to their widest cell."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@datasets_cli.command("lineage")
@click.argument("entity_id")
@click.pass_context
@_handle_errors
def lineage(ctx: click.Context, entity_id: str) -> None:
    """The lineage record of a dataset (or job, model) as JSON."""
    _echo_json(_client(ctx).get_lineage(entity_id))


@datasets_cli.command("mount")
@click.argument("dataset_id")
@click.argument("target", type=click.Path(file_okay=False))
@click.option(
    "--version", type=click.IntRange(min=1), default=None, help="A given version (default: the latest)."
)
@click.pass_context
@_handle_errors
def mount(ctx: click.Context, dataset_id: str, target: str, version: int | None) -> None:
    """Make a dataset's files available under TARGET (symlinks for local storage, a download for S3)."""
    from platform_assets.sdk import Dataset, DatasetError

    try:
        dataset = Dataset.get(dataset_id, version=version, client=_client(ctx))
        path = dataset.mount(target)
    except DatasetError as err:
        raise click.ClickException(_one_line(str(err))) from err
    click.echo(str(path))
