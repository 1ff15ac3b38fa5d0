"""Turning suites into Dagster asset checks and quality-score metadata."""

import threading
from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from platform_assets.lib.quality.rules import Suite
from platform_assets.lib.quality.validation import SuiteAccumulator, SuiteResult, validate, weighted_score

# Suite results an asset computed for its quality score, kept for the suite checks of the same run: the check
# would otherwise validate the very frame the asset just stored a second time (GX is the largest cost of a
# check at a million rows). A check that runs in another process (another executor) does not find them and
# validates; so does every run of the quality job. Taken once, and never more than a few kept.
_SHARED_LIMIT = 32
_shared: dict[tuple[str, str, str, str], SuiteResult] = {}
_shared_lock = threading.Lock()


def _run_id(context: Any) -> str | None:
    """The run a context belongs to; None for an asset function called directly (Dagster's EPHEMERAL run)."""
    # (An asset check's context has `run`, an asset's `run_id`, which a direct call can answer.)
    run_id = context.run_id if hasattr(context, "run_id") else context.run.run_id
    return None if run_id == "EPHEMERAL" else run_id


def _shared_key(context: Any, asset_key: dg.AssetKey, suite: Suite) -> tuple[str, str, str, str] | None:
    """Run, asset, partition and suite; None for a run over a partition range (results are per partition)
    and for an asset function called directly (no run: nothing will look the result up)."""
    run_id = _run_id(context)
    if run_id is None or (context.has_partition_key_range and not context.has_partition_key):
        return None
    partition = context.partition_key if context.has_partition_key else ""
    return (run_id, asset_key.to_user_string(), partition, suite.name)


def _share(key: tuple[str, str, str, str] | None, result: SuiteResult) -> None:
    if key is None:
        return
    with _shared_lock:
        _shared[key] = result
        while len(_shared) > _SHARED_LIMIT:
            del _shared[next(iter(_shared))]


def _take_shared(key: tuple[str, str, str, str] | None, suite: Suite) -> SuiteResult | None:
    if key is None:
        return None
    with _shared_lock:
        result = _shared.pop(key, None)
    # Only the very same rules: a suite of the same name with other rules is validated on its own.
    return result if result is not None and result.suite == suite else None


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
    lake_partition_column: str | None = None,
) -> dg.AssetChecksDefinition:
    """One asset check that validates the latest value of `asset_key` (loaded by its IO manager) with `suite`.

    `to_frame` converts what the IO manager loads (e.g. a LanceDB table) into a DataFrame. For a partitioned
    asset pass its `partitions_def`: the check then validates the partition of the run. For a lake asset
    partitioned on a column of its own, pass `lake_partition_column`: the check then reads the partition
    from the lake in batches (only the suite's columns), so it never holds the partition whole.
    """
    if lake_partition_column is not None:
        return _lake_suite_check(asset_key, suite, partitions_def, lake_partition_column)

    @dg.asset_check(
        asset=asset_key,
        name=suite.name,
        blocking=suite.blocking,
        partitions_def=partitions_def,
        description=suite.description
        or f"{len(suite.rules)} rules: " + "; ".join(r.description for r in suite.rules),
    )
    def _check(context: dg.AssetCheckExecutionContext, value: Any) -> dg.AssetCheckResult:
        result = _take_shared(_shared_key(context, asset_key, suite), suite)
        if result is None:
            result = validate(to_frame(value) if to_frame else value, suite)
        return _reported(context, asset_key, result)

    return _check


def _reported(context: Any, asset_key: dg.AssetKey, result: SuiteResult) -> dg.AssetCheckResult:
    """The check result of a suite's result, with a warning in the run's log when it failed."""
    if not result.passed:
        context.log.warning(
            f"{asset_key.to_user_string()}:{result.suite.name} failed: "
            + "; ".join(f"{r.rule.description} ({r.unexpected_count} unexpected)" for r in result.failures)
        )
    return check_result_from(result)


