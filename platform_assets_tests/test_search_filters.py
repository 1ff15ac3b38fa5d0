"""The `where` filter of semantic search is parsed whole: what is left over or not allowed is an error that
names the character, and the filters users write run unchanged on a real LanceDB table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from platform_assets.cli import main
from platform_assets.defs.reviews.contract import LANCEDB_TABLE
from platform_assets.defs.reviews.filters import OTHER, TIMESTAMP, FilterError, check_filter
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.embedding import EMBEDDING_DIM
from platform_assets.lib.vector_store import VECTOR_COLUMN, connect_lancedb
from platform_assets.search import SearchError, search_vectors

COLUMNS = {
    "review_id": OTHER,
    "product_id": OTHER,
    "rating": OTHER,
    "text": OTHER,
    "created_at": TIMESTAMP,
}


@pytest.mark.parametrize(
    ("where", "sql"),
    [
        ("rating <= 2", '"rating" <= 2'),
        ("rating >= 3 AND product_id = 'P00058'", '"rating" >= 3 AND "product_id" = \'P00058\''),
        ("created_at > '2026-01-01'", "\"created_at\" > CAST('2026-01-01' AS TIMESTAMP)"),
        ("created_at > timestamp '2026-01-01'", "\"created_at\" > CAST('2026-01-01' AS TIMESTAMP)"),
        ("rating IN (1, 2)", '"rating" IN (1, 2)'),
        ("rating NOT IN (1,2)", 'NOT "rating" IN (1, 2)'),
        ("text IS NULL", '"text" IS NULL'),
        ("text IS NOT NULL", 'NOT "text" IS NULL'),
        ("NOT rating = 1", 'NOT "rating" = 1'),
        ("NOT (rating = 1 OR rating BETWEEN 3 AND 4)", 'NOT ("rating" = 1 OR "rating" BETWEEN 3 AND 4)'),
        ("product_id LIKE 'P%'", "\"product_id\" LIKE 'P%'"),
        ("lower(product_id) = 'p1'", "LOWER(\"product_id\") = 'p1'"),
        ("RATING = 5", '"rating" = 5'),
        ("rating = 5 -- 5 stars", None),
        ("text = 'it''s'", "\"text\" = 'it''s'"),
    ],
)
def test_good_filters_become_the_sql_lancedb_runs(where: str, sql: str | None) -> None:
    if sql is None:  # comments are refused, not silently dropped
        with pytest.raises(FilterError, match="comment"):
            check_filter(where, COLUMNS)
        return
    assert check_filter(where, COLUMNS) == sql


@pytest.mark.parametrize(
    ("where", "position", "problem"),
    [
        # The two filters that ran as another filter before.
        ("rating = 5) AND (rating = 1", 10, "unexpected ')'"),
        ("rating <= 2; DROP TABLE reviews", 11, "';'"),
        ("rating <= 2;", 11, "';'"),
        ("rating <= 2 garbage", 12, "unexpected 'garbage'"),
        ("DROP TABLE reviews", 0, "unexpected 'DROP'"),
        ("rating IN (SELECT 1)", 11, "query (SELECT)"),
        ("rating = 1 UNION SELECT 2", 17, "query (SELECT)"),
        ("sqrt(rating) > 1", 0, "function SQRT is not allowed"),
        ("rating = ?", 9, "query parameter"),
        ("rating = 1 /* x */", 11, "comment"),
        ("product_id = 'P1", 13, "never closed"),
        ("(rating = 1", 10, "ends too early"),
        ("rating", 0, "not a condition"),
        ("rating = 1 OR product_id", 14, "'product_id' is not a condition"),
        ("rating = 1 AND nosuch = 2", 15, "unknown column 'nosuch'"),
        ("vector = 1", 0, "unknown column 'vector'"),
        ('"RATING" = 1', 0, "unknown column 'RATING'"),
        ("t.rating = 1", 0, "without a table"),
        ("rating IN ()", 0, "at least one value"),
    ],
)
def test_bad_filters_name_the_problem_and_its_position(where: str, position: int, problem: str) -> None:
    with pytest.raises(FilterError) as caught:
        check_filter(where, COLUMNS)
    assert caught.value.position == position, str(caught.value)
    assert problem in caught.value.problem
    assert f"at character {position + 1}" in str(caught.value)


def test_an_empty_filter_is_refused() -> None:
    with pytest.raises(FilterError, match="empty"):
        check_filter("   ", COLUMNS)


def test_deep_nesting_is_a_clear_error_and_long_chains_pass() -> None:
    with pytest.raises(FilterError, match="nested too deeply"):
        check_filter("(" * 500 + "rating = 1" + ")" * 500, COLUMNS)
    assert check_filter(" OR ".join(["rating = 1"] * 2000), COLUMNS).count("OR") == 1999


ROWS = [
    # review_id, product_id, rating, text, created_at
    ("r1", "P1", 1, "bad", dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),
    ("r2", "P1", 2, "poor", dt.datetime(2025, 12, 31, tzinfo=dt.UTC)),
    ("r3", "P00058", 3, "fine", dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
    ("r4", "P00058", 4, "it's good", dt.datetime(2026, 2, 1, tzinfo=dt.UTC)),
    ("r5", "P2", 5, None, dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
    ("r6", "p2", 5, "great", dt.datetime(2026, 4, 1, tzinfo=dt.UTC)),
]


@pytest.fixture
def table(platform_env: PlatformSettings) -> Any:
    """A small vector table named as the real one, with random unit vectors, in the test's LanceDB."""
    vectors = np.random.default_rng(0).normal(size=(len(ROWS), EMBEDDING_DIM)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    review_id, product_id, rating, text, created_at = zip(*ROWS, strict=True)
    data = pa.table(
        {
            "review_id": list(review_id),
            "product_id": list(product_id),
            "rating": pa.array(rating, pa.int64()),
            "text": list(text),
            "created_at": pa.array(created_at, pa.timestamp("ns", tz="UTC")),
            VECTOR_COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), EMBEDDING_DIM),
        }
    )
    return connect_lancedb(platform_env.lancedb_uri).create_table(LANCEDB_TABLE, data)


