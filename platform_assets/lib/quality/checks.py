"""Turning suites into Dagster asset checks and quality-score metadata."""

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from platform_assets.lib.quality.rules import SEVERITY_WEIGHTS, Suite
from platform_assets.lib.quality.validation import SuiteResult, validate


def check_result_from(result: SuiteResult) -> dg.AssetCheckResult:
    """An asset check result carrying the evidence of every failed rule and the suite's quality score."""
    failures = [r.evidence() for r in result.failures]
    metadata: dict[str, Any] = {
        "quality_score": dg.MetadataValue.float(result.score),
        "rules_passed": sum(r.success for r in result.rules),
        "rules_total": len(result.rules),
        "rows": result.rows,
        "failed_rules": dg.MetadataValue.json(failures),
    }
    if failures:
        metadata["failures"] = dg.MetadataValue.md(_failures_markdown(failures))
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR if result.suite.blocking else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def _failures_markdown(failures: list[dict[str, Any]]) -> str:
    lines = ["| rule | column | unexpected | % | sample |", "|---|---|---|---|---|"]
    for f in failures:
        sample = ", ".join(repr(v) for v in f.get("sample", []))[:120]
        lines.append(
            f"| {f['rule']} | {f.get('column', '')} | {f.get('unexpected_count', f.get('observed_value', ''))} "
            f"| {f.get('unexpected_percent', '')} | {sample.replace('|', '/')} |"
        )
    return "\n".join(lines)


def suite_check(
    asset_key: dg.AssetKey,
    suite: Suite,
    to_frame: Callable[[Any], pd.DataFrame] | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetChecksDefinition:
    """One asset check that validates the latest value of `asset_key` (loaded by its IO manager) with `suite`.

    `to_frame` converts what the IO manager loads (e.g. a LanceDB table) into a DataFrame. For a partitioned
    asset pass its `partitions_def`: the check then validates the partition of the run.
    """

    @dg.asset_check(
        asset=asset_key,
        name=suite.name,
        blocking=suite.blocking,
        partitions_def=partitions_def,
        description=suite.description
        or f"{len(suite.rules)} rules: " + "; ".join(r.description for r in suite.rules),
    )
    def _check(context: dg.AssetCheckExecutionContext, value: Any) -> dg.AssetCheckResult:
        frame = to_frame(value) if to_frame else value
        result = validate(frame, suite)
        if not result.passed:
            context.log.warning(
                f"{asset_key.to_user_string()}:{suite.name} failed: "
                + "; ".join(
                    f"{r.rule.description} ({r.unexpected_count} unexpected)" for r in result.failures
                )
            )
        return check_result_from(result)

    return _check


def score_metadata(frame: pd.DataFrame, suites: Sequence[Suite]) -> dict[str, Any]:
    """Materialization metadata: the quality score of this dataset version over all its suites."""
    results = [validate(frame, suite) for suite in suites]
    total = sum(SEVERITY_WEIGHTS[r.rule.severity] for s in results for r in s.rules)
    passed = sum(SEVERITY_WEIGHTS[r.rule.severity] for s in results for r in s.rules if r.success)
    return {
        "quality/score": dg.MetadataValue.float(round(passed / total, 4) if total else 1.0),
        "quality/rules_failed": dg.MetadataValue.json(
            [f"{s.suite.name}: {r.rule.description}" for s in results for r in s.failures]
        ),
    }


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
        reasons = quarantine["reject_reason"].value_counts().to_dict() if len(quarantine) else {}
        return dg.AssetCheckResult(
            passed=accounted == len(raw),
            metadata={
                "raw_rows": len(raw),
                "cleaned_rows": len(cleaned),
                "quarantined_rows": len(quarantine),
                "difference": len(raw) - accounted,
                "quarantine_by_reason": dg.MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
            },
        )

    return _check
