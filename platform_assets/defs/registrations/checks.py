"""Checks of registered datasets: the data is what was registered; the generated contract holds."""

from typing import Any

import dagster as dg
import pandas as pd

from platform_assets.defs.registrations.assets import (
    CLEANED,
    PUBLISHED,
    QUARANTINE,
    RAW,
    TRAINING_SUFFIX,
    registered_datasets,
    registration_for,
)
from platform_assets.defs.registrations.resources import MetadataCenterResource
from platform_assets.defs.registrations.schema import REJECT_REASONS, compare, suite_for
from platform_assets.lib import quality as q
from platform_assets.lib.quality.checks import check_result_from


@dg.asset_check(
    asset=RAW,
    partitions_def=registered_datasets,
    blocking=True,
    description="The data at storage_path has the registered columns, row_count and size_bytes; a mismatch "
    "names the difference and stops the dataset from being published.",
)
def matches_registration(
    context: dg.AssetCheckExecutionContext, raw: pd.DataFrame, metadata_center: MetadataCenterResource
) -> dg.AssetCheckResult:
    """Compare the landed data with its registration."""
    from platform_assets.sdk import Dataset

    registration = registration_for(context, metadata_center)
    dataset = Dataset.get(
        registration["dataset_id"], registration["version"], client=metadata_center.client()
    )
    comparison = compare(registration, raw, sum(f.size for f in dataset.files()))
    problems = comparison.blocking_differences
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else "matches the registration",
        metadata={
            "differences": dg.MetadataValue.json(problems),
            **{
                k: v if isinstance(v, int) else dg.MetadataValue.json(v)
                for k, v in comparison.as_metadata().items()
            },
        },
    )


@dg.asset_check(
    asset=CLEANED,
    partitions_def=registered_datasets,
    blocking=True,
    description="The quality suite generated from the registered schema (columns exist, non-nullable columns "
    "never null, nullable ones < 5 % null); blocking.",
)
def registered_contract(
    context: dg.AssetCheckExecutionContext, cleaned: pd.DataFrame, metadata_center: MetadataCenterResource
) -> dg.AssetCheckResult:
    """Validate the cleaned data with the suite its registration implies."""
    return check_result_from(q.validate(cleaned, suite_for(registration_for(context, metadata_center))))


quarantine_expectations = q.suite_check(
    QUARANTINE,
    q.Suite(
        name="quarantine_expectations",
        description="Every rejected row has a known reason.",
        rules=[q.not_null("reject_reason", severity="critical"), q.in_set("reject_reason", REJECT_REASONS)],
    ),
    partitions_def=registered_datasets,
)


@dg.asset_check(
    asset=PUBLISHED,
    partitions_def=registered_datasets,
    description="The training-ready dataset is in the metadata center, tagged training-ready, with lineage back "
    "to its source.",
)
def published_with_lineage(
    context: dg.AssetCheckExecutionContext, metadata_center: MetadataCenterResource
) -> dg.AssetCheckResult:
    """Read the registration back: the publisher's word is not taken for it."""
    client = metadata_center.client()
    training_id = f"{context.partition_key}{TRAINING_SUFFIX}"
    view: dict[str, Any] = client.get(training_id)
    lineage = client.get_lineage(training_id)["lineage"]
    upstream = lineage.get("upstream", {})
    problems = []
    if "training-ready" not in view.get("tags", []):
        problems.append("tag training-ready missing")
    if not any(d.startswith(f"{context.partition_key}@v") for d in upstream.get("datasets", [])):
        problems.append(f"lineage does not name the source dataset {context.partition_key}")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "version": view.get("version"),
            "problems": dg.MetadataValue.json(problems),
            "upstream": dg.MetadataValue.json(upstream),
        },
    )
