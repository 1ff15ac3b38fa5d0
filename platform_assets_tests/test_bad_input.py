"""The bad-input suite: every kind of broken delivery either lands in quarantine with a precise reason or
fails the run with an error naming the file, line and column; no row is lost and no good output is overwritten.

Cases: malformed CSV, ragged rows, non-UTF-8 bytes, a missing column, invalid JSON (the run fails naming the
file and line); wrong types, a struct where a string belongs, out-of-range ratings, huge texts (in CSV beyond
the parser's former field limit as in JSON Lines), control characters in a review_id, re-delivered files
(quarantined with the reason); extra columns (kept, up to a cap; a 10,000-column file neither widens the vector
table nor the metadata); empty and header-only files (reported, stopped by the cleaned contract), file names
that are not UTF-8, links out of the landing directory and linked directories (never a delivery, never read).

A delivery is one landing file, run as its own partition (`materialize_deliveries`, as the landing sensor does):
each bad case travels with a few good rows, since a delivery of nothing but bad rows is stopped by the
cleaned_yield gate.

Bad input elsewhere has its cases beside its component: registrations that point outside the storage roots or
at the platform's own files, and files that fail to parse as their registered format
(test_registration_security.py); oversized, too deep, out-of-range and repeated requests and unsafe webhook
targets at the metadata center (test_metadata_center_api.py, test_metadata_center_webhooks.py); malformed
search filters (test_search_filters.py).
"""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from platform_assets.definitions import defs
from platform_assets.defs.reviews.assets import CLEANED, EMBEDDED, QUARANTINE, RAW
from platform_assets.defs.reviews.contract import EMBEDDED_REVIEWS, LANCEDB_TABLE
from platform_assets.defs.reviews.deliveries import landed_deliveries, materialize_deliveries
from platform_assets.defs.reviews.sensors import reviews_landing_sensor
from platform_assets.lib.config import PlatformSettings, get_settings
from platform_assets.lib.embedding import EMBEDDING_DIM, TextEmbedder
from platform_assets.lib.lake import open_catalog, read_arrow
from platform_assets.lib.landing import display_name, scan_landing
from platform_assets.lib.ray_resource import RayResource
from platform_assets.lib.resources import shared_resources
from platform_assets.lib.vector_store import connect_lancedb

HEADER = "review_id,product_id,user_id,rating,text,created_at"
GOOD_ROWS = [
    f"G{i},P1,U{i},4,This is a perfectly fine review number {i},2026-01-0{i % 9 + 1}T10:00:00Z"
    for i in range(12)
]


class HashEmbedder(TextEmbedder):
    """Unit vectors from a hash of the text: the vector table's shape without loading a model."""

    def backend_spec(self) -> SimpleNamespace:  # type: ignore[override]
        return SimpleNamespace(name="test-hash", space_id="test/hash", reason="test", agreement=None)

    def embed(self, keys: list[str], texts: list[str]) -> dict[str, np.ndarray]:
        vectors = {}
        for key, text in zip(keys, texts, strict=True):
            vector = np.random.default_rng(abs(hash(text))).random(EMBEDDING_DIM).astype(np.float32)
            vectors[key] = vector / np.linalg.norm(vector)
        return vectors


def run_raw_and_clean(
    *extra: dg.AssetKey, deliveries: list[str] | None = None, **resources: object
) -> dict[str, dg.ExecuteInProcessResult]:
    """Run raw, cleaned and quarantine (and `extra`) with their checks, one run per delivery in file order.

    `deliveries`: default every landed file, as the landing sensor would request them.
    """
    return materialize_deliveries(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(RAW, CLEANED, QUARANTINE, *extra),
        # Fresh resources: the loaded definitions' point where the environment pointed at import time.
        resources={**defs.resources, **shared_resources(), **resources},
        instance=dg.DagsterInstance.ephemeral(),
        deliveries=deliveries,
        raise_on_error=False,
    )


def deliver(settings: PlatformSettings, name: str, content: str | bytes) -> Path:
    landing = settings.landing_dir_for("reviews")
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def lake(settings: PlatformSettings, *parts: str) -> pd.DataFrame:
    return read_arrow(open_catalog(), list(parts)).to_pandas()


def fine_csv_rows(prefix: str, count: int = 3) -> str:
    """Good rows to deliver beside the bad ones: a delivery that is mostly garbage is stopped whole by the
    cleaned_yield gate (test_gates_and_alerts.py), so each bad case travels in an otherwise usable delivery."""
    return "".join(
        f"{prefix}{i},P1,U{i},4,A perfectly fine review from delivery {prefix} number {i},2026-01-01\n"
        for i in range(count)
    )


