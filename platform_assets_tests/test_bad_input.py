"""The bad-input suite: every kind of broken delivery either lands in quarantine with a precise reason or
fails the run with an error naming the file, line and column; no row is lost and no good output is overwritten.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from platform_assets.definitions import defs
from platform_assets.defs.reviews.assets import CLEANED, QUARANTINE, RAW
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.resources import shared_resources

HEADER = "review_id,product_id,user_id,rating,text,created_at"
GOOD_ROWS = [
    f"G{i},P1,U{i},4,This is a perfectly fine review number {i},2026-01-0{i % 9 + 1}T10:00:00Z"
    for i in range(12)
]


def run_raw_and_clean() -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(RAW, CLEANED, QUARANTINE),
        # Fresh resources: the loaded definitions' point where the environment pointed at import time.
        resources={**defs.resources, **shared_resources()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def deliver(settings: PlatformSettings, name: str, content: str | bytes) -> Path:
    landing = settings.landing_dir_for("reviews")
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def lake(settings: PlatformSettings, *parts: str) -> pd.DataFrame:
    return pd.read_parquet(Path(settings.lake_uri, *parts[:-1], parts[-1] + ".parquet"))


@pytest.fixture
def good_delivery(platform_env: PlatformSettings) -> PlatformSettings:
    deliver(platform_env, "a_good.csv", HEADER + "\n" + "\n".join(GOOD_ROWS) + "\n")
    return platform_env


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "b_quotes.csv",
            HEADER + '\nB1,P1,U1,4,"never closed,2026-01-01\n',
            "b_quotes.csv: line 2: malformed CSV",
        ),
        (
            "b_columns.csv",
            HEADER + "\nB1,P1,U1,4,fine text here,2026-01-01,surplus\n",
            "b_columns.csv: line 2: expected 6 fields",
        ),
        (
            "b_latin1.csv",
            (HEADER + "\nB1,P1,U1,4,na\xefve caf\xe9 review,2026-01-01\n").encode("latin-1"),
            "b_latin1.csv: line 2, byte column 14: not valid UTF-8",
        ),
        (
            "b_missing.csv",
            "review_id,product_id,user_id,text,created_at\nB1,P1,U1,fine text here,2026-01-01\n",
            "b_missing.csv: missing required column(s) ['rating']",
        ),
        (
            "b_json.jsonl",
            '{"review_id": "B1", "text": "ok"}\n{"review_id": "B2", \n',
            "b_json.jsonl: line 2, column",
        ),
    ],
)
def test_unparseable_delivery_fails_naming_file_and_line_and_keeps_good_outputs(
    good_delivery: PlatformSettings, name: str, content: str | bytes, expected: str
) -> None:
    assert run_raw_and_clean().success
    cleaned_before = lake(good_delivery, "cleaned", "reviews")
    bad = deliver(good_delivery, name, content)
    result = run_raw_and_clean()
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "raw__reviews"
    message = failure.step_failure_data.user_failure_data.description
    assert str(bad.parent) in message and expected in message
    pd.testing.assert_frame_equal(lake(good_delivery, "cleaned", "reviews"), cleaned_before)
    assert len(lake(good_delivery, "raw", "reviews")) == len(GOOD_ROWS)


def quarantine_of(settings: PlatformSettings) -> pd.DataFrame:
    return lake(settings, "quarantine", "reviews").set_index("review_id")


def assert_accounted(settings: PlatformSettings, result: dg.ExecuteInProcessResult) -> None:
    assert result.success
    raw, cleaned, quarantine = (
        lake(settings, layer, "reviews") for layer in ("raw", "cleaned", "quarantine")
    )
    assert len(raw) == len(cleaned) + len(quarantine)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["row_accounting"] and checks["cleaned_contract"]


def test_wrong_types_land_in_quarantine_naming_column_value_and_line(good_delivery: PlatformSettings) -> None:
    deliver(
        good_delivery,
        "c_types.csv",
        HEADER + "\nT1,P1,U1,four,A review with a word for a rating,2026-01-01\n"
        "T2,P1,U1,3,A review with a broken timestamp,31/02/2026 25:00\n",
    )
    result = run_raw_and_clean()
    assert_accounted(good_delivery, result)
    quarantine = quarantine_of(good_delivery)
    assert quarantine.loc["T1", "reject_reason"] == "invalid_type"
    assert quarantine.loc["T1", "reject_detail"] == "rating: 'four' is not an integer (c_types.csv line 2)"
    assert quarantine.loc["T2", "reject_detail"] == (
        "created_at: '31/02/2026 25:00' is not an ISO-8601 timestamp (c_types.csv line 3)"
    )
    assert quarantine.loc["T1", "text"] == "A review with a word for a rating"


def test_extra_columns_are_kept_through_every_layer(good_delivery: PlatformSettings) -> None:
    deliver(
        good_delivery,
        "d_extra.csv",
        HEADER + ",campaign\nE1,P1,U1,5,An extra column came along with this one,2026-01-01,spring\n"
        "E2,P1,U2,9,An extra column and a bad rating here,2026-01-01,spring\n",
    )
    assert_accounted(good_delivery, run_raw_and_clean())
    cleaned = lake(good_delivery, "cleaned", "reviews").set_index("review_id")
    assert cleaned.loc["E1", "campaign"] == "spring" and pd.isna(cleaned.loc["G1", "campaign"])
    assert quarantine_of(good_delivery).loc["E2", "campaign"] == "spring"


def test_empty_and_header_only_files_are_reported_not_fatal(good_delivery: PlatformSettings) -> None:
    deliver(good_delivery, "e_empty.csv", b"")
    deliver(good_delivery, "e_header.csv", HEADER + "\n")
    result = run_raw_and_clean()
    assert_accounted(good_delivery, result)
    (event,) = [e for e in result.get_asset_materialization_events() if e.materialization.asset_key == RAW]
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["empty_files"] == ["e_empty.csv"]
    assert metadata["files"] == {"a_good.csv": len(GOOD_ROWS), "e_empty.csv": 0, "e_header.csv": 0}


def test_huge_text_is_quarantined_whole(good_delivery: PlatformSettings) -> None:
    huge = "word " * 100_000
    deliver(
        good_delivery,
        "f_huge.jsonl",
        pd.DataFrame(
            [
                {
                    "review_id": "H1",
                    "product_id": "P1",
                    "user_id": "U1",
                    "rating": 4,
                    "text": huge,
                    "created_at": "2026-01-01",
                }
            ]
        ).to_json(orient="records", lines=True),
    )
    assert_accounted(good_delivery, run_raw_and_clean())
    quarantined = quarantine_of(good_delivery).loc["H1"]
    assert quarantined["reject_reason"] == "text_too_long"
    assert quarantined["text"] == huge


def test_a_file_delivered_twice_duplicates_nothing(good_delivery: PlatformSettings) -> None:
    deliver(good_delivery, "z_again.csv", HEADER + "\n" + "\n".join(GOOD_ROWS) + "\n")
    assert_accounted(good_delivery, run_raw_and_clean())
    cleaned = lake(good_delivery, "cleaned", "reviews")
    assert sorted(cleaned["review_id"]) == sorted(f"G{i}" for i in range(12))
    assert set(cleaned["_source_file"]) == {"a_good.csv"}
    quarantine = lake(good_delivery, "quarantine", "reviews")
    assert len(quarantine) == len(GOOD_ROWS) and set(quarantine["reject_reason"]) == {"duplicate_review_id"}
    assert quarantine["reject_detail"].str.contains("first delivered in a_good.csv line").all()


def test_out_of_range_values_are_quarantined(good_delivery: PlatformSettings) -> None:
    deliver(
        good_delivery,
        "g_range.csv",
        HEADER
        + "\nO1,P1,U1,0,Zero stars is not a thing here,2026-01-01\nO2,P1,U2,-3,Negative stars make no sense,2026-01-01\n",
    )
    assert_accounted(good_delivery, run_raw_and_clean())
    quarantine = quarantine_of(good_delivery)
    assert quarantine.loc["O1", "reject_detail"] == "rating 0 outside 1..5"
    assert quarantine.loc["O2", "reject_detail"] == "rating -3 outside 1..5"
