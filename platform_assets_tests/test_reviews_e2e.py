"""The reviews domain end to end, delivery by delivery as the landing sensor runs it: real Daft, a real local Ray,
real LanceDB.

Each landing file is a delivery, one partition of raw, cleaned, quarantine and embedded reviews, materialized
in its own run (`materialize_deliveries`); sums over the dataset are sums over those runs or reads of the lake.
"""

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pyiceberg.expressions import EqualTo, NotEqualTo

from platform_assets.definitions import defs
from platform_assets.defs.reviews.deliveries import (
    landed_deliveries,
    materialize_deliveries,
    register_deliveries,
)
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN, review_deliveries
from platform_assets.defs.reviews.sample_data import write_sample_reviews
from platform_assets.defs.reviews.sensors import reviews_landing_sensor
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.lake import open_catalog, read_arrow
from platform_assets.lib.resources import shared_resources
from platform_assets.lib.vector_store import LanceDBIOManager, connect_lancedb, has_vector_index, read_columns
from platform_assets.search import SearchError, semantic_search
from platform_assets_tests.conftest import PROJECT_ROOT, point_platform_at

pytestmark = pytest.mark.slow
SAMPLE_ROWS = 400
BATTERY_WORDS = ("battery", "charge")
SAMPLE_DELIVERIES = ["reviews_sample_001.csv", "reviews_sample_002.jsonl", "reviews_sample_003.parquet"]
CSV_DELIVERY = SAMPLE_DELIVERIES[0]
HEADER = "review_id,product_id,user_id,rating,text,created_at\n"


@dataclass
class FirstRun:
    """The module's platform: its settings, the instance its runs were recorded in, the first runs by delivery."""

    settings: PlatformSettings
    instance: dg.DagsterInstance
    results: dict[str, dg.ExecuteInProcessResult]


def run_reviews(
    instance: dg.DagsterInstance, deliveries: list[str] | None = None, **resource_overrides: object
) -> dict[str, dg.ExecuteInProcessResult]:
    """Materialize every reviews asset and check once per delivery (default: every landed file), as the landing
    sensor's runs of reviews_job do."""
    job = defs.resolve_job_def("reviews_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "raw/reviews",
        "cleaned/reviews",
        "quarantine/reviews",
        "embedded/reviews",
        "curated/reviews",
        "quarantine/reviews_curation",
        "curated/reviews_duplicate_pairs",
    }
    assert job.partitions_def == review_deliveries
    return materialize_deliveries(
        [*defs.assets, *defs.asset_checks],
        resources={**defs.resources, **shared_resources(), **resource_overrides},
        instance=instance,
        deliveries=deliveries,
    )


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == key
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def total(results: dict[str, dg.ExecuteInProcessResult], key: str, name: str = "dagster/row_count") -> int:
    """A metadata count summed over the deliveries' runs."""
    return sum(metadata(result, key)[name] for result in results.values())


def stored_vectors(settings: PlatformSettings) -> pd.DataFrame:
    table = connect_lancedb(settings.lancedb_uri).open_table("reviews")
    columns = ["review_id", "text", "rating", DELIVERY_COLUMN, "vector"]
    return read_columns(table, columns).to_pandas().set_index("review_id").sort_index()


def lake_rows(layer: str, row_filter: object = None) -> pd.DataFrame:
    """A reviews lake table (rows matching `row_filter`), in review_id and line order for comparisons."""
    frame = read_arrow(open_catalog(), f"{layer}/reviews", row_filter=row_filter).to_pandas()
    return frame.sort_values(["review_id", DELIVERY_COLUMN, "_source_line"]).reset_index(drop=True)


def of_delivery(delivery: str) -> object:
    return EqualTo(DELIVERY_COLUMN, delivery)


def not_of_delivery(delivery: str) -> object:
    return NotEqualTo(DELIVERY_COLUMN, delivery)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = point_platform_at(monkeypatch, tmp_path_factory.mktemp("reviews") / "platform")
        write_sample_reviews(settings.landing_dir_for("reviews"), rows=SAMPLE_ROWS)
        assert landed_deliveries() == SAMPLE_DELIVERIES
        instance = dg.DagsterInstance.ephemeral()
        yield FirstRun(settings, instance, run_reviews(instance))


