"""The review cleaning rules, on crafted rows: one reason per rejected row, nothing lost, ids unique."""

import pandas as pd
import pytest

from platform_assets.defs.reviews.assets import REVIEW_SCHEMA
from platform_assets.defs.reviews.cleaning import clean_reviews
from platform_assets.defs.reviews.contract import REJECT_REASONS
from platform_assets.defs.reviews.sample_data import generate_reviews, write_sample_reviews
from platform_assets.lib.landing import read_landing

GOOD = "The battery lasts for days on one charge."


def raw_frame(rows: list[dict]) -> pd.DataFrame:
    defaults = {
        "review_id": None,
        "product_id": "P1",
        "user_id": "U1",
        "rating": 4,
        "text": GOOD,
        "created_at": pd.Timestamp("2026-01-01", tz="UTC"),
        "_source_file": "f.csv",
        "_ingest_error": None,
    }
    records = [{**defaults, **row, "_source_line": i + 2} for i, row in enumerate(rows)]
    frame = pd.DataFrame(records)
    for name in ("review_id", "product_id", "user_id", "text", "_source_file", "_ingest_error"):
        frame[name] = frame[name].astype("string")
    frame["rating"] = frame["rating"].astype("Int64")
    return frame


def reasons_by_id(quarantine: pd.DataFrame) -> dict[str, str]:
    return dict(zip(quarantine["review_id"].fillna("<none>"), quarantine["reject_reason"], strict=True))


def test_each_rule_quarantines_with_its_reason() -> None:
    raw = raw_frame(
        [
            {"review_id": "ok1"},
            {
                "review_id": "type",
                "rating": None,
                "_ingest_error": "rating: 'five' is not an integer (f.csv line 3)",
            },
            {"review_id": None},
            {"review_id": "noproduct", "product_id": None},
            {"review_id": "nouser", "user_id": "  "},
            {"review_id": "notime", "created_at": None},
            {"review_id": "null", "text": None},
            {"review_id": "blank", "text": " \t\n "},
            {"review_id": "norating", "rating": None},
            {"review_id": "high", "rating": 6},
            {"review_id": "low", "rating": 0},
            {"review_id": "short", "text": "<b>ok!</b> 👍"},
            {"review_id": "long", "text": "word " * 1200},
            {"review_id": "ok1", "text": "A second text under the same id, still valid."},
            {"review_id": "ok2", "user_id": "U1", "text": "  THE BATTERY lasts for DAYS on one charge!!  "},
        ]
    )
    result = clean_reviews(raw)
    assert reasons_by_id(result.quarantine) == {
        "type": "invalid_type",
        "<none>": "missing_review_id",
        "noproduct": "missing_product_id",
        "nouser": "missing_user_id",
        "notime": "missing_created_at",
        "null": "empty_text",
        "blank": "empty_text",
        "norating": "missing_rating",
        "high": "rating_out_of_range",
        "low": "rating_out_of_range",
        "short": "text_too_short",
        "long": "text_too_long",
        "ok1": "duplicate_review_id",
        "ok2": "duplicate_content",
    }
    assert result.cleaned["review_id"].tolist() == ["ok1"]
    assert set(result.quarantine["reject_reason"]) <= set(REJECT_REASONS)
    details = dict(
        zip(result.quarantine["review_id"].fillna("<none>"), result.quarantine["reject_detail"], strict=True)
    )
    assert details["type"] == "rating: 'five' is not an integer (f.csv line 3)"
    assert details["high"] == "rating 6 outside 1..5"
    assert details["ok1"] == "review_id ok1 first delivered in f.csv line 2"
    assert details["ok2"] == "same user, product and text as review ok1"


def test_quarantine_keeps_original_values() -> None:
    raw = raw_frame([{"review_id": "x", "text": "<p>tiny</p>", "rating": 9}])
    quarantined = clean_reviews(raw).quarantine.iloc[0]
    assert quarantined["text"] == "<p>tiny</p>"
    assert quarantined["rating"] == 9
    assert quarantined["_source_line"] == 2


def test_text_is_stripped_of_html_entities_noise_and_extra_whitespace() -> None:
    raw = raw_frame(
        [
            {"review_id": "a", "text": "<div class='r'>Great&nbsp;sound &amp; deep   bass</div><br/>"},
            {"review_id": "b", "text": "  Love\u200b it 😀🔥\tso \n much, five stars  "},
        ]
    )
    cleaned = clean_reviews(raw).cleaned.set_index("review_id")["text"]
    assert cleaned["a"] == "Great sound & deep bass"
    assert cleaned["b"] == "Love it so much, five stars"


def test_an_invalid_copy_never_displaces_a_valid_original() -> None:
    raw = raw_frame([{"review_id": "r1", "rating": 0}, {"review_id": "r1", "rating": 5}])
    result = clean_reviews(raw)
    assert result.cleaned["rating"].tolist() == [5]
    assert reasons_by_id(result.quarantine) == {"r1": "rating_out_of_range"}


def test_same_text_from_another_user_or_product_is_not_a_duplicate() -> None:
    raw = raw_frame(
        [{"review_id": "a"}, {"review_id": "b", "user_id": "U2"}, {"review_id": "c", "product_id": "P2"}]
    )
    assert clean_reviews(raw).cleaned["review_id"].tolist() == ["a", "b", "c"]


