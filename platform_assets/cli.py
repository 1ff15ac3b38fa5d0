"""The `platform` command: run the main job, write sample data, search."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from platform_assets.lib.config import get_settings

EXAMPLE_QUERY = "battery dies too fast"


@click.group()
def main() -> None:
    """platform_assets: the AI data platform on Dagster."""


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
@click.option("--no-sample", is_flag=True, help="Use the landing files as they are; write no sample data.")
def run(rows: int, no_sample: bool) -> None:
    """Write sample data, materialize every asset of reviews_job with its checks, print a summary."""
    from platform_assets.definitions import defs
    from platform_assets.defs.reviews.sample_data import write_sample_reviews
    from platform_assets.lib.instance import local_instance
    from platform_assets.lib.run_summary import summarize_run

    settings = get_settings()
    if not no_sample:
        write_sample_reviews(settings.landing_dir_for("reviews"), rows=rows)
    instance = local_instance()
    click.echo(f"Materializing reviews_job (Dagster instance: {settings.dagster_home}) …")
    result = defs.resolve_job_def("reviews_job").execute_in_process(
        instance=instance,
        raise_on_error=False,
        # The summary below says what matters; step-level events are in the UI (make dev).
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    summary = summarize_run(result)
    click.echo(summary.render())
    if result.success:
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
@click.option("--where", default=None, help='SQL filter applied before the search, e.g. "rating <= 2".')
def search(query: str, k: int, where: str | None) -> None:
    """Semantic search over the embedded reviews; prints one JSON object per line, best first."""
    from platform_assets.search import SearchError, semantic_search

    try:
        hits: list[dict[str, Any]] = semantic_search(query, k=k, where=where)
    except SearchError as err:
        raise click.ClickException(str(err)) from err
    for hit in hits:
        click.echo(json.dumps(hit, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
