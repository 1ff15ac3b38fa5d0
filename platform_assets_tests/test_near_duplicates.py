"""Semantic near-duplicates with the real model: planted light edits, re-punctuation and a swapped word are
found, each against the review delivered first; same-topic but different reviews are not; a delivery is
compared with the stored table through LanceDB and within itself."""

import numpy as np
import pyarrow as pa
import pytest

from platform_assets.lib.curation.near_duplicates import find_near_duplicates, pairs_within
from platform_assets.lib.embedding import TextEmbedder
from platform_assets.lib.ray_resource import RayResource
from platform_assets.lib.vector_store import connect_lancedb

# Calibrated on these texts with all-MiniLM-L6-v2: planted twins score 0.96-1.0, same-topic reviews 0.55-0.85.
THRESHOLD = 0.93
EARLIER = {
    "e1": "The battery dies after barely two hours of use.",
    "e2": "Great sound quality, the bass is deep and clear.",
    "e3": "Shipping took three weeks and the box was crushed.",
}
DELIVERY = {
    "d1": "The battery dies after barely two hours of use!",  # re-punctuated e1
    "d2": "Great sound quality, the bass is clear and deep.",  # swapped words of e2
    "d3": "The screen scratches far too easily.",
    "d4": "The screen scratches far too easily!!",  # re-punctuated d3, same delivery
    "d5": "The battery lasts a full day, very happy with it.",  # same topic as e1, a different review
    "d6": "Shipping was fast and the packaging was perfect.",  # same topic as e3, the opposite
    "d7": "the screen scratches way too easily",  # a light edit of d3
}


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    texts = {**EARLIER, **DELIVERY}
    embedded = TextEmbedder(ray=RayResource(), backend="onnx", gpus_per_actor=0).embed(
        list(texts), list(texts.values())
    )
    return {key: np.asarray(vector, dtype=np.float32) for key, vector in embedded.items()}


def test_a_delivery_is_compared_with_the_table_and_within_itself(tmp_path, vectors) -> None:
    ids = list(EARLIER) + list(DELIVERY)
    table = connect_lancedb(str(tmp_path / "lancedb")).create_table(
        "reviews",
        pa.table(
            {
                "review_id": ids,
                "delivery": ["first"] * len(EARLIER) + ["second"] * len(DELIVERY),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.concatenate([vectors[i] for i in ids])), 384
                ),
            }
        ),
    )
    delivery = list(DELIVERY)
    found = find_near_duplicates(
        table,
        delivery,
        np.stack([vectors[i] for i in delivery]),
        THRESHOLD,
        earlier_rows="delivery != 'second'",
    )
    pairs = {(p.review_id, p.duplicate_of, p.within_delivery) for p in found}
    assert pairs == {("d1", "e1", False), ("d2", "e2", False), ("d4", "d3", True), ("d7", "d3", True)}
    assert all(THRESHOLD <= p.similarity <= 1.0 for p in found)
    # The kept reviews and the same-topic ones are never duplicates.
    assert not {"d3", "d5", "d6"} & {p.review_id for p in found}


def test_within_a_delivery_the_first_is_kept_and_blocks_change_nothing(vectors, monkeypatch) -> None:
    import platform_assets.lib.curation.near_duplicates as module

    delivery = list(DELIVERY)
    stacked = np.stack([vectors[i] for i in delivery])
    whole = pairs_within(delivery, stacked, THRESHOLD)
    assert {(p.review_id, p.duplicate_of) for p in whole} == {("d4", "d3"), ("d7", "d3")}
    monkeypatch.setattr(module, "BLOCK_ROWS", 2)
    assert pairs_within(delivery, stacked, THRESHOLD) == whole
    # Reversed order: d7 and d4 come first and are kept (below the threshold to each other); d3 is now the
    # duplicate, reported once, against the more similar of the two.
    reversed_pairs = pairs_within(delivery[::-1], stacked[::-1], THRESHOLD)
    assert {(p.review_id, p.duplicate_of) for p in reversed_pairs} == {("d3", "d4")}


OUTLIERS = {
    "x1": "qwzx vbnm plkj hgfd asdf zxcv",  # gibberish
    "x2": "Dieses Gerät ist ein völliger Reinfall, ich will mein Geld zurück.",  # another language
    "x3": "BUY CHEAP PILLS NOW at best-deals dot biz !!! limited offer click",  # spam
}


