"""A cleaning step splits raw rows into "cleaned" and "quarantine": its two outputs, and the check that every
raw row landed in exactly one of them."""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from platform_assets.lib.quality.checks import results_metadata, score_metadata
from platform_assets.lib.quality.rules import Suite
from platform_assets.lib.quality.validation import SuiteAccumulator


def reason_counts(quarantine: pd.DataFrame, column: str = "reject_reason") -> dict[str, int]:
    """Quarantined rows per reject reason, most frequent first."""
    if not len(quarantine):
        return {}
    return {str(reason): int(count) for reason, count in quarantine[column].value_counts().items()}


def cleaning_outputs(
    context: dg.AssetExecutionContext,
    raw_rows: int,
    cleaned: Any,
    quarantine: Any,
    *,
    cleaned_suites: Sequence[Suite] | Sequence[SuiteAccumulator] = (),
    quarantine_suites: Sequence[Suite] | Sequence[SuiteAccumulator] = (),
    cleaned_metadata: Mapping[str, Any] | None = None,
    reasons: Mapping[str, int] | None = None,
) -> Iterator[dg.Output]:
    """The Outputs "cleaned" and "quarantine" of a cleaning multi-asset, with the metadata both always carry.

    Both: `raw_rows`; the quarantine: `reasons` (rows per reject_reason); each output with suites: its quality
    score (`score_metadata`, whose results the run's suite checks reuse).

    `cleaned` and `quarantine`: DataFrames (validated here with the suites), or outputs written in pieces
    (lake `TableWriter`s) with the suites' `SuiteAccumulator`s that saw the pieces and the quarantine's
    `reasons` counted along the way.
    """
    outputs = (
        ("cleaned", cleaned, cleaned_suites, dict(cleaned_metadata or {})),
        (
            "quarantine",
            quarantine,
            quarantine_suites,
            {
                "reasons": dg.MetadataValue.json(
                    dict(reasons) if reasons is not None else reason_counts(quarantine)
                )
            },
        ),
    )
    for name, value, suites, extra in outputs:
        metadata: dict[str, Any] = {"raw_rows": raw_rows, **extra}
        accumulated = [s for s in suites if isinstance(s, SuiteAccumulator)]
        if accumulated:
            metadata.update(results_metadata([s.result() for s in accumulated], context, output_name=name))
        elif suites:
            metadata.update(score_metadata(value, suites, context, output_name=name))
        yield dg.Output(value, output_name=name, metadata=metadata)


def row_accounting_check(
    raw: dg.AssetKey,
    cleaned: dg.AssetKey,
    quarantine: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_column: str | None = None,
) -> dg.AssetChecksDefinition:
    """A blocking check on `cleaned`: every raw row is in exactly one of cleaned or quarantine, with the
    quarantine broken down by reject_reason.

    `partition_column`: the tables' partition column when it is not the lake's default `_partition`. The three
    counts come from the lake tables' metadata and the breakdown from the quarantine's
    `reject_reason` column alone, so the check costs the same whatever the size of the data.
    """

    @dg.asset_check(
        asset=cleaned,
        name="row_accounting",
        additional_deps=[raw, quarantine],
        blocking=True,
        partitions_def=partitions_def,
        # The counts come from the catalog the assets are written to.
        required_resource_keys={"lake_io_manager"},
        description="Every raw row is in exactly one of cleaned or quarantine: raw == cleaned + quarantine.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        from platform_assets.lib.lake import PARTITION_COLUMN, count_rows, value_counts

        catalog = context.resources.lake_io_manager.catalog()
        partition = context.partition_key if partitions_def is not None else None
        column = partition_column or PARTITION_COLUMN
        raw_rows, cleaned_rows, quarantined_rows = (
            count_rows(catalog, key, partition, column) for key in (raw, cleaned, quarantine)
        )
        accounted = cleaned_rows + quarantined_rows
        return dg.AssetCheckResult(
            passed=accounted == raw_rows,
            metadata={
                "raw_rows": raw_rows,
                "cleaned_rows": cleaned_rows,
                "quarantined_rows": quarantined_rows,
                "difference": raw_rows - accounted,
                "quarantine_by_reason": dg.MetadataValue.json(
                    value_counts(catalog, quarantine, "reject_reason", partition, column)
                    if quarantined_rows
                    else {}
                ),
            },
        )

    return _check
