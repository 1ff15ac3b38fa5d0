"""Curation end to end, delivery by delivery through `materialize()`: the real model (ONNX), real LanceDB, real
Iceberg tables and a real metadata center.

The module's platform: the threshold is calibrated on the first delivery (the sample generator's), then a crafted
second delivery brings planted near-duplicates of reviews the first kept, a twin within itself, same-topic but
different reviews, personal data and texts that are no review; a third is another sample (same distribution)
and a fourth is about cooking (shifted).
"""

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from platform_assets.definitions import defs
from platform_assets.defs.reviews.calibration import CALIBRATION
from platform_assets.defs.reviews.contract import CURATED_LANCEDB_TABLE
from platform_assets.defs.reviews.deliveries import materialize_deliveries
from platform_assets.defs.reviews.sample_data import generate_reviews, write_sample_reviews
from platform_assets.defs.training.assets import PUBLISHED_REVIEWS_CORPUS
from platform_assets.lake import read_table
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.curation.policy import CurationPolicy
from platform_assets.lib.resources import shared_resources
from platform_assets.lib.vector_store import connect_lancedb, read_columns
from platform_assets.sdk import Dataset
from platform_assets_tests.conftest import point_platform_at
from platform_assets_tests.metadata_center_fixture import metadata_center
from platform_assets_tests.test_reviews_e2e import metadata

pytestmark = pytest.mark.slow
FIRST = "reviews_sample_001.csv"
CRAFTED = "crafted_002.csv"
SAME = "sample_again_003.csv"
SHIFTED = "cooking_004.csv"
HEADER = ["review_id", "product_id", "user_id", "rating", "text", "created_at"]
EMAIL, PHONE = "reach.me@example.org", "+1 415-555-0134"
# Reviews of topics the sample has, written differently from its sentences: none is a near-duplicate.
SAME_TOPIC_DIFFERENT = {
    "N1": "The battery swelled after a month and now the case will not close.",
    "N2": "Customs held the parcel for ten days before it was delivered.",
    "N3": "The hinge of the screen wobbles whenever I type on the keyboard.",
}
NOT_REVIEWS = {
    "O1": "qwzx plmko vbnrt yuiopq zxcvbm lkjhg asdfgh",
    "O2": "Xkcd zzyzx qqq jjjj wwww 8888 vvvv bbbb",
}
COOKING = [
    "Simmer the tomato sauce for twenty minutes and season it with fresh basil.",
    "Knead the bread dough until it is smooth, then let it rise for an hour.",
    "Whisk the eggs with sugar until pale before folding in the flour.",
    "Roast the chicken at two hundred degrees until the skin is golden and crisp.",
    "Toast the cumin seeds in a dry pan before grinding them for the curry.",
    "Marinate the tofu overnight in soy sauce, ginger and garlic.",
    "Blanch the green beans for two minutes and plunge them into ice water.",
    "Caramelise the onions slowly over low heat for forty minutes.",
    "Fold the whipped cream gently into the chocolate so it stays airy.",
    "Reduce the red wine by half before adding the beef stock to the stew.",
    "Grate the parmesan finely and stir it into the risotto off the heat.",
    "Rest the steak for five minutes after searing so the juices settle.",
    "Soak the chickpeas overnight and boil them until tender for the hummus.",
    "Brush the pastry with beaten egg so that it bakes to a shiny crust.",
    "Slice the cucumbers thinly and pickle them in vinegar, salt and dill.",
    "Temper the chocolate by melting, cooling and gently warming it again.",
    "Steam the dumplings for eight minutes on a bed of cabbage leaves.",
    "Deglaze the pan with white wine and scrape up the browned bits.",
    "Poach the pears in spiced syrup until a knife slides in easily.",
    "Season the soup with lemon juice and a pinch of smoked paprika.",
]


@dataclass
class Curated:
    """The module's platform and the runs of each delivery."""

    settings: PlatformSettings
    instance: dg.DagsterInstance
    calibration: dg.ExecuteInProcessResult
    results: dict[str, dg.ExecuteInProcessResult]
    kept_from_first: dict[str, str]


