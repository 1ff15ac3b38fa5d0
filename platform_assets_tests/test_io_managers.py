"""The lake (Iceberg tables) and LanceDB IO managers, locally and on a real S3 API (moto server)."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from platform_assets.lake import read_table
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.lake import LakeIOManager, open_catalog
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


def metadata_of(result: dg.ExecuteInProcessResult, key: list[str], partition: str | None = None) -> dict:
    event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path == key and e.materialization.partition == partition
    )
    return {k: v.value for k, v in event.materialization.metadata.items()}


def iceberg_table(name: str):  # noqa: ANN201 - a pyiceberg Table
    return open_catalog().load_table(name)


def data_files(name: str) -> list[str]:
    return sorted(task.file.file_path for task in iceberg_table(name).scan().plan_files())


def test_lake_round_trip_on_local_filesystem_with_metadata(platform_env: PlatformSettings) -> None:
    result = dg.materialize([raw_things, cleaned_things], resources={"lake_io_manager": LakeIOManager()})
    assert result.success
    table = iceberg_table("cleaned.things")
    assert table.scan().to_arrow()["value"].to_pylist() == [10, 20, 30]
    assert read_table("cleaned/things").column_names == ["id", "value"]
    metadata = metadata_of(result, ["cleaned", "things"])
    assert metadata["dagster/row_count"] == 3
    assert metadata["lake/table"] == "cleaned.things"
    assert metadata["lake/table_rows"] == 3
    assert metadata["lake/snapshot_id"] == str(table.current_snapshot().snapshot_id)
    assert metadata["dagster/uri"] == table.location()
    assert table.location().startswith(f"file://{platform_env.lake_uri}/")
    assert [c.name for c in metadata["dagster/column_schema"].columns] == ["id", "value"]
    assert "| id" in metadata["preview"]
    # The snapshot records the run that wrote it.
    assert table.current_snapshot().summary["dagster-run-id"] == result.run_id


def test_a_partition_rerun_replaces_exactly_that_partition(platform_env: PlatformSettings) -> None:
    resources = {"lake_io_manager": LakeIOManager()}
    for key in days.get_partition_keys():
        assert dg.materialize([daily], partition_key=key, resources=resources).success
    first_files = data_files("raw.daily")
    other = [path for path in first_files if "2026-01-02" in path]

    # The same partition again: the same rows, nothing duplicated, the other partition's file untouched.
    rerun = dg.materialize([daily], partition_key="2026-01-01", resources=resources)
    assert rerun.success
    rows = read_table("raw/daily")["day"].to_pylist()
    assert sorted(rows) == ["2026-01-01"] * 2 + ["2026-01-02"] * 2
    files = data_files("raw.daily")
    assert len(files) == 2 and [path for path in files if "2026-01-02" in path] == other
    assert files != first_files  # partition 2026-01-01 was rewritten, in one new file
    metadata = metadata_of(rerun, ["raw", "daily"], "2026-01-01")
    assert (metadata["dagster/row_count"], metadata["lake/table_rows"]) == (2, 4)
    # One commit: the delete of the old rows and the append of the new ones carry the run id.
    table = iceberg_table("raw.daily")
    replaced = [s for s in table.snapshots() if s.summary.get("dagster-run-id") == rerun.run_id]
    assert [s.summary.operation.value for s in replaced] == ["delete", "append"]
    assert all(s.summary.get("dagster-partition-key") == "2026-01-01" for s in replaced)


def test_failed_write_leaves_the_previous_snapshot_current(platform_env: PlatformSettings) -> None:
    import pyarrow as pa

    assert dg.materialize([raw_things], resources={"lake_io_manager": LakeIOManager()}).success
    before = iceberg_table("raw.things").current_snapshot().snapshot_id

    @dg.asset(key=["raw", "things"], io_manager_key="lake_io_manager")
    def broken_things() -> pd.DataFrame:
        # Mixed types in one column cannot become Arrow: the write fails before any commit.
        return pd.DataFrame({"id": ["x", 1, object()], "value": [1, 2, 3]})

    def batches():  # a stream that fails after its first batch was written to a data file
        yield pa.record_batch({"id": ["x"], "value": [9]})
        raise OSError("the source went away")

    @dg.asset(key=["raw", "things"], io_manager_key="lake_io_manager")
    def broken_stream() -> pa.RecordBatchReader:
        schema = pa.schema([("id", pa.string()), ("value", pa.int64())])
        return pa.RecordBatchReader.from_batches(schema, batches())

    for asset in (broken_things, broken_stream):
        result = dg.materialize([asset], resources={"lake_io_manager": LakeIOManager()}, raise_on_error=False)
        assert not result.success
        assert iceberg_table("raw.things").current_snapshot().snapshot_id == before
        assert read_table("raw/things")["id"].to_pylist() == ["a", "b", "c"]


def test_lake_on_s3(platform_env: PlatformSettings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("PLATFORM_LAKE_URI", f"s3://{s3_bucket}/platform")
    result = dg.materialize([raw_things, cleaned_things], resources={"lake_io_manager": LakeIOManager()})
    assert result.success
    location = metadata_of(result, ["cleaned", "things"])["dagster/uri"]
    assert (
        location.startswith(f"s3://{s3_bucket}/platform/")
        and location == iceberg_table("cleaned.things").location()
    )
    assert read_table("cleaned/things")["value"].to_pylist() == [10, 20, 30]
    assert dg.materialize(
        [daily], partition_key="2026-01-02", resources={"lake_io_manager": LakeIOManager()}
    ).success
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    (daily_file,) = data_files("raw.daily")
    assert daily_file.removeprefix(f"s3://{s3_bucket}/") in keys and "_partition=2026-01-02" in daily_file
    assert any(k.startswith("platform/") and k.endswith(".metadata.json") for k in keys)
    assert read_table("raw/daily")["day"].to_pylist() == ["2026-01-02"] * 2


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
