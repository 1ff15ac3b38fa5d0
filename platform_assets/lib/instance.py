"""The Dagster instance for local runs: $DAGSTER_HOME, created on first use."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from platform_assets.lib.config import export_env, get_settings

MINIMAL_INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def ensure_dagster_home(template: Path | None = None) -> Path:
    """Create $DAGSTER_HOME (default $PLATFORM_DATA_DIR/dagster) with a dagster.yaml, and export it."""
    home = get_settings().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        if template and template.exists():
            shutil.copyfile(template, target)
        else:
            target.write_text(MINIMAL_INSTANCE_YAML)
    # Dagster itself (DagsterInstance.get, `dagster dev` started from here) finds its instance through it.
    export_env("DAGSTER_HOME", str(home))
    return home


def local_instance() -> dg.DagsterInstance:
    """The persistent instance under $DAGSTER_HOME, so runs from the CLI show up in the UI."""
    ensure_dagster_home(Path.cwd() / "dagster.yaml")
    return dg.DagsterInstance.get()


def ensure_pool_limits(instance: dg.DagsterInstance, limits: dict[str, int]) -> None:
    """Give each concurrency pool its limit unless the instance has one for it already.

    Pool limits live in the instance's storage (the UI's Deployment → Concurrency page, `dagster instance
    concurrency set`); an instance-wide default in dagster.yaml would need the run queue's limits moved out
    of `run_coordinator` (Dagster refuses both), and the Helm chart writes them there. A limit an operator
    set is kept.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    known = storage.get_concurrency_keys()
    for pool, limit in limits.items():
        if pool not in known:
            storage.set_concurrency_slots(pool, limit)