def fine_json_lines(prefix: str, count: int = 3) -> str:
    """`fine_csv_rows` as JSON Lines."""
    return "".join(
        json.dumps(
            {
                "review_id": f"{prefix}{i}",
                "product_id": "P1",
                "user_id": f"U{i}",
                "rating": 4,
                "text": f"A perfectly fine review from delivery {prefix} number {i}",
                "created_at": "2026-01-01",
            }
        )
        + "\n"
        for i in range(count)
    )


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
    assert run_raw_and_clean()["a_good.csv"].success
    cleaned_before = lake(good_delivery, "cleaned", "reviews")
    bad = deliver(good_delivery, name, content)
    assert landed_deliveries() == ["a_good.csv", name]
    result = run_raw_and_clean(deliveries=[name])[name]
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "raw__reviews"
    message = failure.step_failure_data.user_failure_data.description
    assert str(bad.parent) in message and expected in message
    pd.testing.assert_frame_equal(lake(good_delivery, "cleaned", "reviews"), cleaned_before)
    assert len(lake(good_delivery, "raw", "reviews")) == len(GOOD_ROWS)


def quarantine_of(settings: PlatformSettings) -> pd.DataFrame:
    return lake(settings, "quarantine", "reviews").set_index("review_id")


def rows_per_delivery(settings: PlatformSettings, layer: str) -> pd.Series:
    frame = lake(settings, layer, "reviews")
    return frame["_source_file"].value_counts().rename(layer)


def assert_accounted(settings: PlatformSettings, results: dict[str, dg.ExecuteInProcessResult]) -> None:
    """Every delivery's run succeeded with its gates passed, and each raw row of each delivery is in exactly one
    of cleaned and quarantine (per delivery, read back from the lake)."""
    for delivery, result in results.items():
        assert result.success, delivery
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["row_accounting"] and checks["cleaned_contract"] and checks["cleaned_yield"], (
            delivery,
            checks,
        )
    raw, cleaned, quarantine = (
        rows_per_delivery(settings, layer) for layer in ("raw", "cleaned", "quarantine")
    )
    split = cleaned.reindex(raw.index, fill_value=0) + quarantine.reindex(raw.index, fill_value=0)
    pd.testing.assert_series_equal(split, raw, check_names=False)


def test_wrong_types_land_in_quarantine_naming_column_value_and_line(good_delivery: PlatformSettings) -> None:
    deliver(
        good_delivery,
        "c_types.csv",
        HEADER + "\nT1,P1,U1,four,A review with a word for a rating,2026-01-01\n"
        "T2,P1,U1,3,A review with a broken timestamp,31/02/2026 25:00\n" + fine_csv_rows("C"),
    )
    assert_accounted(good_delivery, run_raw_and_clean())
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


def test_empty_and_header_only_deliveries_are_reported_and_stopped_by_the_contract(
    good_delivery: PlatformSettings,
) -> None:
    """An empty or header-only file is a delivery of no rows: its raw partition records the file with 0 rows,
    its accounting balances, and the cleaned contract's row-count rule stops it (nothing to embed); the other
    deliveries are untouched."""
    deliver(good_delivery, "e_empty.csv", b"")
    deliver(good_delivery, "e_header.csv", HEADER + "\n")
    results = run_raw_and_clean()
    assert list(results) == ["a_good.csv", "e_empty.csv", "e_header.csv"]
    assert_accounted(good_delivery, {"a_good.csv": results["a_good.csv"]})
    for name, empty_files in (("e_empty.csv", ["e_empty.csv"]), ("e_header.csv", [])):
        result = results[name]
        assert not result.success, name
        metadata = raw_metadata(result)
        assert metadata["files"] == {name: 0} and metadata["empty_files"] == empty_files
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["row_accounting"].passed, name
        assert not checks["cleaned_contract"].passed, name
        failed = checks["cleaned_contract"].metadata["failed_rules"].value
        assert any(rule["rule"] == "row count in [1, inf]" for rule in failed), failed
    assert set(lake(good_delivery, "cleaned", "reviews")["review_id"]) == {f"G{i}" for i in range(12)}


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
        ).to_json(orient="records", lines=True)
        + fine_json_lines("F"),
    )
    assert_accounted(good_delivery, run_raw_and_clean())
    quarantined = quarantine_of(good_delivery).loc["H1"]
    assert quarantined["reject_reason"] == "text_too_long"
    assert quarantined["text"] == huge


