"""Quality gates: expectation suites (Great Expectations 1.x) as Dagster asset checks, and quality scores.

Suites are declared in code, per asset, with the rule builders in `rules`; `suite_check` turns a suite into
one asset check (one GX validation), `score_metadata` puts the suite's quality score on a materialization.
"""

from platform_assets.lib.quality.checks import row_accounting_check, score_metadata, suite_check
from platform_assets.lib.quality.rules import (
    Rule,
    Suite,
    between,
    column_exists,
    in_set,
    length_between,
    matches_regex,
    not_matches_regex,
    not_null,
    null_ratio_above,
    null_ratio_below,
    row_count_between,
    unique,
)
from platform_assets.lib.quality.validation import RuleResult, SuiteResult, validate

__all__ = [
    "Rule",
    "RuleResult",
    "Suite",
    "SuiteResult",
    "between",
    "column_exists",
    "in_set",
    "length_between",
    "matches_regex",
    "not_matches_regex",
    "not_null",
    "null_ratio_above",
    "null_ratio_below",
    "row_accounting_check",
    "row_count_between",
    "score_metadata",
    "suite_check",
    "unique",
    "validate",
]
