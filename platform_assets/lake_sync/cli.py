"""`platform lake …`: sync, stats, cleanup, validate, test-connection.

Exit codes: 0 success; 1 the operation failed (unreachable host, rsync error, checksum mismatch, busy);
2 bad usage; 3 the profiles file is missing or invalid. On failure the last line on stderr is one line saying
why ("Error: profile 'x': …").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from platform_assets.lake_sync.config import (
    CONFIG_ENV,
    LakeSyncConfig,
    LakeSyncConfigError,
    ProfileConfig,
    load_config,
)

EXIT_FAILED = 1
EXIT_CONFIG = 3
_CONFIG_KEY = "platform_assets.lake_sync.config_path"


class LakeCliError(click.ClickException):
    """A failure with a one-line message and a chosen exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code


def _config(ctx: click.Context) -> LakeSyncConfig:
    try:
        return load_config(ctx.meta.get(_CONFIG_KEY))
    except LakeSyncConfigError as err:
        raise LakeCliError(str(err), EXIT_CONFIG) from err


def _profile(config: LakeSyncConfig, name: str) -> ProfileConfig:
    try:
        return config.profile(name)
    except LakeSyncConfigError as err:
        raise LakeCliError(str(err), EXIT_CONFIG) from err


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, default=str, sort_keys=True))


@click.group(name="lake")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Profiles file (default: ${CONFIG_ENV}, else $PLATFORM_DATA_DIR/lake_sync.yaml).",
)
@click.pass_context
def lake_cli(ctx: click.Context, config_path: Path | None) -> None:
    """The lake: its Iceberg tables (tables, history, read, maintain; docs/lake.md) and lake sync, which pulls raw
    data from collection nodes with rsync over SSH, resumably, with retention (sync, stats, cleanup, …)."""
    # ctx.meta is shared by every context of the invocation, whatever the parent `platform` group keeps in obj.
    ctx.meta[_CONFIG_KEY] = config_path


