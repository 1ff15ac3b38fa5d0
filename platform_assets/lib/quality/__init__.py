"""Quality gates: expectation suites (Great Expectations 1.x) as Dagster asset checks, and quality scores.

Suites are declared in code with the rule builders in `rules` (usually derived from a dataset's contract,
`platform_assets.lib.contract`); `suite_check` turns a suite into one asset check (one GX validation),
`score_metadata` puts the suites' quality score on a materialization, `cleaning_outputs` and
`row_accounting_check` serve the cleaned/quarantine split of a cleaning step, and `pandera_dagster_type` checks
a frame's structure when it is written.
"""

from platform_assets.lib.quality.checks import (
    check_result_from,
    results_metadata,
    score_metadata,
    suite_check,
)
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
from platform_assets.lib.quality.schemas import pandera_dagster_type
from platform_assets.lib.quality.split import cleaning_outputs, reason_counts, row_accounting_check
from platform_assets.lib.quality.validation import (
    RuleResult,
    SuiteAccumulator,
    SuiteResult,
    validate,
    weighted_score,
)

__all__ = [
    "Rule",
    "RuleResult",
    "Suite",
    "SuiteAccumulator",
    "SuiteResult",
    "between",
    "check_result_from",
    "cleaning_outputs",
    "column_exists",
    "in_set",
    "length_between",
    "matches_regex",
    "not_matches_regex",
    "not_null",
    "null_ratio_above",
    "null_ratio_below",
    "pandera_dagster_type",
    "reason_counts",
    "row_accounting_check",
    "results_metadata",
    "row_count_between",
    "score_metadata",
    "suite_check",
    "unique",
    "validate",
    "weighted_score",
]