Row = tuple[str, str, int, str | None, dt.datetime]
JAN_1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
GOOD_FILTERS: list[tuple[str, Callable[[Row], bool]]] = [
    ("rating <= 2", lambda r: r[2] <= 2),
    ("rating >= 3 AND product_id = 'P00058'", lambda r: r[2] >= 3 and r[1] == "P00058"),
    ("created_at > '2026-01-01'", lambda r: r[4] > JAN_1),
    ("created_at <= timestamp '2026-01-01'", lambda r: r[4] <= JAN_1),
    ("rating IN (1, 5)", lambda r: r[2] in (1, 5)),
    ("rating NOT IN (1, 5)", lambda r: r[2] not in (1, 5)),
    ("text IS NULL", lambda r: r[3] is None),
    ("text IS NOT NULL AND NOT rating = 1", lambda r: r[3] is not None and r[2] != 1),
    ("NOT (rating = 1 OR rating BETWEEN 3 AND 4)", lambda r: not (r[2] == 1 or 3 <= r[2] <= 4)),
    ("lower(product_id) = 'p2'", lambda r: r[1].lower() == "p2"),
    ("text LIKE '%''s%'", lambda r: r[3] is not None and "'s" in r[3]),
    ("RATING + 1 > 5", lambda r: r[2] + 1 > 5),
]


@pytest.mark.parametrize(("where", "expected"), GOOD_FILTERS, ids=[w for w, _ in GOOD_FILTERS])
def test_good_filters_select_the_right_rows(table: Any, where: str, expected: Callable[[Row], bool]) -> None:
    vector = np.ones(EMBEDDING_DIM, dtype="float32") / np.sqrt(EMBEDDING_DIM)
    rows = search_vectors(table, vector, k=len(ROWS), where=where, columns=["review_id"], exact=True)
    assert {row["review_id"] for row in rows} == {r[0] for r in ROWS if expected(r)}


def test_bad_filters_fail_the_search_and_leave_the_table(table: Any) -> None:
    vector = np.ones(EMBEDDING_DIM, dtype="float32")
    for where in ("rating = 5) AND (rating = 1", "rating <= 2; DROP TABLE reviews"):
        with pytest.raises(SearchError, match="invalid filter") as caught:
            search_vectors(table, vector, where=where)
        assert isinstance(caught.value.__cause__, FilterError)
    assert table.count_rows() == len(ROWS)
    # What only LanceDB can tell (a value of the wrong type) is still a SearchError.
    with pytest.raises(SearchError, match="search failed"):
        search_vectors(table, vector, where="rating = 'five'")


@pytest.mark.parametrize(
    ("where", "caret_at"),
    [("rating = 5) AND (rating = 1", 10), ("rating <= 2; DROP TABLE reviews", 11)],
)
def test_cli_refuses_a_malformed_filter(table: Any, where: str, caret_at: int) -> None:
    # The filter is checked before the model loads: this never embeds the query.
    result = CliRunner().invoke(main, ["search", "battery", "--where", where])
    assert result.exit_code == 1, result.output
    assert f"at character {caret_at + 1}" in result.output
    lines = result.output.splitlines()
    assert lines[-2] == f"  {where}"
    assert lines[-1] == "  " + " " * caret_at + "^"
    assert table.count_rows() == len(ROWS)