def write_delivery(landing: Path, name: str, rows: list[tuple[str, str]]) -> None:
    with (landing / name).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for number, (review_id, text) in enumerate(rows):
            writer.writerow(
                [review_id, f"P{number % 7:05d}", f"U{number:06d}", 4, text, "2026-03-01T10:00:00Z"]
            )


def run(
    instance: dg.DagsterInstance, deliveries: list[str], **overrides: object
) -> dict[str, dg.ExecuteInProcessResult]:
    return materialize_deliveries(
        [*defs.assets, *defs.asset_checks],
        resources={**defs.resources, **shared_resources(), **overrides},
        instance=instance,
        deliveries=deliveries,
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def lake(layer: str, delivery: str | None = None) -> pa.Table:
    table = read_table(layer)
    if delivery is not None:
        table = table.filter(pa.compute.equal(table.column("_source_file"), delivery))
    return table.sort_by("review_id")


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Curated]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = point_platform_at(monkeypatch, tmp_path_factory.mktemp("curation") / "platform")
        landing = settings.landing_dir_for("reviews")
        write_sample_reviews(landing, rows=300)
        for extra in ("reviews_sample_002.jsonl", "reviews_sample_003.parquet"):
            (landing / extra).unlink()
        instance = dg.DagsterInstance.ephemeral()
        results = run(instance, [FIRST])
        calibration = dg.materialize(
            [*defs.assets, *defs.asset_checks],
            selection=[CALIBRATION],
            resources={**defs.resources, **shared_resources()},
            instance=instance,
        )
        # The first delivery again, now with the calibrated threshold.
        results.update(run(instance, [FIRST]))
        first = lake("curated/reviews", FIRST)
        kept = dict(zip(first.column("review_id").to_pylist(), first.column("text").to_pylist(), strict=True))
        plain = [
            (i, t) for i, t in sorted(kept.items()) if "[" not in t and "," in t and not t.endswith(".")
        ][:2]
        plain = plain or [(i, t) for i, t in sorted(kept.items()) if "[" not in t][:2]
        (k1, t1), (k2, t2) = plain
        words = t2.split(" ")
        words[1], words[2] = words[2], words[1]
        crafted = [
            ("C1", t1.replace(",", "").rstrip(".!") + "!!"),  # re-punctuated twin of k1
            ("C2", " ".join(words)),  # two words of k2 swapped
            ("C3", "The zipper on this backpack broke during the very first week of use."),
            ("C4", "the zipper on this backpack broke during the very first week of use!"),  # twin of C3
            *SAME_TOPIC_DIFFERENT.items(),
            ("P1", f"Lovely speaker, the bass is deep. Questions? Mail {EMAIL} or call {PHONE}."),
            *NOT_REVIEWS.items(),
        ]
        write_delivery(landing, CRAFTED, crafted)
        same = generate_reviews(120, seed=7)
        same = same[same["text"].map(lambda t: isinstance(t, str) and len(t.strip()) > 20)]
        write_delivery(landing, SAME, [(f"S{i:04d}", t) for i, t in enumerate(same["text"])])
        write_delivery(landing, SHIFTED, [(f"K{i:04d}", t) for i, t in enumerate(COOKING)])
        results.update(run(instance, [CRAFTED, SAME, SHIFTED]))
        yield Curated(settings, instance, calibration, results, {"C1": k1, "C2": k2})


def test_the_threshold_is_calibrated_and_recorded_with_a_plot(curated: Curated) -> None:
    result = curated.calibration
    assert result.success
    recorded = metadata(result, "curated/reviews_near_duplicate_calibration")
    assert 0.75 < recorded["threshold"] < 0.99
    assert recorded["precision"] == 1.0 and recorded["recall"] >= 0.5
    assert recorded["false_positives_by_kind"] == {"same_topic_different": 0}
    assert set(recorded["recall_by_kind"]) == {"light_edit", "repunctuation", "word_swap", "paraphrase"}
    assert (
        recorded["similarity_histogram"].startswith("![")
        and "data:image/png;base64," in recorded["similarity_histogram"]
    )
    assert recorded["stored_rows_sampled"] > 0
    assert recorded["vector_table_rows"] >= recorded["stored_rows_sampled"]
    assert checks(result)["calibration_meets_target"].passed
    used = metadata(curated.results[CRAFTED], "curated/reviews")
    assert used["near_duplicate_threshold"] == recorded["threshold"]
    assert used["threshold_source"].startswith("calibration in run")


