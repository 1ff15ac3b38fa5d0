"""The main run behind `make run`: every domain materialized on the sample data, in dependency order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from platform_assets.lib.config import get_settings
from platform_assets.lib.run_summary import RunSummary

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Step:
    """One job run: a job, optionally one partition or a subset of its assets."""

    label: str
    job: str
    partition: str | None = None
    assets: tuple[dg.AssetKey, ...] = field(default_factory=tuple)
    domain: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    dynamic_partition: tuple[str, str] | None = None


def write_samples(review_rows: int = 2000, event_days: int = 7) -> None:
    """Deterministic sample data for every domain (files whose content would not change are left alone)."""
    from platform_assets.defs.reviews.sample_data import write_sample_reviews
    from platform_assets.defs.user_events.sample_data import write_sample_events

    settings = get_settings()
    write_sample_reviews(settings.landing_dir_for("reviews"), rows=review_rows)
    write_sample_events(settings.landing_dir_for("user_events"), days=event_days)


def delivered_days() -> list[str]:
    """The daily partitions that have a user-events file in the landing zone."""
    from platform_assets.defs.user_events.assets import daily
    from platform_assets.lib.landing import list_landing_files

    files, _ = list_landing_files(get_settings().landing_dir_for("user_events"))
    names = " ".join(path.name for path in files)
    return [key for key in daily.get_partition_keys() if key in names]


@contextmanager
def metadata_center_available(echo: Callable[[str], None]) -> Iterator[str]:
    """The configured metadata center when it answers; otherwise the embedded one, started for this run."""
    from platform_assets.metadata_center.client import MetadataCenterClient, MetadataCenterUnavailable

    client = MetadataCenterClient()
    try:
        client.health()
        yield client.url
        return
    except MetadataCenterUnavailable:
        pass
    settings = get_settings()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (settings.data_dir / "metadata_center.log").open("a")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "platform_assets.metadata_center",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    previous = os.environ.get("METADATA_CENTER_URL")
    os.environ["METADATA_CENTER_URL"] = url
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                MetadataCenterClient(url=url).health()
                break
            except MetadataCenterUnavailable:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the embedded metadata center did not start; see {log.name}"
                    ) from None
                time.sleep(0.3)
        echo(f"  started the embedded metadata center at {url} (make dev keeps one running)")
        yield url
    finally:
        if previous is None:
            os.environ.pop("METADATA_CENTER_URL", None)
        else:
            os.environ["METADATA_CENTER_URL"] = previous
        process.terminate()
        process.wait(timeout=30)
        log.close()


def register_sample_dataset() -> Step:
    """Register the sample export (a new version only when it changed) and return the run that processes it."""
    from platform_assets.defs.registrations.assets import VERSION_TAG, registered_datasets
    from platform_assets.defs.registrations.sample_data import sample_registration, write_sample_orders
    from platform_assets.metadata_center.client import MetadataCenterClient, MetadataCenterError

    settings = get_settings()
    payload = sample_registration(write_sample_orders(settings.data_dir / "exports" / "sample_orders"))
    client = MetadataCenterClient()
    try:
        latest = client.get(payload["dataset_id"])
        changed = latest["size_bytes"] != payload["size_bytes"] or latest["row_count"] != payload["row_count"]
    except MetadataCenterError as err:
        if err.status != 404:
            raise
        latest, changed = None, True
    version = client.register(payload)["version"] if changed else latest["version"]
    return Step(
        f"registered {payload['dataset_id']} v{version}",
        "registered_datasets_job",
        partition=payload["dataset_id"],
        domain="registrations",
        tags=((VERSION_TAG, str(version)),),
        dynamic_partition=(registered_datasets.name, payload["dataset_id"]),
    )


def main_steps() -> list[Step]:
    """The runs that materialize every domain once, in order."""
    from platform_assets.defs.features.assets import FEAST_REPOSITORY

    steps = [Step("reviews", "reviews_job", domain="reviews")]
    steps.append(Step("feast apply", "features_job", assets=(FEAST_REPOSITORY,), domain="features"))
    steps += [
        Step(f"user_events {day}", "user_events_job", partition=day, domain="features")
        for day in delivered_days()
    ]
    steps.append(Step("training set", "features_job", domain="features"))
    return steps


def run_main(
    instance: dg.DagsterInstance, steps: list[Step] | None = None, echo: Callable[[str], None] = print
) -> RunSummary:
    """Run `steps` (default: every domain) in process; a failed step stops the rest of its domain only."""
    from platform_assets.definitions import defs

    summary = RunSummary()
    failed_domains: set[str] = set()
    if steps is None:
        steps = main_steps()
        with metadata_center_available(echo):
            steps.append(register_sample_dataset())
            _run_steps(instance, steps, summary, failed_domains, echo, defs)
        return summary
    _run_steps(instance, steps, summary, failed_domains, echo, defs)
    return summary


def _run_steps(
    instance: dg.DagsterInstance,
    steps: list[Step],
    summary: RunSummary,
    failed_domains: set[str],
    echo: Callable[[str], None],
    defs: dg.Definitions,
) -> None:
    for step in steps:
        if step.domain in failed_domains:
            echo(f"  skipped {step.label} (an earlier step of {step.domain} failed)")
            continue
        echo(f"  running {step.label} …")
        if step.dynamic_partition:
            instance.add_dynamic_partitions(step.dynamic_partition[0], [step.dynamic_partition[1]])
        result = defs.resolve_job_def(step.job).execute_in_process(
            instance=instance,
            partition_key=step.partition,
            asset_selection=list(step.assets) or None,
            tags=dict(step.tags),
            raise_on_error=False,
            run_config=QUIET,
        )
        summary.add(step.label, result)
        if not result.success:
            failed_domains.add(step.domain)