def test_row_accounting_and_checks(first_run: FirstRun) -> None:
    settings, results = first_run.settings, first_run.results
    assert list(results) == SAMPLE_DELIVERIES
    for delivery, result in results.items():
        assert result.success, delivery
        raw = metadata(result, "raw/reviews")["dagster/row_count"]
        cleaned = metadata(result, "cleaned/reviews")["dagster/row_count"]
        quarantine = metadata(result, "quarantine/reviews")
        assert raw == cleaned + quarantine["dagster/row_count"], delivery
        assert sum(quarantine["reasons"].values()) == quarantine["dagster/row_count"], delivery
        evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert evaluations == {
            "raw_expectations": True,
            "freshness_check": True,
            "row_accounting": True,
            "cleaned_yield": True,
            "cleaned_contract": True,
            "quarantine_expectations": True,
            "embedded_expectations": True,
            "embedded_matches_cleaned": True,
            "embedding_drift": True,
            "curated_contract": True,
            "curation_accounting": True,
            "pii_masked": True,
            "curation_quarantine_expectations": True,
            "duplicate_pairs_expectations": True,
        }, delivery
        assert metadata(result, "cleaned/reviews")["quality/score"] == 1.0
        assert 0 < metadata(result, "raw/reviews")["quality/score"] <= 1.0
        embedded = metadata(result, "embedded/reviews")
        assert embedded["embedded_rows"] == cleaned and embedded["reused_rows"] == 0, delivery
        assert embedded["dagster/row_count"] == cleaned
        assert embedded["dagster/uri"].endswith("lancedb/reviews.lance")
    # Over the whole sample: every generated row (plus the planted re-deliveries) is accounted for once.
    raw_total, cleaned_total = total(results, "raw/reviews"), total(results, "cleaned/reviews")
    assert raw_total == SAMPLE_ROWS + 2 * (SAMPLE_ROWS // 100)
    assert raw_total == cleaned_total + total(results, "quarantine/reviews")
    cleaned = lake_rows("cleaned")
    assert len(cleaned) == cleaned_total and cleaned["review_id"].is_unique
    assert len(lake_rows("raw")) == raw_total
    stored = stored_vectors(settings)
    assert sorted(stored.index) == sorted(cleaned["review_id"])
    vectors = np.stack(stored["vector"].to_numpy())
    assert vectors.shape == (cleaned_total, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_search_finds_the_planted_topic(
    first_run: FirstRun,
) -> None:
    hits = semantic_search("battery dies too fast", k=5)
    assert len(hits) == 5
    assert all(any(word in hit["text"].lower() for word in BATTERY_WORDS) for hit in hits), hits
    assert set(hits[0]) == {"review_id", "product_id", "rating", "text", "score"}
    assert hits == sorted(hits, key=lambda h: -h["score"])
    unrelated = semantic_search("the parcel arrived crushed and late", k=1)[0]
    assert not any(word in unrelated["text"].lower() for word in BATTERY_WORDS)


def test_search_filter_applies_before_ranking(
    first_run: FirstRun,
) -> None:
    hits = semantic_search("battery dies too fast", k=8, where="rating <= 2")
    assert hits and all(hit["rating"] <= 2 for hit in hits)
    with pytest.raises(SearchError, match="filter"):
        semantic_search("battery", where="no_such_column > 1")


def test_cli_search_prints_json_lines(first_run: FirstRun) -> None:
    settings = first_run.settings
    env = {**__import__("os").environ, "PLATFORM_DATA_DIR": str(settings.data_dir)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "platform_assets.cli",
            "search",
            "battery dies too fast",
            "--k",
            "3",
            "--where",
            "rating <= 2",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert len(lines) == 3 and all(line["rating"] <= 2 for line in lines)
    assert any(word in lines[0]["text"].lower() for word in BATTERY_WORDS)


def test_rerunning_a_delivery_is_idempotent(first_run: FirstRun) -> None:
    settings, instance = first_run.settings, first_run.instance
    # The middle delivery: it is checked against the deliveries both before and after it.
    delivery = SAMPLE_DELIVERIES[1]
    # Read with the same filters before and after: a column's dtype depends on the rows read (nulls).
    tables = {
        (layer, which): lake_rows(layer, where(delivery))
        for layer in ("cleaned", "quarantine")
        for which, where in (("delivery", of_delivery), ("others", not_of_delivery))
    }
    vectors_before = stored_vectors(settings)

    (again,) = run_reviews(instance, [delivery]).values()
    assert again.success
    assert all(e.passed for e in again.get_asset_check_evaluations())
    embedded = metadata(again, "embedded/reviews")
    cleaned_rows = metadata(again, "cleaned/reviews")["dagster/row_count"]
    assert embedded["embedded_rows"] == 0 and embedded["reused_rows"] == cleaned_rows
    # The delivery's partitions hold the same rows; the other deliveries' were not rewritten.
    for (layer, which), before in tables.items():
        where = of_delivery if which == "delivery" else not_of_delivery
        pd.testing.assert_frame_equal(lake_rows(layer, where(delivery)), before, obj=f"{layer} {which}")
    vectors_after = stored_vectors(settings)
    assert connect_lancedb(settings.lancedb_uri).open_table("reviews").count_rows() == len(vectors_before)
    assert vectors_after.index.equals(vectors_before.index)
    np.testing.assert_array_equal(
        np.stack(vectors_after["vector"].to_numpy()), np.stack(vectors_before["vector"].to_numpy())
    )


def test_a_changed_delivery_replaces_its_rows_and_the_embeddings_follow(first_run: FirstRun) -> None:
    settings, instance = first_run.settings, first_run.instance
    csv_before = lake_rows("cleaned", of_delivery(CSV_DELIVERY))
    others_before = lake_rows("cleaned", not_of_delivery(CSV_DELIVERY))
    before = stored_vectors(settings)
    # Two reviews of the CSV delivery that no other delivery repeats.
    csv_path = settings.landing_dir_for("reviews") / CSV_DELIVERY
    landing = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    elsewhere = set(lake_rows("raw", not_of_delivery(CSV_DELIVERY))["review_id"])
    candidates = [rid for rid in csv_before["review_id"] if rid not in elsewhere]
    target, dropped = candidates[5], candidates[7]
    landing.loc[landing["review_id"] == target, "text"] = "The zipper broke on the first day of use."
    landing = landing[landing["review_id"] != dropped]
    landing.to_csv(csv_path, index=False)

    (changed,) = run_reviews(
        instance, [CSV_DELIVERY], lancedb_io_manager=LanceDBIOManager(index_min_rows=100)
    ).values()
    assert changed.success
    assert all(e.passed for e in changed.get_asset_check_evaluations())
    embedded = metadata(changed, "embedded/reviews")
    assert embedded["embedded_rows"] == 1 and embedded["embedded_review_ids_sample"] == [target]
    cleaned = lake_rows("cleaned", of_delivery(CSV_DELIVERY)).set_index("review_id")
    assert (
        dropped not in cleaned.index
        and cleaned.loc[target, "text"] == "The zipper broke on the first day of use."
    )
    assert len(cleaned) == len(csv_before) - 1
    after = stored_vectors(settings)
    assert dropped not in after.index and len(after) == len(before) - 1
    assert after.loc[target, "text"] == "The zipper broke on the first day of use."
    assert not np.allclose(after.loc[target, "vector"], before.loc[target, "vector"])
    untouched = next(rid for rid in candidates if rid not in (target, dropped))
    np.testing.assert_array_equal(after.loc[untouched, "vector"], before.loc[untouched, "vector"])
    # The other deliveries' rows, in the lake and in LanceDB, are as they were.
    pd.testing.assert_frame_equal(lake_rows("cleaned", not_of_delivery(CSV_DELIVERY)), others_before)
    others = before.loc[before[DELIVERY_COLUMN] != CSV_DELIVERY]
    pd.testing.assert_frame_equal(after.loc[after[DELIVERY_COLUMN] != CSV_DELIVERY], others)

    # The table passed index_min_rows: an IVF_PQ index was built and the search still finds the topic with it.
    assert "IVF_PQ" in embedded["lancedb/index"]
    assert has_vector_index(connect_lancedb(settings.lancedb_uri).open_table("reviews"))
    hits = semantic_search("battery dies too fast", k=5)
    assert all(any(word in hit["text"].lower() for word in BATTERY_WORDS) for hit in hits)
    assert semantic_search("zipper broke", k=1)[0]["review_id"] == target


def test_a_review_repeated_from_an_earlier_delivery_is_quarantined_naming_it(first_run: FirstRun) -> None:
    settings, instance = first_run.settings, first_run.instance
    first = lake_rows("cleaned", of_delivery(CSV_DELIVERY)).iloc[3]
    copied = lake_rows("cleaned", of_delivery(SAMPLE_DELIVERIES[1])).iloc[4]
    vectors_before = stored_vectors(settings)
    delivery = "reviews_sample_004_repeats.csv"
    rows = [
        # The review_id of a review cleaned from the CSV delivery, with another text.
        f"{first['review_id']},P9,U9,5,A different text that reuses an id already delivered,2026-02-01",
        # Another id, but the same user, product and text as a review cleaned from the JSON Lines delivery.
        f'X0000002,{copied["product_id"]},{copied["user_id"]},4,"{copied["text"]}",2026-02-01',
        *(
            f"X00001{i:02d},P9,U9{i},4,A brand new review number {i} about the hinge,2026-02-01"
            for i in range(4)
        ),
    ]
    (settings.landing_dir_for("reviews") / delivery).write_text(HEADER + "\n".join(rows) + "\n")

    (result,) = run_reviews(instance, [delivery]).values()
    assert result.success
    assert metadata(result, "quarantine/reviews")["reasons"] == {
        "duplicate_review_id": 1,
        "duplicate_content": 1,
    }
    quarantine = lake_rows("quarantine", of_delivery(delivery)).set_index("review_id")
    repeated = quarantine.loc[first["review_id"]]
    assert repeated["reject_reason"] == "duplicate_review_id"
    assert repeated["reject_detail"] == (
        f"review_id {first['review_id']} first delivered in {CSV_DELIVERY} line {first['_source_line']}"
    )
    assert quarantine.loc["X0000002", "reject_reason"] == "duplicate_content"
    assert quarantine.loc["X0000002", "reject_detail"] == (
        "same user, product and text as a review cleaned from an earlier delivery"
    )
    # The first delivery keeps its review; the vector table gained only the new delivery's four reviews.
    cleaned = lake_rows("cleaned")
    assert cleaned["review_id"].is_unique
    assert cleaned.set_index("review_id").loc[first["review_id"], DELIVERY_COLUMN] == CSV_DELIVERY
    after = stored_vectors(settings)
    assert after.loc[first["review_id"], "text"] == vectors_before.loc[first["review_id"], "text"]
    assert sorted(set(after.index) - set(vectors_before.index)) == [f"X00001{i:02d}" for i in range(4)]


def test_the_landing_sensor_requests_one_run_per_delivery_keyed_on_its_content(first_run: FirstRun) -> None:
    landing = first_run.settings.landing_dir_for("reviews")
    deliveries = landed_deliveries()

    def digest(delivery: str) -> str:
        return hashlib.sha256((landing / delivery).read_bytes()).hexdigest()

    with dg.instance_for_test() as instance:
        register_deliveries(instance, deliveries[:1])
        result = reviews_landing_sensor(dg.build_sensor_context(instance=instance))
        assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
            (delivery, f"{delivery}:{digest(delivery)}") for delivery in deliveries
        ]
        (added,) = result.dynamic_partitions_requests
        assert added.partitions_def_name == review_deliveries.name
        assert list(added.partition_keys) == deliveries[1:]

        # Touched, same bytes: a new modification time, the same run key, so Dagster starts no new run.
        path = landing / CSV_DELIVERY
        stat = path.stat()
        path.write_bytes(path.read_bytes())
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        touched = reviews_landing_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert {r.partition_key: r.run_key for r in touched.run_requests} == {
            r.partition_key: r.run_key for r in result.run_requests
        }
        assert json.loads(touched.cursor)[CSV_DELIVERY][1] == stat.st_mtime_ns + 10**9

        # New content: a new run key for that delivery only.
        original = path.read_bytes()
        grown = original + b"R9999999,P1,U1,5,One more review at the end of the file,2026-03-01,web\n"
        try:
            path.write_bytes(grown)
            changed = reviews_landing_sensor(
                dg.build_sensor_context(instance=instance, cursor=touched.cursor)
            )
        finally:
            path.write_bytes(original)
        expected = {r.partition_key: r.run_key for r in result.run_requests}
        expected[CSV_DELIVERY] = f"{CSV_DELIVERY}:{hashlib.sha256(grown).hexdigest()}"
        assert {r.partition_key: r.run_key for r in changed.run_requests} == expected


def test_unparseable_landing_file_fails_its_delivery_and_keeps_earlier_outputs(first_run: FirstRun) -> None:
    settings = first_run.settings
    cleaned_before, raw_before = lake_rows("cleaned"), lake_rows("raw")
    vector_rows = len(stored_vectors(settings))
    bad = settings.landing_dir_for("reviews") / "zz_broken.csv"
    bad.write_text('review_id,product_id,user_id,rating,text,created_at\nR9,P1,U1,5,"open quote,2026-01-01\n')
    try:
        with dg.instance_for_test() as instance:
            register_deliveries(instance, [bad.name])
            job = defs.resolve_job_def("reviews_job")
            result = job.execute_in_process(
                instance=instance, partition_key=bad.name, resources=shared_resources(), raise_on_error=False
            )
    finally:
        bad.unlink()
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "raw__reviews"
    assert "zz_broken.csv: line 2: malformed CSV" in failure.step_failure_data.error.to_string()
    assert not result.get_asset_materialization_events()
    pd.testing.assert_frame_equal(lake_rows("cleaned"), cleaned_before)
    pd.testing.assert_frame_equal(lake_rows("raw"), raw_before)
    assert len(stored_vectors(settings)) == vector_rows
