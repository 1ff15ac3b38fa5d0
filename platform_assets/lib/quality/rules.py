"""Rules a data team reads as a contract, declared without importing Great Expectations.

Each rule becomes one GX expectation when a suite is validated; until then it is a small frozen value, so
defining suites costs nothing at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "error", "warning"]
# How much a rule weighs in the quality score (share of passed rules, weighted by severity).
SEVERITY_WEIGHTS: dict[str, float] = {"critical": 3.0, "error": 2.0, "warning": 1.0}


@dataclass(frozen=True)
class Rule:
    """One expectation: a GX expectation type, its arguments, and how severe a failure is."""

    expectation: str
    kwargs: tuple[tuple[str, Any], ...]
    description: str
    severity: Severity = "error"

    @property
    def column(self) -> str | None:
        """The column the rule is about, if any."""
        return dict(self.kwargs).get("column")

    def to_gx(self) -> Any:
        """The Great Expectations expectation object for this rule."""
        import great_expectations.expectations as gxe

        return getattr(gxe, self.expectation)(**dict(self.kwargs))


@dataclass(frozen=True)
class Suite:
    """An expectation suite for one asset: one asset check, blocking or not."""

    name: str
    rules: Sequence[Rule]
    blocking: bool = False
    description: str = ""
    columns: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError(f"suite {self.name!r} has no rules")


def _rule(expectation: str, description: str, severity: Severity, **kwargs: Any) -> Rule:
    frozen = tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items() if v is not None)
    )
    return Rule(expectation=expectation, kwargs=frozen, description=description, severity=severity)


def row_count_between(
    min_value: int | None = None, max_value: int | None = None, severity: Severity = "error"
) -> Rule:
    """The table has between `min_value` and `max_value` rows (either bound may be open)."""
    return _rule(
        "ExpectTableRowCountToBeBetween",
        f"row count in [{min_value if min_value is not None else '-inf'}, {max_value if max_value is not None else 'inf'}]",
        severity,
        min_value=min_value,
        max_value=max_value,
    )


def column_exists(column: str, severity: Severity = "critical") -> Rule:
    """The column is present."""
    return _rule("ExpectColumnToExist", f"{column} exists", severity, column=column)


def not_null(column: str, severity: Severity = "error") -> Rule:
    """No value of the column is null."""
    return _rule("ExpectColumnValuesToNotBeNull", f"{column} is never null", severity, column=column)


def null_ratio_below(column: str, max_ratio: float, severity: Severity = "warning") -> Rule:
    """At most `max_ratio` of the column's values are null."""
    return _rule(
        "ExpectColumnValuesToNotBeNull",
        f"{column} null ratio <= {max_ratio:.0%}",
        severity,
        column=column,
        mostly=round(1.0 - max_ratio, 6),
    )


def _share(mostly: float) -> str:
    return "" if mostly >= 1.0 else f" for >= {mostly:.0%} of rows"


def between(
    column: str,
    min_value: float | None = None,
    max_value: float | None = None,
    severity: Severity = "error",
    mostly: float = 1.0,
) -> Rule:
    """Non-null values of the column lie in [min_value, max_value] (all of them, or a `mostly` share)."""
    return _rule(
        "ExpectColumnValuesToBeBetween",
        f"{column} in [{min_value}, {max_value}]{_share(mostly)}",
        severity,
        column=column,
        min_value=min_value,
        max_value=max_value,
        mostly=mostly if mostly < 1.0 else None,
    )


def length_between(
    column: str, min_value: int | None = None, max_value: int | None = None, severity: Severity = "error"
) -> Rule:
    """Every non-null string in the column has a length in [min_value, max_value]."""
    return _rule(
        "ExpectColumnValueLengthsToBeBetween",
        f"{column} length in [{min_value}, {max_value}]",
        severity,
        column=column,
        min_value=min_value,
        max_value=max_value,
    )


def null_ratio_above(column: str, min_ratio: float, severity: Severity = "warning") -> Rule:
    """At least `min_ratio` of the column's values are null (for error columns that should mostly be empty)."""
    return _rule(
        "ExpectColumnValuesToBeNull",
        f"{column} set on <= {1 - min_ratio:.0%} of rows",
        severity,
        column=column,
        mostly=round(min_ratio, 6),
    )


def in_set(column: str, values: Sequence[Any], severity: Severity = "error") -> Rule:
    """Every non-null value of the column is one of `values`."""
    return _rule(
        "ExpectColumnValuesToBeInSet",
        f"{column} in {sorted(values)}",
        severity,
        column=column,
        value_set=list(values),
    )


def unique(column: str, severity: Severity = "critical") -> Rule:
    """No two rows share a value of the column."""
    return _rule("ExpectColumnValuesToBeUnique", f"{column} is unique", severity, column=column)


def matches_regex(column: str, regex: str, severity: Severity = "error") -> Rule:
    """Every non-null value of the column matches `regex`."""
    return _rule(
        "ExpectColumnValuesToMatchRegex", f"{column} matches /{regex}/", severity, column=column, regex=regex
    )


def not_matches_regex(column: str, regex: str, severity: Severity = "error") -> Rule:
    """No non-null value of the column matches `regex`."""
    return _rule(
        "ExpectColumnValuesToNotMatchRegex",
        f"{column} never matches /{regex}/",
        severity,
        column=column,
        regex=regex,
    )