def _lake_suite_check(
    asset_key: dg.AssetKey,
    suite: Suite,
    partitions_def: dg.PartitionsDefinition | None,
    partition_column: str,
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key,
        name=suite.name,
        blocking=suite.blocking,
        partitions_def=partitions_def,
        required_resource_keys={"lake_io_manager"},
        description=suite.description
        or f"{len(suite.rules)} rules: " + "; ".join(r.description for r in suite.rules),
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        result = _take_shared(_shared_key(context, asset_key, suite), suite)
        if result is None:
            partition = context.partition_key if partitions_def is not None else None
            catalog = context.resources.lake_io_manager.catalog()
            result = validate_lake_table(catalog, asset_key, suite, partition, partition_column)
        return _reported(context, asset_key, result)

    return _check


def validate_lake_table(
    catalog: Any,
    asset_key: dg.AssetKey,
    suite: Suite,
    partition_key: str | None = None,
    partition_column: str | None = None,
    batch_rows: int | None = None,
) -> SuiteResult:
    """Validate a lake table (or one partition of it) with `suite`, a batch at a time, reading only the
    suite's columns (all when it names none); `batch_rows` defaults to PLATFORM_CHUNK_ROWS."""
    import pyarrow as pa

    from platform_assets.lib.config import get_settings
    from platform_assets.lib.lake import (
        PARTITION_COLUMN,
        iter_batches,
        load_table,
        partition_filter,
        to_pandas,
    )
    from platform_assets.lib.memory import release_free_memory

    accumulator = SuiteAccumulator(suite)
    table = load_table(catalog, asset_key)
    if table is None:
        return accumulator.result()
    names = table.schema().as_arrow().names
    columns = (
        [c for c in suite.columns if c in names]
        if suite.columns
        else [c for c in names if c != PARTITION_COLUMN]
    )
    row_filter = (
        partition_filter(partition_column or PARTITION_COLUMN, [partition_key])
        if partition_key is not None
        else None
    )
    empty = True
    for batch in iter_batches(
        table, row_filter=row_filter, columns=columns, batch_rows=batch_rows or get_settings().chunk_rows
    ):
        empty = False
        accumulator.add(to_pandas(table, pa.Table.from_batches([batch])))
        del batch
        release_free_memory()
    if empty:
        accumulator.add(to_pandas(table, table.schema().as_arrow().empty_table().select(columns)))
    return accumulator.result()


def score_metadata(
    frame: pd.DataFrame,
    suites: Sequence[Suite],
    context: dg.AssetExecutionContext | None = None,
    asset_key: dg.AssetKey | None = None,
    output_name: str | None = None,
) -> dict[str, Any]:
    """Materialization metadata: the quality score of this dataset version over all its suites.

    With the asset's `context` (and, in a multi-asset, the `asset_key` or the `output_name`), the results are
    kept for this run's suite checks of the asset, which then report them instead of validating the same data
    again.
    """
    return results_metadata([validate(frame, suite) for suite in suites], context, asset_key, output_name)


def results_metadata(
    results: Sequence[SuiteResult],
    context: dg.AssetExecutionContext | None = None,
    asset_key: dg.AssetKey | None = None,
    output_name: str | None = None,
) -> dict[str, Any]:
    """`score_metadata` for suites already validated (by a `SuiteAccumulator`, piece by piece)."""
    if context is not None and _run_id(context) is not None:
        key = asset_key or (context.asset_key_for_output(output_name) if output_name else context.asset_key)
        for result in results:
            _share(_shared_key(context, key, result.suite), result)
    return {
        "quality/score": dg.MetadataValue.float(weighted_score(r for s in results for r in s.rules)),
        "quality/rules_failed": dg.MetadataValue.json(
            [f"{s.suite.name}: {r.rule.description}" for s in results for r in s.failures]
        ),
    }
