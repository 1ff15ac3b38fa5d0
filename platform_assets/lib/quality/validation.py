"""Running a suite with Great Expectations 1.x (an ephemeral context, one validation per suite)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from platform_assets.lib.quality.rules import SEVERITY_WEIGHTS, Rule, Suite

SAMPLE_SIZE = 10
_names = itertools.count()
_lock = threading.Lock()


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule, with the evidence a person needs to act on a failure."""

    rule: Rule
    success: bool
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] = field(default_factory=list)
    observed_value: Any = None
    error: str | None = None

    def evidence(self) -> dict[str, Any]:
        """A JSON-friendly summary for check metadata."""
        evidence: dict[str, Any] = {"rule": self.rule.description, "severity": self.rule.severity}
        if self.rule.column:
            evidence["column"] = self.rule.column
        if self.unexpected_count is not None:
            evidence["unexpected_count"] = self.unexpected_count
            evidence["unexpected_percent"] = round(self.unexpected_percent or 0.0, 3)
            evidence["sample"] = [_jsonable(v) for v in self.sample[:SAMPLE_SIZE]]
        if self.observed_value is not None:
            evidence["observed_value"] = _jsonable(self.observed_value)
        if self.error:
            evidence["error"] = self.error
        return evidence


@dataclass(frozen=True)
class SuiteResult:
    """The outcome of a suite: passed when every rule passed; a score weighted by severity."""

    suite: Suite
    rules: list[RuleResult]
    rows: int

    @property
    def passed(self) -> bool:
        """Every rule passed."""
        return all(r.success for r in self.rules)

    @property
    def failures(self) -> list[RuleResult]:
        """The rules that failed."""
        return [r for r in self.rules if not r.success]

    @property
    def score(self) -> float:
        """Share of passed rules, weighted by severity, in [0, 1]."""
        return weighted_score(self.rules)


