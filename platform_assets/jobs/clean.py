"""The cleaning as a Ray job: `python -m platform_assets.jobs.clean --delivery KEY`.

The Dagster step `cleaned/reviews` (with `quarantine/reviews`) submits this to the cluster's job API
(RAY_ADDRESS=http(s)://head:8265) through dagster-ray. On the cluster, Ray sets RAY_ADDRESS for the job's
driver, so Daft runs on the cluster's Ray (`lib/daft_runner.py`): the delivery is read from the lake in
chunks, cleaned against the earlier deliveries' keys, written to both tables and committed here, as the lake
IO manager would in the step (defs/reviews/cleaning_run.py). Both materializations, with the metadata the step
would have given them (rows, schema, snapshot, quality score, reasons), go back to the step through Pipes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from platform_assets.lib.config import launched_through_pipes
from platform_assets.lib.runtime_env import apply_runtime_defaults


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The job's command line."""
    parser = argparse.ArgumentParser(prog="python -m platform_assets.jobs.clean", description=__doc__)
    parser.add_argument("--delivery", required=True, help="the review_deliveries partition to clean")
    return parser.parse_args(argv)


def run(delivery: str, run_id: str | None, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Clean the delivery and commit both tables; return each asset's metadata in Pipes' form, by asset key."""
    import dagster as dg

    from platform_assets.defs.reviews.assets import CleanedReviewsType
    from platform_assets.defs.reviews.cleaning_run import clean_delivery_into_lake
    from platform_assets.defs.reviews.contract import CLEANED_REVIEWS, QUARANTINED_REVIEWS
    from platform_assets.lib.lake import PARTITION_COLUMN, RUN_ID_PROPERTY, LakeIOManager, with_pandas_dtypes
    from platform_assets.lib.metadata import arrow_metadata
    from platform_assets.lib.quality import results_metadata
    from platform_assets.lib.ray_jobs import to_pipes_form

    # The quarantine has no structural type (its rows are whatever the source sent); cleaned has the contract's.
    output_types = {CLEANED_REVIEWS.name: CleanedReviewsType, QUARANTINED_REVIEWS.name: dg.Any}
    lake = LakeIOManager()
    cleaned = clean_delivery_into_lake(lake, delivery, log)
    properties = {RUN_ID_PROPERTY: run_id} if run_id else {}
    reports: dict[str, dict[str, Any]] = {}
    outputs = (
        (CLEANED_REVIEWS.name, cleaned.cleaned, cleaned.cleaned_quality, {}),
        (
            QUARANTINED_REVIEWS.name,
            cleaned.quarantine,
            cleaned.quarantine_quality,
            {"reasons": cleaned.reasons},
        ),
    )
    for asset, writer, _, _ in outputs:
        # The step's Dagster type of the output, on what this job wrote, before anything is committed.
        check = dg.check_dagster_type(output_types[asset], writer)
        if not check.success:
            cleaned.cleaned.abort()
            cleaned.quarantine.abort()
            raise ValueError(f"{asset}: {check.description}")
    for asset, writer, quality, extra in outputs:
        result = writer.commit(properties)
        preview = with_pandas_dtypes(writer.head, writer.pandas_metadata) if writer.head is not None else None
        metadata = {
            "raw_rows": cleaned.raw_rows,
            **extra,
            **results_metadata([quality.result()]),
            **arrow_metadata(result, preview, drop=(PARTITION_COLUMN,)),
        }
        reports[asset] = to_pipes_form(metadata)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job: through Dagster Pipes when a Dagster step launched it, else printing JSON."""
    apply_runtime_defaults()
    args = parse_args(argv)
    if not launched_through_pipes():
        reports = run(args.delivery, None, log=lambda message: print(message, file=sys.stderr, flush=True))
        print(json.dumps({asset: {k: v["raw_value"] for k, v in m.items()} for asset, m in reports.items()}))
        return 0
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        for asset, metadata in run(args.delivery, pipes.run_id, log=pipes.log.info).items():
            pipes.report_asset_materialization(asset_key=asset, metadata=metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
