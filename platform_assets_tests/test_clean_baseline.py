"""The clean benchmark's pandas baseline implements the same rules as `clean_reviews`, row for row.

The benchmark's figure (clean_reviews vs pandas) means something only if both produce the same
outputs; these tests hold that on the sample data and on crafted edge cases, and check that the comparison
the benchmark relies on does catch a difference. No timings are asserted.
"""

import pandas as pd
import pytest

from benchmarks.clean_baseline import differences, pandas_clean, run_clean_stage
from platform_assets.defs.reviews.assets import REVIEW_SCHEMA
from platform_assets.defs.reviews.cleaning import clean_reviews
from platform_assets.defs.reviews.sample_data import write_sample_reviews
from platform_assets.lib.landing import read_landing
from platform_assets_tests.test_cleaning import raw_frame

# Texts that exercise each cleaning step and the shortcut that skips texts needing none.
EDGE_TEXTS = [
    "Plain text with no dirt at all here.",
    "  Leading and trailing spaces around it  ",
    "\u00a0Non-breaking spaces lead and tail\u00a0",
    "Ideographic\u3000space and\u2003em space inside",
    "Tabs\tand\nnewlines\r\ninside the text",
    "&amp;lt;b&amp;gt; double-escaped entities stay readable",
    "Entity &#8217; numeric and &hellip; named ones",
    "Zero\u200bwidth\u200bspaces and a BOM\ufeff inside",
    "Control\x1ccharacter\x07separators inside",
    "Emoji with skin tone 👍🏽 and keycap 1️⃣ here",
    "<p>Tags <b>nested</b></p> with enough words",
    "Unclosed <tag and a > stray bracket here",
    "!!!!!!!!!!!!",
    "Ünïcödé letters and digits ٣ here",
    "<b>ok</b> 😀",
]


def assert_same_outputs(raw: pd.DataFrame) -> None:
    result = clean_reviews(raw)
    baseline = pandas_clean(raw)
    assert differences((result.cleaned.drop(columns="_content_key"), result.quarantine), baseline) == []
    pd.testing.assert_frame_equal(result.cleaned.drop(columns="_content_key"), baseline[0])
    pd.testing.assert_frame_equal(result.quarantine, baseline[1])


def test_baseline_matches_clean_reviews_on_the_sample_data(tmp_path) -> None:
    write_sample_reviews(tmp_path, rows=5000)
    raw, _ = read_landing(tmp_path, REVIEW_SCHEMA)
    assert_same_outputs(raw)


def test_baseline_matches_clean_reviews_on_edge_cases() -> None:
    rows = [{"review_id": f"E{i}", "user_id": f"U{i}", "text": text} for i, text in enumerate(EDGE_TEXTS)]
    rows += [
        # The same content by the same user on the same product, differently written, is a duplicate ...
        {"review_id": "D1", "user_id": "UD", "text": "MiXeD CaSe, and punctuation!!"},
        {"review_id": "D2", "user_id": "UD", "text": "  mixed case and PUNCTUATION  "},
        {"review_id": "D3", "user_id": "UD", "text": "?????????????"},
        {"review_id": "D4", "user_id": "UD", "text": "!!! ... !!!! ..."},
        # ... an invalid first delivery does not displace a later valid one ...
        {"review_id": "I1", "user_id": "UI", "rating": 9},
        {"review_id": "I1", "user_id": "UI", "text": "A valid second delivery of I1."},
        {"review_id": "I1", "user_id": "UI", "text": "A third delivery of I1, a duplicate."},
        # ... and an id duplicate is not also judged for content.
        {"review_id": "C1", "user_id": "UC"},
        {"review_id": "C1", "user_id": "UC"},
        {"review_id": "C2", "user_id": "UC"},
    ]
    raw = raw_frame(rows)
    assert_same_outputs(raw)
    # A frame that does not start at index 0 (a slice of a larger one) gives the same rows.
    assert_same_outputs(raw.iloc[3:].set_axis(range(100, 100 + len(raw) - 3)))
    # Every row rejected (one with a text cleaning altered), none rejected, no rows at all.
    assert_same_outputs(raw_frame([{"review_id": "x", "text": "<p>tiny</p>"}, {"review_id": None}]))
    assert_same_outputs(raw.iloc[:4])
    assert_same_outputs(raw.iloc[:0])


def test_the_comparison_catches_a_changed_text_or_reason(tmp_path) -> None:
    write_sample_reviews(tmp_path, rows=300)
    raw, _ = read_landing(tmp_path, REVIEW_SCHEMA)
    cleaned, quarantine = pandas_clean(raw)
    assert differences((cleaned, quarantine), (cleaned.copy(), quarantine.copy())) == []

    other_text = cleaned.copy()
    other_text.loc[5, "text"] = other_text.loc[5, "text"] + "!"
    assert differences((cleaned, quarantine), (other_text, quarantine)) != []

    other_reason = quarantine.copy()
    other_reason.loc[0, "reject_reason"] = "text_too_long"
    assert differences((cleaned, quarantine), (cleaned, other_reason)) != []

    moved = quarantine.drop(index=0)
    assert differences((cleaned, quarantine), (pd.concat([cleaned, cleaned.iloc[:1]]), moved)) != []


def test_run_clean_stage_reports_both_throughputs_and_fails_on_disagreement(tmp_path, monkeypatch) -> None:
    write_sample_reviews(tmp_path, rows=500)
    raw, _ = read_landing(tmp_path, REVIEW_SCHEMA)
    figures = run_clean_stage(raw)
    assert figures["rows"] == len(raw) == figures["cleaned_rows"] + figures["quarantined_rows"]
    assert figures["clean_rows_per_s"] > 0 and figures["pandas_rows_per_s"] > 0
    assert figures["clean_vs_pandas"] > 0

    def wrong(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        cleaned, quarantine = pandas_clean(frame)
        return cleaned.iloc[1:], quarantine

    monkeypatch.setattr("benchmarks.clean_baseline.pandas_clean", wrong)
    with pytest.raises(AssertionError, match="disagree"):
        run_clean_stage(raw)


def test_baseline_matches_clean_reviews_on_bad_review_ids() -> None:
    ids = [
        "R\x001",
        "R\x1f2",
        "R\t3",
        "R 4",
        "R\u200b5",
        "R6\n",
        "R\x7f7",
        "R\x858",
        "R\u30009",
        " \t ",
        "Ünï",
    ]
    ids += ["x" * 150 + "\x00"]  # quoted only in part in the detail
    raw = raw_frame([{"review_id": i, "user_id": f"U{n}"} for n, i in enumerate(ids)])
    assert set(clean_reviews(raw).quarantine["reject_reason"]) == {"invalid_review_id", "missing_review_id"}
    assert_same_outputs(raw)