def test_a_file_delivered_twice_duplicates_nothing(good_delivery: PlatformSettings) -> None:
    """The same rows under another file name: every row is quarantined as a repeat of the first delivery, and
    a delivery of nothing but repeats is stopped by the cleaned gates (its accounting still balances)."""
    deliver(good_delivery, "z_again.csv", HEADER + "\n" + "\n".join(GOOD_ROWS) + "\n")
    results = run_raw_and_clean()
    assert_accounted(good_delivery, {"a_good.csv": results["a_good.csv"]})
    again = results["z_again.csv"]
    assert not again.success
    checks = {e.check_name: e for e in again.get_asset_check_evaluations()}
    # Nothing left to clean: both gates stop it, while every row is accounted for in quarantine.
    assert checks["row_accounting"].passed
    assert not checks["cleaned_yield"].passed and not checks["cleaned_contract"].passed
    assert checks["cleaned_yield"].metadata["cleaned_share"].value == 0.0
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
        + "\nO1,P1,U1,0,Zero stars is not a thing here,2026-01-01\nO2,P1,U2,-3,Negative stars make no sense,2026-01-01\n"
        + fine_csv_rows("OK"),
    )
    assert_accounted(good_delivery, run_raw_and_clean())
    quarantine = quarantine_of(good_delivery)
    assert quarantine.loc["O1", "reject_detail"] == "rating 0 outside 1..5"
    assert quarantine.loc["O2", "reject_detail"] == "rating -3 outside 1..5"


def raw_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.materialization.asset_key == RAW]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_unreadable_names_and_links_out_are_listed_with_the_reason(
    good_delivery: PlatformSettings, tmp_path: Path
) -> None:
    """A file name that is not UTF-8 failed every run with a UnicodeEncodeError naming no file; a link to a
    file elsewhere on the host was read into the lake; a linked directory was skipped without a word."""
    landing = good_delivery.landing_dir_for("reviews")
    row = "P1,U1,4,This review must never reach the lake,2026-01-01\n"
    (landing / "n_caf\udce9.csv").write_bytes(f"{HEADER}\nN1,{row}".encode())  # the bytes n_caf\xe9.csv
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(f"{HEADER}\nS1,{row}")
    os.symlink(outside / "secret.csv", landing / "s_link.csv")
    os.symlink(outside, landing / "s_dir")
    reasons = {
        "n_caf\\xe9.csv": "file name is not valid UTF-8; rename the file",
        "s_dir": "symbolic link to a directory; links are not followed, deliver the files themselves",
        "s_link.csv": "symbolic link to a file outside the landing directory",
    }
    # None of them is a delivery: the landing sensor requests no run for them and a run of every landed
    # delivery reads only the good file.
    assert landed_deliveries() == ["a_good.csv"]
    with dg.instance_for_test() as instance:
        requested = reviews_landing_sensor(dg.build_sensor_context(instance=instance)).run_requests
    assert [request.partition_key for request in requested] == ["a_good.csv"]
    assert_accounted(good_delivery, run_raw_and_clean())
    _, ignored = scan_landing(landing)
    assert {display_name(path.relative_to(landing)): reason for path, reason in ignored.items()} == reasons
    # A run forced on the link's name fails with the reason instead of reading the file it points to.
    forced = run_raw_and_clean(deliveries=["s_link.csv"])["s_link.csv"]
    assert not forced.success
    failure = next(e for e in forced.all_events if e.is_step_failure)
    assert reasons["s_link.csv"] in failure.step_failure_data.user_failure_data.description
    assert sorted(lake(good_delivery, "raw", "reviews")["review_id"]) == sorted(f"G{i}" for i in range(12))


