"""A cleaning step splits raw rows into "cleaned" and "quarantine": its two outputs, and the check that every
raw row landed in exactly one of them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from platform_assets.lib.quality.checks import score_metadata
from platform_assets.lib.quality.rules import Suite


def reason_counts(quarantine: pd.DataFrame, column: str = "reject_reason") -> dict[str, int]:
    """Quarantined rows per reject reason, most frequent first."""
    if not len(quarantine):
        return {}
    return {str(reason): int(count) for reason, count in quarantine[column].value_counts().items()}


def cleaning_outputs(
    context: dg.AssetExecutionContext,
    raw_rows: int,
    cleaned: pd.DataFrame,
    quarantine: pd.DataFrame,
    *,
    cleaned_suites: Sequence[Suite] = (),
    quarantine_suites: Sequence[Suite] = (),
    cleaned_metadata: Mapping[str, Any] | None = None,
) -> Iterator[dg.Output]:
    """The Outputs "cleaned" and "quarantine" of a cleaning multi-asset, with the metadata both always carry.

    Both: `raw_rows`; the quarantine: `reasons` (rows per reject_reason); each output with suites: its quality
    score (`score_metadata`, whose results the run's suite checks reuse).
    """
    outputs = (
        ("cleaned", cleaned, cleaned_suites, dict(cleaned_metadata or {})),
        (
            "quarantine",
            quarantine,
            quarantine_suites,
            {"reasons": dg.MetadataValue.json(reason_counts(quarantine))},
        ),
    )
    for name, frame, suites, extra in outputs:
        metadata: dict[str, Any] = {"raw_rows": raw_rows, **extra}
        if suites:
            metadata.update(score_metadata(frame, suites, context, output_name=name))
        yield dg.Output(frame, output_name=name, metadata=metadata)


def row_accounting_check(
    raw: dg.AssetKey,
    cleaned: dg.AssetKey,
    quarantine: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetChecksDefinition:
    """A blocking check on `cleaned`: every raw row is in exactly one of cleaned or quarantine, with the
    quarantine broken down by reject_reason."""

    @dg.asset_check(
        asset=cleaned,
        name="row_accounting",
        additional_ins={"raw": dg.AssetIn(key=raw), "quarantine": dg.AssetIn(key=quarantine)},
        blocking=True,
        partitions_def=partitions_def,
        description="Every raw row is in exactly one of cleaned or quarantine: raw == cleaned + quarantine.",
    )
    def _check(cleaned: pd.DataFrame, raw: pd.DataFrame, quarantine: pd.DataFrame) -> dg.AssetCheckResult:
        accounted = len(cleaned) + len(quarantine)
        return dg.AssetCheckResult(
            passed=accounted == len(raw),
            metadata={
                "raw_rows": len(raw),
                "cleaned_rows": len(cleaned),
                "quarantined_rows": len(quarantine),
                "difference": len(raw) - accounted,
                "quarantine_by_reason": dg.MetadataValue.json(reason_counts(quarantine)),
            },
        )

    return _check