def test_planted_near_duplicates_are_found_against_their_twins(curated: Curated) -> None:
    quarantine = lake("quarantine/reviews_curation", CRAFTED).to_pylist()
    by_id = {row["review_id"]: row for row in quarantine}
    for planted, twin in curated.kept_from_first.items():
        assert by_id[planted]["reject_reason"] == "near_duplicate", by_id.get(planted)
        assert by_id[planted]["duplicate_of"] == twin
        assert "earlier delivery" in by_id[planted]["reject_detail"]
    assert by_id["C4"]["duplicate_of"] == "C3"
    pairs = {row["review_id"]: row for row in lake("curated/reviews_duplicate_pairs", CRAFTED).to_pylist()}
    assert set(pairs) == {row["review_id"] for row in quarantine if row["reject_reason"] == "near_duplicate"}
    assert pairs["C4"]["match"] == "same_delivery" and pairs["C1"]["match"] == "earlier_delivery"
    assert pairs["C4"]["component_id"] == "C3"
    assert pairs["C1"]["dagster_run_id"] == curated.results[CRAFTED].run_id
    assert all(row["similarity"] >= row["threshold"] for row in pairs.values())
    # The kept twins are still curated, and so is the first of the pair within the delivery.
    kept = set(lake("curated/reviews").column("review_id").to_pylist())
    assert set(curated.kept_from_first.values()) <= kept and "C3" in kept


def test_same_topic_but_different_reviews_are_kept(curated: Curated) -> None:
    kept = set(lake("curated/reviews", CRAFTED).column("review_id").to_pylist())
    assert set(SAME_TOPIC_DIFFERENT) <= kept


def test_texts_that_are_no_reviews_are_outliers_with_their_score(curated: Curated) -> None:
    quarantine = {row["review_id"]: row for row in lake("quarantine/reviews_curation", CRAFTED).to_pylist()}
    outlier_threshold = metadata(curated.results[CRAFTED], "curated/reviews")["outlier_threshold"]
    for review_id in NOT_REVIEWS:
        assert quarantine[review_id]["reject_reason"] == "outlier", quarantine.get(review_id)
        assert quarantine[review_id]["outlier_score"] > outlier_threshold
    curated_scores = lake("curated/reviews", CRAFTED).column("outlier_score").to_pylist()
    assert curated_scores and max(curated_scores) <= outlier_threshold


def test_personal_data_is_masked_in_every_downstream_layer(curated: Curated, tmp_path: Path) -> None:
    curated_text = dict(
        zip(
            *(lake("curated/reviews", CRAFTED).column(c).to_pylist() for c in ("review_id", "text")),
            strict=True,
        )
    )
    assert "[EMAIL]" in curated_text["P1"] and "[PHONE]" in curated_text["P1"]
    assert metadata(curated.results[CRAFTED], "curated/reviews")["pii_found"] == {"email": 1, "phone": 1}
    vectors_table = connect_lancedb(curated.settings.lancedb_uri).open_table(CURATED_LANCEDB_TABLE)
    stored_texts = read_columns(vectors_table, ["text"]).column("text").to_pylist()
    quarantined_texts = lake("quarantine/reviews_curation").column("text").to_pylist()
    for layer in (list(curated_text.values()), stored_texts, quarantined_texts):
        assert not any(EMAIL in text or PHONE in text for text in layer)
    assert checks(curated.results[CRAFTED])["pii_masked"].passed
    # The published corpus and its loader read the curated layer: masked there too.
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        metadata_center(tmp_path / "mc", storage_roots=list(curated.settings.storage_roots)) as service,
    ):
        monkeypatch.setenv("METADATA_CENTER_URL", service.url)
        monkeypatch.setenv("METADATA_CENTER_API_KEY", service.api_key)
        published = dg.materialize(
            [*defs.assets, *defs.asset_checks],
            selection=[PUBLISHED_REVIEWS_CORPUS],
            resources={**defs.resources, **shared_resources()},
            instance=curated.instance,
        )
        assert published.success
        corpus = Dataset.get("reviews_corpus")
        assert corpus.manifest["build"]["table"] == CURATED_LANCEDB_TABLE
        texts = [t for batch in corpus.to_torch(batch_size=16, columns=["text"]) for t in batch["text"]]
    assert len(texts) == corpus.row_count == len(lake("curated/reviews"))
    assert any("[EMAIL]" in text for text in texts)
    assert not any(EMAIL in text or PHONE in text for text in texts)