def test_a_csv_field_over_the_parsers_former_limit_is_quarantined_as_in_json_lines(
    good_delivery: PlatformSettings,
) -> None:
    """Over 64 MiB, a CSV field failed the whole delivery with an unbalanced-quote hint; the same text in
    JSON Lines was quarantined as text_too_long. Both are now."""
    huge = "word " * (64 * 1024 * 1024 // 5) + "end of a very long review"
    row = f"P1,U1,4,{huge},2026-01-01"
    deliver(good_delivery, "h_huge.csv", f"{HEADER}\nL1,{row}\n" + fine_csv_rows("HC"))
    fields = {"review_id": "L2", "product_id": "P1", "user_id": "U1", "rating": 4, "created_at": "2026-01-01"}
    deliver(
        good_delivery, "h_huge.jsonl", json.dumps({**fields, "text": huge}) + "\n" + fine_json_lines("HJ")
    )
    assert_accounted(good_delivery, run_raw_and_clean())
    quarantine = quarantine_of(good_delivery)
    assert quarantine["reject_reason"].to_dict() == {"L1": "text_too_long", "L2": "text_too_long"}
    detail = f"text has {len(huge)} characters after cleaning, maximum 5000"
    assert quarantine["reject_detail"].tolist() == [detail, detail]


def test_control_characters_in_a_review_id_are_quarantined(good_delivery: PlatformSettings) -> None:
    """A NUL in a review_id used to pass cleaning into the vector table."""
    deliver(
        good_delivery,
        "i_ids.csv",
        HEADER + "\nN\x001,P1,U1,4,A review whose id hides a NUL,2026-01-01\n" + fine_csv_rows("IC"),
    )
    deliver(
        good_delivery,
        "i_ids.jsonl",
        '{"review_id": "N\\u00072", "product_id": "P1", "user_id": "U2", '
        '"rating": 4, "text": "A review whose id rings a bell", "created_at": "2026-01-01"}\n'
        + fine_json_lines("IJ"),
    )
    assert_accounted(good_delivery, run_raw_and_clean())
    quarantine = quarantine_of(good_delivery)
    assert quarantine["reject_reason"].to_dict() == {
        "N\x001": "invalid_review_id",
        "N\x072": "invalid_review_id",
    }
    assert quarantine.loc["N\x001", "reject_detail"] == (
        "review_id 'N\\x001' contains whitespace, a control or a format character"
    )


def test_a_struct_where_text_belongs_is_a_type_error(good_delivery: PlatformSettings) -> None:
    """`{"text": {"a": 1}}` used to be stringified ("{'a': 1}") and embedded."""
    deliver(
        good_delivery,
        "j_struct.jsonl",
        '{"review_id": "J1", "product_id": "P1", "user_id": "U1", '
        '"rating": 4, "text": {"a": 1}, "created_at": "2026-01-01"}\n' + fine_json_lines("JS"),
    )
    assert_accounted(good_delivery, run_raw_and_clean())
    quarantined = quarantine_of(good_delivery).loc["J1"]
    assert quarantined["reject_reason"] == "invalid_type"
    assert quarantined["reject_detail"] == "text: {'a': 1} is not a string (j_struct.jsonl line 1)"


def test_a_very_wide_delivery_is_capped_and_kept_out_of_the_vector_table(
    good_delivery: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10,000-column file widened the LanceDB table for good and every layer's metadata 55 times."""
    wide = [f"extra_{i}" for i in range(10_000)]
    row = "W1,P1,U1,5,A review that came with ten thousand columns,2026-01-01"
    deliver(good_delivery, "k_wide.csv", ",".join([HEADER, *wide]) + "\n" + ",".join([row, *wide]) + "\n")
    results = run_raw_and_clean(EMBEDDED, embedder=HashEmbedder(ray=RayResource()))
    assert_accounted(good_delivery, results)
    cap = get_settings().landing_max_extra_columns
    assert cap == 50  # the default
    metadata = raw_metadata(results["k_wide.csv"])
    assert metadata["max_extra_columns"] == cap and metadata["extra_columns"] == wide[:cap]
    assert metadata["dropped_extra_columns"] == 10_000 - cap
    assert metadata["dropped_extra_columns_sample"] == wide[cap : cap + 20]
    # The contract's six columns, the kept extras, and three more: raw's lineage (_source_file, _source_line,
    # _ingest_error); cleaned drops _ingest_error and adds _content_key (the cross-delivery duplicate key).
    assert len(lake(good_delivery, "raw", "reviews").columns) == 6 + cap + 3
    assert len(lake(good_delivery, "cleaned", "reviews").columns) == 6 + cap + 3
    table = connect_lancedb(good_delivery.lancedb_uri).open_table(LANCEDB_TABLE)
    assert table.schema.names == EMBEDDED_REVIEWS.column_names
    assert table.count_rows() == len(GOOD_ROWS) + 1

    monkeypatch.setenv("PLATFORM_LANDING_MAX_EXTRA_COLUMNS", "3")
    again = run_raw_and_clean(deliveries=["k_wide.csv"])["k_wide.csv"]
    assert again.success and raw_metadata(again)["extra_columns"] == wide[:3]