@pytest.mark.parametrize("rows", [0, 1, 700])
def test_sample_data_row_accounting_and_unique_ids(tmp_path, rows: int) -> None:
    if rows == 0:
        (tmp_path / "header_only.csv").write_text(",".join(REVIEW_SCHEMA) + "\n")
    else:
        write_sample_reviews(tmp_path, rows=rows)
    raw, _ = read_landing(tmp_path, REVIEW_SCHEMA)
    assert len(raw) == (0 if rows == 0 else rows + 2 * max(1, rows // 100))
    result = clean_reviews(raw)
    assert len(result.cleaned) + len(result.quarantine) == len(raw)
    assert result.cleaned["review_id"].is_unique
    assert result.quarantine["reject_reason"].notna().all()
    if rows == 700:
        # The generator plants every kind of dirt; each must be caught.
        assert {
            "empty_text",
            "text_too_short",
            "rating_out_of_range",
            "duplicate_review_id",
            "duplicate_content",
        } <= set(result.reasons())


def test_sample_generator_is_deterministic() -> None:
    pd.testing.assert_frame_equal(generate_reviews(300, seed=7), generate_reviews(300, seed=7))
    assert not generate_reviews(300, seed=7).equals(generate_reviews(300, seed=8))


def test_a_review_id_with_control_format_or_whitespace_characters_is_quarantined() -> None:
    """A NUL in a review_id used to pass cleaning into LanceDB as a different, invisible key."""
    bad_ids = ["R\x001", "R\x1f2", "R\t3", "R 4", "R\u200b5", "R6\n", "R\x7f7"]
    raw = raw_frame([{"review_id": "Ünï-cödé_8"}, *({"review_id": i, "user_id": i} for i in bad_ids)])
    result = clean_reviews(raw)
    assert result.cleaned["review_id"].tolist() == ["Ünï-cödé_8"]
    assert reasons_by_id(result.quarantine) == dict.fromkeys(bad_ids, "invalid_review_id")
    assert result.quarantine["reject_detail"][0] == (
        "review_id 'R\\x001' contains whitespace, a control or a format character"
    )
    assert result.quarantine["review_id"][0] == "R\x001"  # the original value, kept
    # A review_id that is only whitespace is still a missing one.
    blank = clean_reviews(raw_frame([{"review_id": " \t "}])).quarantine
    assert blank["reject_reason"].tolist() == ["missing_review_id"]


@pytest.mark.parametrize("rows", [600, 2000])
def test_delivery_by_delivery_gives_the_same_split_as_everything_at_once(tmp_path, rows: int) -> None:
    """Earlier deliveries' keys (review_id, _content_key) stand in for their rows: cleaning the files one by
    one, each against the keys cleaned before it, quarantines exactly the rows (and reasons) that cleaning
    them all at once does, duplicates across files included."""
    import pyarrow as pa

    write_sample_reviews(tmp_path, rows=rows)
    everything, report = read_landing(tmp_path, REVIEW_SCHEMA)
    at_once = clean_reviews(everything)
    assert len(report.files) > 1

    cleaned_parts, quarantine_parts, history = [], [], None
    for name in report.files:
        raw = everything[everything["_source_file"] == name].reset_index(drop=True)
        result = clean_reviews(raw, history)
        cleaned_parts.append(result.cleaned)
        quarantine_parts.append(result.quarantine)
        keys = pd.concat(cleaned_parts)[["review_id", "_content_key"]]
        history = pa.Table.from_pandas(keys, preserve_index=False)
    one_by_one = pd.concat(cleaned_parts, ignore_index=True)
    rejected = pd.concat(quarantine_parts, ignore_index=True)

    assert one_by_one["review_id"].tolist() == at_once.cleaned["review_id"].tolist()
    pd.testing.assert_series_equal(one_by_one["_content_key"], at_once.cleaned["_content_key"])

    def reasons(frame: pd.DataFrame) -> dict[tuple[str, int], str]:
        return dict(
            zip(
                zip(frame["_source_file"], frame["_source_line"], strict=True),
                frame["reject_reason"],
                strict=True,
            )
        )

    assert reasons(rejected) == reasons(at_once.quarantine)
    # The sample repeats ids and texts across files: those are found through the history's keys.
    across = rejected["reject_detail"].str.contains("earlier delivery")
    assert across.sum() > 0


@pytest.mark.parametrize("chunk_rows", [97, 500])
def test_a_delivery_cleaned_in_chunks_gives_the_same_outputs_as_at_once(tmp_path, chunk_rows: int) -> None:
    """Chunks of one delivery are checked against the earlier chunks' keys alone, and the two outputs are
    those of cleaning the whole delivery at once: same rows, reasons and details (first file and line of a
    repeated review_id, first review of a repeated content), same content keys."""
    from platform_assets.defs.reviews.cleaning import clean_delivery

    write_sample_reviews(tmp_path, rows=2000)
    everything, _ = read_landing(tmp_path, REVIEW_SCHEMA)
    # One delivery holding every sample row, so the repeats between files are repeats within it.
    everything["_source_file"] = pd.array(["all.csv"] * len(everything), dtype="string")
    at_once = clean_reviews(everything)
    chunks = [everything.iloc[start : start + chunk_rows] for start in range(0, len(everything), chunk_rows)]
    results = list(clean_delivery(chunk.reset_index(drop=True) for chunk in chunks))
    cleaned = pd.concat([r.cleaned for r in results], ignore_index=True)
    quarantine = pd.concat([r.quarantine for r in results], ignore_index=True)

    pd.testing.assert_frame_equal(cleaned, at_once.cleaned)
    pd.testing.assert_frame_equal(quarantine, at_once.quarantine)
    # The sample has repeats across chunks of both kinds, all named within the delivery.
    assert quarantine["reject_reason"].value_counts()[["duplicate_review_id", "duplicate_content"]].min() > 5
    assert not quarantine["reject_detail"].str.contains("earlier delivery").any()
    assert all(not r.history_id_duplicates and not r.history_content_duplicates for r in results)
