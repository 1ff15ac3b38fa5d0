"""The lake (parquet) and LanceDB IO managers, on the local filesystem and on a real S3 API (moto server)."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.lake import LakeIOManager
from platform_assets.lib.vector_store import LanceDBIOManager, connect_lancedb, read_columns

FRAME = pd.DataFrame({"id": ["a", "b", "c"], "value": [1, 2, 3]})
days = dg.StaticPartitionsDefinition(["2026-01-01", "2026-01-02"])


@dg.asset(key=["raw", "things"], io_manager_key="lake_io_manager")
def raw_things() -> pd.DataFrame:
    return FRAME


@dg.asset(
    key=["cleaned", "things"],
    ins={"raw": dg.AssetIn(key=["raw", "things"])},
    io_manager_key="lake_io_manager",
)
def cleaned_things(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.assign(value=raw["value"] * 10)


@dg.asset(key=["raw", "daily"], partitions_def=days, io_manager_key="lake_io_manager")
def daily(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"day": [context.partition_key] * 2})


def metadata_of(result: dg.ExecuteInProcessResult, key: list[str]) -> dict:
    event = next(
        e for e in result.get_asset_materialization_events() if e.materialization.asset_key.path == key
    )
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_lake_round_trip_on_local_filesystem_with_metadata(platform_env: PlatformSettings) -> None:
    result = dg.materialize([raw_things, cleaned_things], resources={"lake_io_manager": LakeIOManager()})
    assert result.success
    path = Path(platform_env.lake_uri) / "cleaned" / "things.parquet"
    assert pd.read_parquet(path)["value"].tolist() == [10, 20, 30]
    metadata = metadata_of(result, ["cleaned", "things"])
    assert metadata["dagster/row_count"] == 3
    assert metadata["dagster/uri"] == str(path)
    assert [c.name for c in metadata["dagster/column_schema"].columns] == ["id", "value"]
    assert "| id" in metadata["preview"]


def test_lake_partitions_get_a_path_each(platform_env: PlatformSettings) -> None:
    for key in days.get_partition_keys():
        assert dg.materialize(
            [daily], partition_key=key, resources={"lake_io_manager": LakeIOManager()}
        ).success
    for key in days.get_partition_keys():
        assert (
            pd.read_parquet(Path(platform_env.lake_uri) / "raw" / "daily" / f"{key}.parquet")["day"].tolist()
            == [key] * 2
        )


def test_failed_write_leaves_the_previous_output_intact(platform_env: PlatformSettings) -> None:
    assert dg.materialize([raw_things], resources={"lake_io_manager": LakeIOManager()}).success

    @dg.asset(key=["raw", "things"], io_manager_key="lake_io_manager")
    def broken_things() -> pd.DataFrame:
        # Mixed types in one column cannot be written as parquet: the write fails half-way.
        return pd.DataFrame({"id": ["x", 1, object()], "value": [1, 2, 3]})

    result = dg.materialize(
        [broken_things], resources={"lake_io_manager": LakeIOManager()}, raise_on_error=False
    )
    assert not result.success
    lake = Path(platform_env.lake_uri) / "raw"
    assert pd.read_parquet(lake / "things.parquet")["id"].tolist() == ["a", "b", "c"]
    assert [p.name for p in lake.iterdir()] == ["things.parquet"]  # no staging file left behind


def test_lake_on_s3(platform_env: PlatformSettings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import boto3
    import pyarrow.parquet as pq

    monkeypatch.setenv("PLATFORM_LAKE_URI", f"s3://{s3_bucket}/platform")
    result = dg.materialize([raw_things, cleaned_things], resources={"lake_io_manager": LakeIOManager()})
    assert result.success
    assert (
        metadata_of(result, ["cleaned", "things"])["dagster/uri"]
        == f"s3://{s3_bucket}/platform/cleaned/things.parquet"
    )
    body = (
        boto3.client("s3").get_object(Bucket=s3_bucket, Key="platform/cleaned/things.parquet")["Body"].read()
    )
    assert pq.read_table(io.BytesIO(body)).to_pandas()["value"].tolist() == [10, 20, 30]
    assert dg.materialize(
        [daily], partition_key="2026-01-02", resources={"lake_io_manager": LakeIOManager()}
    ).success
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert "platform/raw/daily/2026-01-02.parquet" in keys


def vectors_frame(ids: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(ids), 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return pd.DataFrame(
        {"item_id": ids, "rating": [i % 5 + 1 for i in range(len(ids))], "vector": list(vectors)}
    )


def lance_asset(frame_holder: dict) -> dg.AssetsDefinition:
    @dg.asset(
        key=["embedded", "items"],
        io_manager_key="lancedb_io_manager",
        metadata={
            "lancedb/table": "items",
            "lancedb/primary_key": "item_id",
            "lancedb/scalar_indexes": {"rating": "bitmap"},
        },
    )
    def items() -> pd.DataFrame:
        return frame_holder["frame"]

    return items


def check_lancedb_merge_semantics(uri: str | None) -> None:
    holder = {"frame": vectors_frame([f"i{n}" for n in range(300)])}
    asset = lance_asset(holder)
    io_manager = LanceDBIOManager(index_min_rows=250)
    first = dg.materialize([asset], resources={"lancedb_io_manager": io_manager})
    table = connect_lancedb(uri).open_table("items")
    assert table.count_rows() == 300
    assert "IVF_PQ" in metadata_of(first, ["embedded", "items"])["lancedb/index"]

    # Same input again: no duplicates.
    dg.materialize([asset], resources={"lancedb_io_manager": io_manager})
    assert table.count_rows() == 300

    # Rows gone from the input are removed, changed rows updated, new rows added.
    changed = vectors_frame([f"i{n}" for n in range(100, 350)], seed=1)
    holder["frame"] = changed
    dg.materialize([asset], resources={"lancedb_io_manager": io_manager})
    stored = read_columns(connect_lancedb(uri).open_table("items"), ["item_id", "vector"]).to_pandas()
    assert sorted(stored["item_id"]) == sorted(changed["item_id"])
    stored = stored.set_index("item_id")
    np.testing.assert_allclose(
        stored.loc["i120", "vector"], changed.set_index("item_id").loc["i120", "vector"]
    )


def test_lancedb_merge_insert_local(platform_env: PlatformSettings) -> None:
    check_lancedb_merge_semantics(None)
    assert (Path(platform_env.lancedb_uri) / "items.lance").is_dir()


def test_lancedb_merge_insert_on_s3(
    platform_env: PlatformSettings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("PLATFORM_LANCEDB_URI", f"s3://{s3_bucket}/lancedb")
    check_lancedb_merge_semantics(f"s3://{s3_bucket}/lancedb")
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith("lancedb/items.lance/") for k in keys)
