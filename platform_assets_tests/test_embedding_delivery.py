"""`embed_delivery`: what a delivery's embedding writes to LanceDB, read from the lake, in process.

The same function runs inside the Ray job (test_ray_jobs.py); here its bookkeeping is checked row by row with
the real model (small deliveries are embedded in process): only new and changed texts are embedded, a row whose
other columns changed is rewritten without re-embedding, dropped rows are deleted, an unchanged delivery writes
nothing, and a table from before row hashes is upgraded in place.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from platform_assets.defs.reviews.contract import LANCEDB_TABLE, ROW_HASH_COLUMN
from platform_assets.defs.reviews.embedding import EmbedError, embed_delivery
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.embedding import TextEmbedder
from platform_assets.lib.lake import open_catalog, write_table
from platform_assets.lib.ray_resource import RayResource
from platform_assets.lib.vector_store import connect_lancedb, read_columns

DELIVERY = "2026/12/07/reviews.csv"
TEXTS = {
    "r1": "The battery dies too fast, it barely lasts half a day.",
    "r2": "Beautiful screen with bright and vivid colours.",
    "r3": "Shipping was slow but the seller answered every question.",
    "r4": "Comfortable to wear all day, true to size.",
    "r5": "The zipper broke after a week of normal use.",
}


def cleaned(texts: dict[str, str], ratings: dict[str, int] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "review_id": list(texts),
            "product_id": "p1",
            "user_id": [f"u-{key}" for key in texts],
            "rating": [(ratings or {}).get(key, 4) for key in texts],
            "text": list(texts.values()),
            "created_at": pd.to_datetime(["2026-12-01"] * len(texts), utc=True),
            DELIVERY_COLUMN: DELIVERY,
        }
    )


def deliver(frame: pd.DataFrame) -> None:
    write_table(
        open_catalog(), "cleaned/reviews", frame, partition_column=DELIVERY_COLUMN, partition_key=DELIVERY
    )


def stored(settings: PlatformSettings) -> pd.DataFrame:
    table = connect_lancedb(settings.lancedb_uri).open_table(LANCEDB_TABLE)
    return read_columns(table, ["review_id", "rating", "text", "vector"]).to_pandas().set_index("review_id")


@pytest.fixture
def embedder() -> TextEmbedder:
    return TextEmbedder(ray=RayResource(), backend="onnx", gpus_per_actor=0)


def test_only_what_changed_is_embedded_or_written(
    platform_env: PlatformSettings, embedder: TextEmbedder
) -> None:
    deliver(cleaned(TEXTS))
    first = embed_delivery(DELIVERY, embedder)
    assert (first.rows, first.embedded, first.reused, first.deleted) == (5, 5, 0, 0)
    assert first.embedded_sample == sorted(TEXTS)
    before = stored(platform_env)
    assert sorted(before.index) == sorted(TEXTS)
    norms = np.linalg.norm(np.stack(before["vector"].to_numpy()), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)

    # The same delivery again: nothing embedded, nothing written (the table keeps its version).
    again = embed_delivery(DELIVERY, embedder)
    assert (again.embedded, again.reused, again.updated_without_embedding, again.deleted) == (0, 5, 0, 0)
    assert again.table_version == first.table_version

    # r1's rating corrected, r2's text edited, r3 dropped, r6 new.
    texts = {**TEXTS, "r2": TEXTS["r2"] + " Edited: the colours fade in sunlight.", "r6": "Great value."}
    del texts["r3"]
    deliver(cleaned(texts, ratings={"r1": 1}))
    changed = embed_delivery(DELIVERY, embedder)
    assert (changed.embedded, changed.reused, changed.deleted) == (2, 3, 1)
    assert changed.updated_without_embedding == 1 and changed.embedded_sample == ["r2", "r6"]
    after = stored(platform_env)
    assert sorted(after.index) == sorted(texts)
    assert after.at["r1", "rating"] == 1
    np.testing.assert_array_equal(after.at["r1", "vector"], before.at["r1", "vector"])
    assert float(np.dot(after.at["r2", "vector"], before.at["r2", "vector"])) < 0.999
    np.testing.assert_array_equal(after.at["r4", "vector"], before.at["r4", "vector"])


def test_a_table_from_before_row_hashes_is_upgraded_without_embedding_again(
    platform_env: PlatformSettings, embedder: TextEmbedder
) -> None:
    deliver(cleaned(TEXTS))
    embed_delivery(DELIVERY, embedder)
    db = connect_lancedb(platform_env.lancedb_uri)
    table = db.open_table(LANCEDB_TABLE)
    # The table as the platform wrote it before `row_hash` existed.
    old = table.to_arrow().drop_columns([ROW_HASH_COLUMN])
    db.create_table(LANCEDB_TABLE, old, mode="overwrite")

    upgraded = embed_delivery(DELIVERY, embedder)
    assert (upgraded.embedded, upgraded.reused, upgraded.updated_without_embedding) == (0, 5, 5)
    table = db.open_table(LANCEDB_TABLE)
    assert ROW_HASH_COLUMN in table.schema.names
    assert read_columns(table, [ROW_HASH_COLUMN]).column(ROW_HASH_COLUMN).null_count == 0
    settled = embed_delivery(DELIVERY, embedder)
    assert (settled.embedded, settled.updated_without_embedding) == (0, 0)


def test_a_delivery_without_cleaned_rows_says_so(
    platform_env: PlatformSettings, embedder: TextEmbedder
) -> None:
    with pytest.raises(EmbedError, match="cleaned/reviews has no table in the lake"):
        embed_delivery(DELIVERY, embedder)


def test_a_vector_table_of_other_columns_is_refused_by_name(
    platform_env: PlatformSettings, embedder: TextEmbedder
) -> None:
    import pyarrow as pa

    deliver(cleaned(TEXTS))
    connect_lancedb(platform_env.lancedb_uri).create_table(
        LANCEDB_TABLE, pa.table({"review_id": ["x"], "other": [1]})
    )
    with pytest.raises(EmbedError, match=r"has columns \['other', 'review_id'\].*rebuild the table"):
        embed_delivery(DELIVERY, embedder)


def test_with_a_local_ray_a_few_changed_texts_are_embedded_in_process(
    platform_env: PlatformSettings,
) -> None:
    # Three texts at most in process: the first run (five) goes to the local Ray's actor pool, the re-run with
    # one edited text is embedded here, whatever the delivery's size.
    embedder = TextEmbedder(ray=RayResource(), backend="onnx", gpus_per_actor=0, inline_max_texts=3)
    deliver(cleaned(TEXTS))
    first = embed_delivery(DELIVERY, embedder)
    assert first.embedded == 5 and not any(node.startswith("in process") for node in first.nodes)
    deliver(cleaned({**TEXTS, "r5": TEXTS["r5"] + " Edited."}))
    edited = embed_delivery(DELIVERY, embedder)
    assert edited.embedded == 1 and edited.embedded_sample == ["r5"]
    assert [node.split(" (")[0] for node in edited.nodes] == ["in process"]