def test_every_embedded_review_is_curated_or_quarantined(curated: Curated) -> None:
    embedded = connect_lancedb(curated.settings.lancedb_uri).open_table("reviews")
    for delivery in (FIRST, CRAFTED, SAME, SHIFTED):
        result = curated.results[delivery]
        accounting = checks(result)["curation_accounting"]
        assert accounting.passed, (delivery, accounting.metadata)
        rows = embedded.count_rows(f"_source_file = '{delivery}'")
        assert rows == len(lake("curated/reviews", delivery)) + len(
            lake("quarantine/reviews_curation", delivery)
        )
        reasons = metadata(result, "quarantine/reviews_curation")["reasons"]
        assert sum(reasons.values()) == len(lake("quarantine/reviews_curation", delivery))


def test_drift_passes_on_the_same_distribution_and_warns_on_a_shifted_one(curated: Curated) -> None:
    same = checks(curated.results[SAME])["embedding_drift"]
    assert same.passed, same.metadata
    shifted = checks(curated.results[SHIFTED])["embedding_drift"]
    assert not shifted.passed and shifted.severity == dg.AssetCheckSeverity.WARN
    values = {k: v.value for k, v in shifted.metadata.items()}
    assert values["mmd2"] > values["threshold"] and values["p_value"] <= 0.05
    assert "data:image/png;base64," in values["projection"]
    # A warning lets the delivery's curation go on.
    assert curated.results[SHIFTED].success
    assert "curated/reviews" in {
        e.materialization.asset_key.to_user_string()
        for e in curated.results[SHIFTED].get_asset_materialization_events()
    }


def test_rerunning_a_delivery_changes_nothing(curated: Curated) -> None:
    layers = ("curated/reviews", "quarantine/reviews_curation", "curated/reviews_duplicate_pairs")
    before = {
        layer: lake(layer, CRAFTED).drop_columns(["dagster_run_id"] if "pairs" in layer else [])
        for layer in layers
    }
    vectors = connect_lancedb(curated.settings.lancedb_uri).open_table(CURATED_LANCEDB_TABLE)
    version = vectors.version
    again = run(curated.instance, [CRAFTED])[CRAFTED]
    assert again.success
    for layer in layers:
        after = lake(layer, CRAFTED).drop_columns(["dagster_run_id"] if "pairs" in layer else [])
        assert after.equals(before[layer]), layer
    assert metadata(again, "curated/reviews")["lancedb/rows_written"] == 0
    vectors.checkout_latest()
    assert vectors.version == version


def test_blocking_drift_stops_a_shifted_delivery(curated: Curated) -> None:
    blocking = CurationPolicy(drift_blocking=True)
    before = lake("curated/reviews", SHIFTED)
    result = run(curated.instance, [SHIFTED], curation=blocking)[SHIFTED]
    drift = checks(result)["embedding_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
    assert not result.success
    assert "curated/reviews" not in {
        e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    }
    # The earlier curated rows of the delivery are intact.
    assert lake("curated/reviews", SHIFTED).equals(before)
    # And the corpus is not published while the drift error stands.
    refused = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=[PUBLISHED_REVIEWS_CORPUS],
        resources={**defs.resources, **shared_resources()},
        instance=curated.instance,
        raise_on_error=False,
    )
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    assert "embedding_drift" in failure.step_failure_data.error.message


