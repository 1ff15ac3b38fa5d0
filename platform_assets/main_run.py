"""The main run behind `make run`: every domain materialized on the sample data, in dependency order."""

from __future__ import annotations

from collections.abc import Callable
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
    for step in steps or main_steps():
        if step.domain in failed_domains:
            echo(f"  skipped {step.label} (an earlier step of {step.domain} failed)")
            continue
        echo(f"  running {step.label} …")
        result = defs.resolve_job_def(step.job).execute_in_process(
            instance=instance,
            partition_key=step.partition,
            asset_selection=list(step.assets) or None,
            raise_on_error=False,
            run_config=QUIET,
        )
        summary.add(step.label, result)
        if not result.success:
            failed_domains.add(step.domain)
    return summary
