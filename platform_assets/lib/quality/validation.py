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