def test_the_drop_policy_quarantines_personal_data_masked(curated: Curated) -> None:
    result = run(curated.instance, [CRAFTED], curation=CurationPolicy(pii_policy="drop"))[CRAFTED]
    assert result.success
    quarantine = {row["review_id"]: row for row in lake("quarantine/reviews_curation", CRAFTED).to_pylist()}
    assert quarantine["P1"]["reject_reason"] == "pii"
    assert quarantine["P1"]["pii_found"] == "email,phone"
    assert "[EMAIL]" in quarantine["P1"]["text"] and EMAIL not in quarantine["P1"]["text"]
    assert "P1" not in set(lake("curated/reviews").column("review_id").to_pylist())
    assert checks(result)["curation_accounting"].passed
    assert metadata(result, "quarantine/reviews_curation")["reasons"]["pii"] == 1
    # Back to the default policy: the review is curated again, masked.
    again = run(curated.instance, [CRAFTED])[CRAFTED]
    assert again.success and "P1" in set(lake("curated/reviews").column("review_id").to_pylist())


def test_the_calibration_sensor_asks_for_one_when_the_model_or_the_data_changed() -> None:
    from platform_assets.defs.reviews.assets import EMBEDDED
    from platform_assets.defs.reviews.sensors import curation_calibration_sensor

    instance = dg.DagsterInstance.ephemeral()

    def evaluate() -> dg.RunRequest | dg.SkipReason:
        return curation_calibration_sensor(dg.build_sensor_context(instance=instance))

    def report(key: dg.AssetKey, **metadata: object) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, metadata=metadata))

    assert isinstance(evaluate(), dg.SkipReason)  # nothing embedded yet
    report(EMBEDDED, embedding_space="minilm-l6-v2/fp32", **{"lancedb/table_rows": 100})
    first = evaluate()
    assert isinstance(first, dg.RunRequest) and first.run_key == "minilm-l6-v2/fp32:100"
    assert first.tags["curation/calibration_reason"] == "never calibrated"
    report(CALIBRATION, embedding_space="minilm-l6-v2/fp32", vector_table_rows=100, threshold=0.79)
    assert isinstance(evaluate(), dg.SkipReason)
    report(EMBEDDED, embedding_space="minilm-l6-v2/fp32", **{"lancedb/table_rows": 150})
    assert isinstance(evaluate(), dg.SkipReason)  # grown, but not twice over
    report(EMBEDDED, embedding_space="minilm-l6-v2/fp32", **{"lancedb/table_rows": 200})
    grown = evaluate()
    assert isinstance(grown, dg.RunRequest) and "200 rows" in grown.tags["curation/calibration_reason"]
    report(CALIBRATION, embedding_space="minilm-l6-v2/fp32", vector_table_rows=200, threshold=0.79)
    report(EMBEDDED, embedding_space="minilm-l6-v2/onnx-int8", **{"lancedb/table_rows": 200})
    other = evaluate()
    assert isinstance(other, dg.RunRequest) and "onnx-int8" in other.tags["curation/calibration_reason"]


def test_the_keep_policy_leaves_personal_data_and_the_check_warns(curated: Curated) -> None:
    result = run(curated.instance, [CRAFTED], curation=CurationPolicy(pii_policy="keep"))[CRAFTED]
    assert result.success  # a warning does not stop the run
    kept = {row["review_id"]: row for row in lake("curated/reviews", CRAFTED).to_pylist()}
    assert EMAIL in kept["P1"]["text"] and kept["P1"]["pii_found"] == "email,phone"
    masked = checks(result)["pii_masked"]
    assert not masked.passed and masked.severity == dg.AssetCheckSeverity.WARN
    assert masked.metadata["review_ids_sample"].value == ["P1"]
    # The check reports review_ids and counts, never the text it found the data in.
    assert not any(EMAIL in str(value.value) for value in masked.metadata.values())
    assert run(curated.instance, [CRAFTED])[CRAFTED].success  # back to masking


def test_curating_before_embedding_fails_naming_the_table(tmp_path: Path) -> None:
    from platform_assets.defs.reviews.curation import CurationError, curate_delivery_into_lake
    from platform_assets.lib.lake import LakeIOManager

    with pytest.raises(CurationError, match="no LanceDB table 'reviews': materialize embedded/reviews first"):
        curate_delivery_into_lake(
            LakeIOManager(
                catalog_uri=f"sqlite:///{tmp_path / 'catalog.db'}", base_uri=str(tmp_path / "lake")
            ),
            "delivery.csv",
            CurationPolicy(),
            threshold=0.9,
            threshold_source="test",
            run_id="run",
            lancedb_uri=str(tmp_path / "lancedb"),
            index_min_rows=1_000,
        )