def weighted_score(results: Iterable[RuleResult]) -> float:
    """The quality score: the share of passed rules weighted by severity, in [0, 1] (1.0 without rules)."""
    weights = [(SEVERITY_WEIGHTS[r.rule.severity], r.success) for r in results]
    total = sum(weight for weight, _ in weights)
    passed = sum(weight for weight, success in weights if success)
    return round(passed / total, 4) if total else 1.0


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if pd.isna(value) if not isinstance(value, list | dict | tuple) else False:
        return None
    if hasattr(value, "item"):
        return value.item()
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _gx_friendly(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable integer and float columns as float64 (NA becomes NaN, a null to GX as well): on pandas'
    masked dtypes GX's range checks call a Python function per value, on float64 they are vectorised."""
    masked = [
        name
        for name, dtype in frame.dtypes.items()
        if pd.api.types.is_extension_array_dtype(dtype) and dtype.kind in "iuf"
    ]
    return frame.astype(dict.fromkeys(masked, "float64")) if masked else frame


@lru_cache(maxsize=1)
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every batch under 1 GB by hashing the whole frame (about 1 s per million reviews);
    # the fingerprint only labels a batch in stores that this ephemeral context throws away.
    pandas_execution_engine.HASH_THRESHOLD = 0

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate(frame: pd.DataFrame, suite: Suite) -> SuiteResult:
    """Validate `frame` against `suite` with one GX validation; unexpected values are sampled, not all kept."""
    import great_expectations as gx

    # Vectors are checked elsewhere; GX would only slow down on them.
    columns = list(suite.columns) or [c for c in frame.columns if c != "vector"]
    data = _gx_friendly(frame[[c for c in columns if c in frame.columns]])
    with _lock:  # the ephemeral context's stores are not thread-safe
        context = _context()
        name = f"{suite.name}_{next(_names)}"
        batch = (
            context.data_sources.add_pandas(name)
            .add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe(name)
        )
        gx_suite = context.suites.add(
            gx.ExpectationSuite(name=name, expectations=[r.to_gx() for r in suite.rules])
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
        )
        outcome = definition.run(batch_parameters={"dataframe": data}, result_format="SUMMARY")
        # GX does not keep the suite's order in its results: match them back by expectation id.
        ids = [expectation.id for expectation in gx_suite.expectations]
        by_id = {result.expectation_config.id: result for result in outcome.results}
        context.validation_definitions.delete(name)
        context.suites.delete(name)
        context.data_sources.delete(name)
    results = []
    for rule, expectation_id in zip(suite.rules, ids, strict=True):
        result = by_id[expectation_id]
        details = result.result or {}
        exception = (result.exception_info or {}).get("exception_message") if not result.success else None
        results.append(
            RuleResult(
                rule=rule,
                success=bool(result.success),
                unexpected_count=details.get("unexpected_count"),
                unexpected_percent=details.get("unexpected_percent"),
                sample=list(details.get("partial_unexpected_list") or []),
                observed_value=details.get("observed_value"),
                error=exception,
            )
        )
    return SuiteResult(suite=suite, rules=results, rows=len(frame))


# Rules whose share is taken over every row; the others' over the non-null values (as GX reports them).
_OVER_ALL_ROWS = {"ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeNull"}
_ROW_COUNT = "ExpectTableRowCountToBeBetween"
_UNIQUE = "ExpectColumnValuesToBeUnique"


class SuiteAccumulator:
    """One suite validated over a dataset that arrives in pieces (a delivery read in chunks), with the
    result `validate` gives for the whole: memory holds a piece, never the dataset.

    Per-row rules are validated per piece by GX and their counts added up (the `mostly` share over the
    totals); the row count is judged on the total; uniqueness is judged over all pieces from the key
    column's values alone (the only thing kept between pieces).
    """

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.rows = 0
        self._per_piece = [r for r in suite.rules if r.expectation not in (_ROW_COUNT, _UNIQUE)]
        self._piece_suite = (
            Suite(name=suite.name, rules=self._per_piece, columns=suite.columns) if self._per_piece else None
        )
        # Per rule of the piece suite: [unexpected, denominator, sample, error, column exists, counted,
        # passed on every piece].
        self._counts: list[list[Any]] = [[0, 0, [], None, True, False, True] for _ in self._per_piece]
        self._keys: dict[str, list[Any]] = {r.column: [] for r in suite.rules if r.expectation == _UNIQUE}
        self._empty: pd.DataFrame | None = None

    def add(self, frame: pd.DataFrame) -> None:
        """Validate one piece."""
        import pyarrow as pa

        if not len(frame):
            self._empty = frame.head(0) if self._empty is None else self._empty
            return
        self.rows += len(frame)
        for column, values in self._keys.items():
            if column in frame.columns:
                values.append(pa.array(frame[column], from_pandas=True).drop_null())
        if self._piece_suite is None:
            return
        result = validate(frame, self._piece_suite)
        for counts, outcome in zip(self._counts, result.rules, strict=True):
            column = outcome.rule.column
            counts[6] = counts[6] and outcome.success
            if outcome.error is not None and counts[3] is None:
                counts[3] = outcome.error
            if column is not None and column not in frame.columns:
                counts[4] = False
                continue
            if column is None or outcome.unexpected_count is None:
                continue
            counts[0] += outcome.unexpected_count
            counts[5] = True
            counts[1] += (
                len(frame)
                if outcome.rule.expectation in _OVER_ALL_ROWS
                else len(frame) - int(frame[column].isna().sum())
            )
            counts[2].extend(outcome.sample[: max(0, SAMPLE_SIZE - len(counts[2]))])

    def result(self) -> SuiteResult:
        """The suite's result over every piece added."""
        if self.rows == 0:
            return validate(self._empty if self._empty is not None else pd.DataFrame(), self.suite)
        piece_counts = iter(self._counts)
        results = []
        for rule in self.suite.rules:
            if rule.expectation == _ROW_COUNT:
                results.append(_row_count_result(rule, self.rows))
            elif rule.expectation == _UNIQUE:
                results.append(_unique_result(rule, self._keys[rule.column]))
            else:
                unexpected, denominator, sample, error, exists, counted, passed = next(piece_counts)
                results.append(
                    _merged_result(rule, unexpected, denominator, sample, error, exists)
                    if counted or error is not None or not exists
                    # A rule GX reports without counts (a column that must exist): it passed on every piece.
                    else RuleResult(rule=rule, success=passed)
                )
        return SuiteResult(suite=self.suite, rules=results, rows=self.rows)


def _merged_result(
    rule: Rule, unexpected: int, denominator: int, sample: list[Any], error: str | None, exists: bool
) -> RuleResult:
    if rule.column is None or not exists or error is not None:
        # A rule about the table (or a column some piece lacked) passed only if it passed on every piece.
        return RuleResult(rule=rule, success=exists and error is None, error=error)
    percent = 100.0 * unexpected / denominator if denominator else 0.0
    mostly = dict(rule.kwargs).get("mostly")
    success = unexpected == 0 if mostly is None else (1.0 - percent / 100.0) >= mostly
    return RuleResult(
        rule=rule, success=success, unexpected_count=unexpected, unexpected_percent=percent, sample=sample
    )


def _row_count_result(rule: Rule, rows: int) -> RuleResult:
    bounds = dict(rule.kwargs)
    low, high = bounds.get("min_value"), bounds.get("max_value")
    success = (low is None or rows >= low) and (high is None or rows <= high)
    return RuleResult(rule=rule, success=success, observed_value=rows)


def _unique_result(rule: Rule, pieces: list[Any]) -> RuleResult:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.chunked_array(pieces) if pieces else pa.chunked_array([], pa.null())
    if not len(values):
        return RuleResult(rule=rule, success=True, unexpected_count=0, unexpected_percent=0.0)
    counts = pc.value_counts(values)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    unexpected = int(pc.sum(repeated.field("counts")).as_py() or 0)
    sample = [
        value
        for value, count in zip(
            repeated.field("values").to_pylist(), repeated.field("counts").to_pylist(), strict=True
        )
        for _ in range(count)
    ][:SAMPLE_SIZE]
    return RuleResult(
        rule=rule,
        success=unexpected == 0,
        unexpected_count=unexpected,
        unexpected_percent=100.0 * unexpected / len(values),
        sample=sample,
    )
