"""The reviews domain end to end through materialize(): real Daft, a real local Ray, real LanceDB."""

import json
import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from platform_assets.definitions import defs
from platform_assets.defs.reviews.sample_data import write_sample_reviews
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.lake import open_catalog, read_arrow
from platform_assets.lib.resources import shared_resources
from platform_assets.lib.vector_store import LanceDBIOManager, connect_lancedb, has_vector_index, read_columns
from platform_assets.search import SearchError, semantic_search
from platform_assets_tests.conftest import PROJECT_ROOT, point_platform_at

pytestmark = pytest.mark.slow
SAMPLE_ROWS = 400
BATTERY_WORDS = ("battery", "charge")


def run_reviews(**resource_overrides: object) -> dg.ExecuteInProcessResult:
    """Materialize every reviews asset and check, as reviews_job does."""
    job = defs.resolve_job_def("reviews_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "raw/reviews",
        "cleaned/reviews",
        "quarantine/reviews",
        "embedded/reviews",
    }
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.groups("reviews"),
        resources={**defs.resources, **shared_resources(), **resource_overrides},
        instance=dg.DagsterInstance.ephemeral(),
    )


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == key
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def stored_vectors(settings: PlatformSettings) -> pd.DataFrame:
    table = connect_lancedb(settings.lancedb_uri).open_table("reviews")
    return read_columns(table, ["review_id", "text", "rating", "vector"]).to_pandas().set_index("review_id")


@pytest.fixture(scope="module")
def first_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PlatformSettings, dg.ExecuteInProcessResult]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = point_platform_at(monkeypatch, tmp_path_factory.mktemp("reviews") / "platform")
        write_sample_reviews(settings.landing_dir_for("reviews"), rows=SAMPLE_ROWS)
        yield settings, run_reviews()


def test_row_accounting_and_checks(first_run: tuple[PlatformSettings, dg.ExecuteInProcessResult]) -> None:
    settings, result = first_run
    assert result.success
    raw = metadata(result, "raw/reviews")["dagster/row_count"]
    cleaned = metadata(result, "cleaned/reviews")["dagster/row_count"]
    quarantine = metadata(result, "quarantine/reviews")
    assert raw == SAMPLE_ROWS + 2 * (SAMPLE_ROWS // 100)
    assert raw == cleaned + quarantine["dagster/row_count"]
    assert sum(quarantine["reasons"].values()) == quarantine["dagster/row_count"]
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
    }
    assert metadata(result, "cleaned/reviews")["quality/score"] == 1.0
    assert 0 < metadata(result, "raw/reviews")["quality/score"] <= 1.0
    embedded = metadata(result, "embedded/reviews")
    assert embedded["embedded_rows"] == cleaned and embedded["reused_rows"] == 0
    assert embedded["dagster/row_count"] == cleaned
    assert embedded["dagster/uri"].endswith("lancedb/reviews.lance")
    vectors = np.stack(stored_vectors(settings)["vector"].to_numpy())
    assert vectors.shape == (cleaned, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_search_finds_the_planted_topic(
    first_run: tuple[PlatformSettings, dg.ExecuteInProcessResult],
) -> None:
    hits = semantic_search("battery dies too fast", k=5)
    assert len(hits) == 5
    assert all(any(word in hit["text"].lower() for word in BATTERY_WORDS) for hit in hits), hits
    assert set(hits[0]) == {"review_id", "product_id", "rating", "text", "score"}
    assert hits == sorted(hits, key=lambda h: -h["score"])
    unrelated = semantic_search("the parcel arrived crushed and late", k=1)[0]
    assert not any(word in unrelated["text"].lower() for word in BATTERY_WORDS)


def test_search_filter_applies_before_ranking(
    first_run: tuple[PlatformSettings, dg.ExecuteInProcessResult],
) -> None:
    hits = semantic_search("battery dies too fast", k=8, where="rating <= 2")
    assert hits and all(hit["rating"] <= 2 for hit in hits)
    with pytest.raises(SearchError, match="filter"):
        semantic_search("battery", where="no_such_column > 1")


def test_cli_search_prints_json_lines(first_run: tuple[PlatformSettings, dg.ExecuteInProcessResult]) -> None:
    settings, _ = first_run
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


def test_rematerialize_is_idempotent_and_incremental(
    first_run: tuple[PlatformSettings, dg.ExecuteInProcessResult],
) -> None:
    settings, result = first_run
    before = stored_vectors(settings)

    again = run_reviews()
    assert again.success
    assert metadata(again, "embedded/reviews")["embedded_rows"] == 0
    after = stored_vectors(settings)
    assert after.index.is_unique and sorted(after.index) == sorted(before.index)

    # Change one review's text in the landing CSV: only that review is embedded again.
    csv_path = settings.landing_dir_for("reviews") / "reviews_sample_001.csv"
    landing = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    target = before.index[5]
    assert target in set(landing["review_id"])
    landing.loc[landing["review_id"] == target, "text"] = "The zipper broke on the first day of use."
    dropped = before.index[7]
    landing = landing[landing["review_id"] != dropped]
    landing.to_csv(csv_path, index=False)

    changed = run_reviews(lancedb_io_manager=LanceDBIOManager(index_min_rows=100))
    assert changed.success
    embedded = metadata(changed, "embedded/reviews")
    assert embedded["embedded_rows"] == 1 and embedded["embedded_review_ids_sample"] == [target]
    after = stored_vectors(settings)
    assert dropped not in after.index and len(after) == len(before) - 1
    assert after.loc[target, "text"] == "The zipper broke on the first day of use."
    assert not np.allclose(after.loc[target, "vector"], before.loc[target, "vector"])
    untouched = before.index[10]
    np.testing.assert_array_equal(after.loc[untouched, "vector"], before.loc[untouched, "vector"])

    # The table passed index_min_rows: an IVF_PQ index was built and the search still finds the topic with it.
    assert "IVF_PQ" in embedded["lancedb/index"]
    assert has_vector_index(connect_lancedb(settings.lancedb_uri).open_table("reviews"))
    hits = semantic_search("battery dies too fast", k=5)
    assert all(any(word in hit["text"].lower() for word in BATTERY_WORDS) for hit in hits)
    assert semantic_search("zipper broke", k=1)[0]["review_id"] == target


def test_unparseable_landing_file_fails_the_run_and_keeps_earlier_outputs(
    first_run: tuple[PlatformSettings, dg.ExecuteInProcessResult],
) -> None:
    settings, _ = first_run
    before = read_arrow(open_catalog(), "cleaned/reviews").to_pandas()
    bad = settings.landing_dir_for("reviews") / "zz_broken.csv"
    bad.write_text('review_id,product_id,user_id,rating,text,created_at\nR9,P1,U1,5,"open quote,2026-01-01\n')
    try:
        job = defs.resolve_job_def("reviews_job")
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    finally:
        bad.unlink()
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "zz_broken.csv: line 2: malformed CSV" in failure.step_failure_data.error.to_string()
    pd.testing.assert_frame_equal(read_arrow(open_catalog(), "cleaned/reviews").to_pandas(), before)