@lake_cli.command("sync")
@click.argument("profile", required=False)
@click.option("--all", "all_profiles", is_flag=True, help="Sync every enabled profile.")
@click.option(
    "--verify-all", is_flag=True, help="Checksum every landed file, not only the newly landed ones."
)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per profile instead of a summary line."
)
@click.option("-v", "--verbose", is_flag=True, help="Print each landed file to stderr.")
@click.pass_context
def sync_command(
    ctx: click.Context,
    profile: str | None,
    all_profiles: bool,
    verify_all: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Sync PROFILE, or every enabled profile with --all."""
    from platform_assets.lake_sync.sync import sync_profile

    if bool(profile) == all_profiles:
        raise click.UsageError("name one PROFILE or pass --all")
    config = _config(ctx)
    profiles = config.enabled_profiles() if all_profiles else [_profile(config, profile or "")]
    if not profiles:
        raise LakeCliError(f"{config.path}: no enabled profiles to sync", EXIT_CONFIG)

    def progress(event: str, details: dict[str, Any]) -> None:
        if verbose and event == "file_landed":
            click.echo(f"  landed {details['path']} ({details['size']} bytes)", err=True)
        elif verbose and event == "listed":
            click.echo(
                f"  {details['planned']} file(s) to consider, {details['expired']} past retention", err=True
            )

    failures = []
    for item in profiles:
        result = sync_profile(item, config, verify_all=verify_all, progress=progress)
        if as_json:
            _echo_json(
                {
                    "profile": result.profile,
                    "outcome": result.outcome,
                    "error": result.error,
                    "run_id": result.run_id,
                    "resumed": result.resumed,
                    "planned": result.planned,
                    "transferred": result.transferred,
                    "verified": result.verified,
                    "mismatched": result.mismatched,
                    "converted": result.converted,
                    "skipped_expired": result.skipped_expired,
                    "stats": result.stats.as_dict() if result.stats else None,
                    "duration_s": round(result.duration_s, 3),
                }
            )
        else:
            click.echo(result.summary())
        for warning in result.warnings:
            click.echo(f"warning: {result.profile}: {warning}", err=True)
        if not result.ok:
            failures.append(result)
    if len(failures) == 1:
        raise LakeCliError(failures[0].error or f"profile {failures[0].profile!r}: {failures[0].outcome}")
    if failures:
        names = ", ".join(f"{r.profile} ({r.outcome})" for r in failures)
        raise LakeCliError(f"{len(failures)} of {len(profiles)} profile(s) failed: {names}")


@lake_cli.command("stats")
@click.argument("profile", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per profile instead of a table.")
@click.pass_context
def stats_command(ctx: click.Context, profile: str | None, as_json: bool) -> None:
    """Files, bytes, oldest and newest data, last sync and outcome, per profile (or for PROFILE)."""
    from platform_assets.lake_sync.stats import collect_stats, render_table
    from platform_assets.lake_sync.sync import checkpoint_store

    config = _config(ctx)
    profiles = [_profile(config, profile)] if profile else list(config.profiles.values())
    store = checkpoint_store(config)
    collected = [collect_stats(item, store) for item in profiles]
    if as_json:
        for item in collected:
            _echo_json(item.as_dict())
    else:
        click.echo(render_table(collected))


@lake_cli.command("cleanup")
@click.argument("profile", required=False)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("-v", "--verbose", is_flag=True, help="List every deleted file.")
@click.pass_context
def cleanup_command(ctx: click.Context, profile: str | None, dry_run: bool, verbose: bool) -> None:
    """Delete landed data older than each profile's retention_days (PROFILE, or every profile)."""
    from platform_assets.lake_sync.checkpoint import SyncBusyError
    from platform_assets.lake_sync.retention import RetentionSafetyError
    from platform_assets.lake_sync.sync import cleanup_profile

    config = _config(ctx)
    profiles = [_profile(config, profile)] if profile else list(config.profiles.values())
    problems = []
    for item in profiles:
        try:
            report = cleanup_profile(item, config, dry_run=dry_run)
        except (SyncBusyError, RetentionSafetyError) as err:
            problems.append(str(err))
            continue
        if dry_run or verbose:
            verb = "would delete" if dry_run else "deleted"
            for expired in report.expired:
                click.echo(f"{verb} {expired.path} (dated {expired.date.isoformat()}, {expired.size} bytes)")
        click.echo(report.summary())
        problems += [f"profile {item.name!r}: {error}" for error in report.errors]
    if problems:
        raise LakeCliError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


@lake_cli.command("validate")
@click.pass_context
def validate_command(ctx: click.Context) -> None:
    """Check the profiles file: every field of every profile, and that key files exist."""
    try:
        config = load_config(ctx.meta.get(_CONFIG_KEY))
    except LakeSyncConfigError as err:
        for problem in err.problems:
            click.echo(f"error: {problem}", err=True)
        raise LakeCliError(
            f"{err.path}: {len(err.problems)} problem(s); see the lines above", EXIT_CONFIG
        ) from err
    problems = []
    for item in config.profiles.values():
        if item.ssh_key and not os.access(item.ssh_key, os.R_OK):
            state = "not readable" if os.path.exists(item.ssh_key) else "not found"
            problems.append(
                f"{config.path}: profile {item.name!r}: field 'ssh_key': {item.ssh_key} is {state}"
            )
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        raise LakeCliError(f"{config.path}: {len(problems)} problem(s); see the lines above", EXIT_CONFIG)
    click.echo(f"ok: {len(config.profiles)} profile(s) in {config.path}")
    for item in config.profiles.values():
        retention = f"{item.retention_days} days" if item.retention_days else "forever"
        state = "" if item.enabled else " [disabled]"
        click.echo(f"  {item.name}: {item.display} -> {item.target_dir()} (retention {retention}){state}")


@lake_cli.command("test-connection")
@click.argument("profile")
@click.pass_context
def test_connection_command(ctx: click.Context, profile: str) -> None:
    """Log in to PROFILE's host and list its remote_path."""
    from platform_assets.lake_sync.rsync import RsyncError, test_connection

    config = _config(ctx)
    item = _profile(config, profile)
    try:
        result = test_connection(item)
    except RsyncError as err:
        raise LakeCliError(err.reason) from err
    click.echo(
        f"ok: profile {item.name!r}: {result.endpoint} answered in {result.latency_s:.2f} s "
        f"({result.entries} entries)"
    )


def main() -> None:
    """Entry point for `python -m platform_assets.lake_sync.cli`."""
    lake_cli(prog_name="platform lake")


if __name__ == "__main__":
    main()