def test_knn_outliers_flag_gibberish_other_languages_and_spam(tmp_path) -> None:
    from platform_assets.defs.reviews.sample_data import generate_reviews
    from platform_assets.lib.curation.outliers import flag_outliers, knn_scores

    sample = generate_reviews(400, seed=3)
    texts = [t for t in sample["text"].dropna().str.strip().unique() if len(t) > 20][:150]
    reviews = {f"r{i}": text for i, text in enumerate(texts)}
    everything = {**reviews, **OUTLIERS}
    embedded = TextEmbedder(ray=RayResource(), backend="onnx", gpus_per_actor=0).embed(
        list(everything), list(everything.values())
    )
    ids = list(everything)
    vectors = np.stack([np.asarray(embedded[i], dtype=np.float32) for i in ids])
    table = connect_lancedb(str(tmp_path / "lancedb")).create_table(
        "reviews",
        pa.table(
            {"review_id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 384)}
        ),
    )
    scores = knn_scores(table, ids, vectors)
    result = flag_outliers(scores)
    flagged = {ids[i] for i in np.flatnonzero(result.flags)}
    assert set(OUTLIERS) <= flagged
    # Few ordinary reviews cross the line (the rule flags the tail, not the bulk).
    assert len(flagged - set(OUTLIERS)) <= len(reviews) * 0.05
    assert min(scores[-3:]) > np.median(scores[:-3])


def test_drift_passes_the_same_distribution_and_flags_a_shifted_one() -> None:
    from platform_assets.defs.reviews.sample_data import generate_reviews
    from platform_assets.lib.curation.drift import mmd_drift

    def texts(seed: int) -> list[str]:
        frame = generate_reviews(600, seed=seed)
        return [t for t in frame["text"].dropna().str.strip() if len(t) > 20]

    reference, later = texts(1)[:120], texts(2)[:120]
    # Another topic: only the sound and audio reviews of a later delivery.
    audio = [t for t in texts(3) if any(w in t.lower() for w in ("sound", "audio", "speaker", "bass"))][:120]
    assert len(audio) >= 40
    everything = reference + later + audio
    embedded = TextEmbedder(ray=RayResource(), backend="onnx", gpus_per_actor=0).embed(
        [str(i) for i in range(len(everything))], everything
    )
    vectors = np.stack([np.asarray(embedded[str(i)], dtype=np.float32) for i in range(len(everything))])
    ref, same, shifted = np.split(vectors, [len(reference), len(reference) + len(later)])

    steady = mmd_drift(ref, same, seed=0)
    assert not steady.drifted and steady.p_value > 0.05, steady
    moved = mmd_drift(ref, shifted, seed=0)
    assert moved.drifted and moved.p_value <= 0.01 and moved.mmd2 > moved.threshold, moved
    assert moved.mmd2 > 3 * max(steady.mmd2, 1e-6)
    with pytest.raises(ValueError, match="at least 2 rows"):
        mmd_drift(ref, shifted[:1])


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_a_duplicate_always_points_at_a_kept_review() -> None:
    # b is a's twin; c is closer to b than to a but still a's twin: c must name a, the kept one, not b.
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.97, 0.243, 0.0])
    c = np.array([0.93, 0.37, 0.0])
    d = np.array([0.0, 0.0, 1.0])
    pairs = pairs_within(["a", "b", "c", "d"], _unit(np.stack([a, b, c, d])), 0.9)
    assert [(p.review_id, p.duplicate_of) for p in pairs] == [("b", "a"), ("c", "a")]
    # Rows already duplicates of stored rows are neither judged nor kept.
    excluded = pairs_within(["a", "b", "c", "d"], _unit(np.stack([a, b, c, d])), 0.9, excluded=[0])
    assert [(p.review_id, p.duplicate_of) for p in excluded] == [("c", "b")]


def test_a_full_pass_finds_the_pairs_an_exact_pass_finds() -> None:
    from platform_assets.lib.curation.near_duplicates import full_pass_pairs

    rng = np.random.default_rng(5)
    centres = rng.standard_normal((40, 64))
    rows = centres[rng.integers(0, 40, 3000)] + 0.8 * rng.standard_normal((3000, 64))
    for row in rng.choice(np.arange(1, 3000), 60, replace=False):
        rows[row] = rows[rng.integers(0, row)] + 0.01 * rng.standard_normal(64)
    vectors = _unit(rows)
    ids = [f"r{i:05d}" for i in range(3000)]
    exact = {(p.review_id, p.duplicate_of) for p in pairs_within(ids, vectors, 0.95)}
    assert len(exact) >= 55
    clustered = full_pass_pairs(ids, vectors, 0.95, rows_per_cluster=100, probes=3)
    found = {(p.review_id, p.duplicate_of) for p in clustered}
    assert len(found & exact) / len(exact) >= 0.95
    position = {review_id: index for index, review_id in enumerate(ids)}
    for pair in clustered:
        first, second = vectors[position[pair.duplicate_of]], vectors[position[pair.review_id]]
        assert float(first @ second) >= 0.95 and position[pair.duplicate_of] < position[pair.review_id]


def test_the_calibrated_threshold_clears_every_different_pair_by_the_margin() -> None:
    from platform_assets.lib.curation.calibration import LabelledPair, calibrate, labelled_pairs

    pairs = labelled_pairs({"t": ["The battery lasts two days, great value.", "Shipping was slow and late."]})
    kinds = {pair.kind for pair in pairs}
    assert {"light_edit", "repunctuation", "word_swap", "paraphrase", "same_topic_different"} <= kinds
    assert all(pair.first != pair.second for pair in pairs)
    labelled = [
        *(LabelledPair("word_swap", "a", "b", True) for _ in range(4)),
        LabelledPair("light_edit", "a", "c", True),
        *(LabelledPair("same_topic_different", "a", "d", False) for _ in range(3)),
    ]
    similarities = np.array([0.99, 0.97, 0.95, 0.9, 0.7, 0.5, 0.6, 0.8])
    result = calibrate(labelled, similarities, margin=0.05)
    # The lowest duplicate similarity at least 0.05 above the most similar different pair (0.8).
    assert result.threshold == 0.9
    assert result.precision == 1.0 and result.recall == 0.8
    assert result.recall_by_kind == {"light_edit": 0.0, "word_swap": 1.0}
    assert result.false_positives_by_kind == {"same_topic_different": 0}
    with pytest.raises(ValueError, match="both duplicate and different"):
        calibrate(labelled[:4], similarities[:4])
