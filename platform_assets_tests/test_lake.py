"""The lake's public API (`platform_assets.lake`), its CLI and its maintenance, on real catalogs and stores:
SQLite and PostgreSQL SQL catalogs, data files on the local filesystem and on S3 (moto server)."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from platform_assets import lake
from platform_assets.cli import main
from platform_assets.defs.lake.jobs import lake_maintenance_job
from platform_assets.lib import lake as lib_lake
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.lake import LakeIOManager, open_catalog, tag_snapshot, write_table

days = dg.StaticPartitionsDefinition(["2026-01-01", "2026-01-02"])


@dg.asset(key=["raw", "things"], io_manager_key="lake_io_manager")
def raw_things() -> pd.DataFrame:
    return pd.DataFrame({"id": ["a", "b", "c"], "value": [1, 2, 3]})


@dg.asset(key=["raw", "daily"], partitions_def=days, io_manager_key="lake_io_manager")
def daily(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"day": [context.partition_key] * 2, "n": [1, 2]})


def frame(ids: list[str]) -> pa.Table:
    return pa.table({"id": ids, "value": list(range(len(ids)))})


def sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda row: json.dumps(row, sort_keys=True, default=str))


def data_files(key: str) -> list[str]:
    table = open_catalog().load_table(lib_lake.table_name(key))
    return [task.file.file_path for task in table.scan().plan_files()]


def snapshot_of(result: dg.ExecuteInProcessResult, key: list[str], partition: str | None = None) -> int:
    event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path == key and e.materialization.partition == partition
    )
    return int(event.materialization.metadata["lake/snapshot_id"].value)


# Time travel, history, tags and expiry


def test_time_travel_reads_each_snapshot(platform_env: PlatformSettings) -> None:
    catalog = lake.catalog()
    first = write_table(
        catalog, "raw/items", frame(["a", "b"]), snapshot_properties={"dagster-run-id": "run-1"}
    )
    second = write_table(
        catalog, "raw/items", frame(["c", "d", "e"]), snapshot_properties={"dagster-run-id": "run-2"}
    )
    assert lake.read_table("raw/items", snapshot_id=first.snapshot_id)["id"].to_pylist() == ["a", "b"]
    assert lake.read_table("raw/items", snapshot_id=second.snapshot_id)["id"].to_pylist() == ["c", "d", "e"]
    assert lake.read_table("raw/items")["id"].to_pylist() == ["c", "d", "e"]
    assert lake.read_table("raw.items", columns=["value"]).column_names == ["value"]
    assert lake.read_table("raw/items", limit=2).num_rows == 2

    records = lake.history("raw/items")
    # The first write appends; the second deletes the old rows and appends the new ones in one commit.
    assert [(r.operation, r.run_id, r.rows_added, r.rows_removed, r.total_rows) for r in records] == [
        ("append", "run-1", 2, 0, 2),
        ("delete", "run-2", 0, 2, 0),
        ("append", "run-2", 3, 0, 3),
    ]
    assert records[0].snapshot_id == first.snapshot_id and records[-1].snapshot_id == second.snapshot_id
    assert [r.current for r in records] == [False, False, True]
    assert all(
        r.time.tzinfo == UTC and abs(r.time - datetime.now(UTC)) < timedelta(minutes=5) for r in records
    )
    assert lake.tables() == ["raw/items"]


def test_unknown_table_snapshot_or_tag_is_a_lookup_error_naming_it(platform_env: PlatformSettings) -> None:
    write_table(lake.catalog(), "raw/items", frame(["a"]))
    with pytest.raises(LookupError, match=r"no table raw\.nothing .*tables: raw/items"):
        lake.read_table("raw/nothing")
    with pytest.raises(LookupError, match=r"no table raw\.nothing"):
        lake.history("raw/nothing")
    with pytest.raises(LookupError, match=r"raw\.items has no snapshot 12345"):
        lake.read_table("raw/items", snapshot_id=12345)
    with pytest.raises(LookupError, match=r"raw\.items has no tag or branch 'v9'; it has: main"):
        lake.read_table("raw/items", tag="v9")
    # A name without a layer is in the namespace `default`.
    with pytest.raises(LookupError, match=r"no table default\.items"):
        lake.read_table("items")


def test_a_tag_survives_expiry_and_untagged_old_snapshots_go(platform_env: PlatformSettings) -> None:
    catalog = lake.catalog()
    kept = write_table(catalog, "raw/items", frame(["a", "b"]))
    tag_snapshot(catalog, "raw/items", kept.snapshot_id, "train-set-run1")
    middle = write_table(catalog, "raw/items", frame(["c"]))
    latest = write_table(catalog, "raw/items", frame(["d", "e", "f"]))
    middle_files = [f for f in Path(platform_env.lake_uri).rglob("*.parquet")]
    time.sleep(0.01)  # snapshot times are in milliseconds: "older than now" must include the last commit

    expired = lake.expire_snapshots("raw/items", datetime.now(UTC))

    remaining = {r.snapshot_id: r for r in lake.history("raw/items")}
    assert set(remaining) == {kept.snapshot_id, latest.snapshot_id}
    assert (
        middle.snapshot_id in expired and len(expired) == 3
    )  # delete+append of `middle`, delete of `latest`
    assert remaining[kept.snapshot_id].tags == ("train-set-run1",)
    assert lake.read_table("raw/items", tag="train-set-run1")["id"].to_pylist() == ["a", "b"]
    assert lake.read_table("raw/items")["id"].to_pylist() == ["d", "e", "f"]
    with pytest.raises(LookupError, match=f"no snapshot {middle.snapshot_id}"):
        lake.read_table("raw/items", snapshot_id=middle.snapshot_id)
    # pyiceberg expires metadata only: the data files stay on storage (see docs/lake.md).
    assert all(path.exists() for path in middle_files)


def test_history_shows_the_run_ids_and_partitions_of_materializations(platform_env: PlatformSettings) -> None:
    resources = {"lake_io_manager": LakeIOManager()}
    first = dg.materialize([raw_things], resources=resources)
    second = dg.materialize([raw_things], resources=resources)
    day = dg.materialize([daily], partition_key="2026-01-02", resources=resources)

    records = lake.history("raw/things")
    assert {r.run_id for r in records} == {first.run_id, second.run_id}
    assert records[-1].snapshot_id == snapshot_of(second, ["raw", "things"])
    assert records[0].snapshot_id == snapshot_of(first, ["raw", "things"])
    (partition,) = lake.history("raw/daily")
    assert (partition.run_id, partition.partition_key, partition.rows_added) == (day.run_id, "2026-01-02", 2)
    # The `_partition` helper column stays out of what readers get.
    assert lake.read_table("raw/daily").column_names == ["day", "n"]
    assert lake.tables() == ["raw/daily", "raw/things"]
    info = lake.describe("raw/daily")
    assert (info.total_rows, info.data_files, info.partitioned_by) == (2, 1, "_partition")


# Compaction


def write_in_small_files(
    monkeypatch: pytest.MonkeyPatch, key: str, ids: list[str], files: int, partition: str | None = None
) -> None:
    """One write of `ids` as `files` data files (a writer that rolls files often, like Spark's tasks)."""
    chunk = -(-len(ids) // files)
    batches = [frame(ids[i : i + chunk]).to_batches()[0] for i in range(0, len(ids), chunk)]
    with monkeypatch.context() as patch:
        patch.setattr(lib_lake, "ROWS_PER_FILE", chunk)
        write_table(
            lake.catalog(),
            key,
            pa.RecordBatchReader.from_batches(batches[0].schema, batches),
            partition_key=partition,
        )


def test_compaction_keeps_rows_identical_and_reduces_files(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_in_small_files(monkeypatch, "raw/parts", [f"a{i}" for i in range(60)], files=6, partition="a")
    write_in_small_files(monkeypatch, "raw/parts", [f"b{i}" for i in range(20)], files=2, partition="b")
    write_in_small_files(monkeypatch, "raw/flat", [f"f{i}" for i in range(50)], files=5)
    before_parts, before_flat = lake.read_table("raw/parts"), lake.read_table("raw/flat")
    b_files = [p for p in data_files("raw/parts") if "_partition=b" in p]
    assert (len(data_files("raw/parts")), len(b_files), len(data_files("raw/flat"))) == (8, 2, 5)

    reports = {r.table: r for r in lake.maintain(older_than_days=7)}

    assert (reports["raw/parts"].files_before, reports["raw/parts"].files_after) == (8, 3)
    assert reports["raw/parts"].partitions_compacted == ["_partition=a"]
    assert (reports["raw/flat"].files_before, reports["raw/flat"].files_after) == (5, 1)
    assert reports["raw/flat"].partitions_compacted == ["(whole table)"]
    assert sorted_rows(lake.read_table("raw/parts")) == sorted_rows(before_parts)
    assert sorted_rows(lake.read_table("raw/flat")) == sorted_rows(before_flat)
    # Partition b had too few small files: its files are the same ones.
    assert sorted(p for p in data_files("raw/parts") if "_partition=b" in p) == sorted(b_files)
    last = lake.history("raw/flat")[-1]
    assert last.properties["platform-maintenance"] == "compaction" and last.total_rows == 50
    # Nothing left to do: a second pass changes nothing.
    again = {r.table: r for r in lake.maintain()}
    assert again["raw/parts"].partitions_compacted == [] and again["raw/parts"].files_after == 3


def test_compaction_never_puts_back_rows_a_concurrent_run_replaced(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_in_small_files(monkeypatch, "raw/flat", [f"f{i}" for i in range(50)], files=5)
    rewrite = lake._rewrite_partition

    def run_commits_meanwhile(table, *args):  # a run replaces the rows after compaction loaded the table
        write_table(lake.catalog(), "raw/flat", frame(["new"]))
        return rewrite(table, *args)

    monkeypatch.setattr(lake, "_rewrite_partition", run_commits_meanwhile)
    report = lake.compact("raw/flat")

    assert report.partitions_compacted == [] and "changed while compacting" in report.skipped[0]
    assert lake.read_table("raw/flat")["id"].to_pylist() == ["new"]
    # The files compaction wrote were removed: only the run's file is left in the table's data directory.
    (location,) = {str(Path(p.removeprefix("file://")).parent) for p in data_files("raw/flat")}
    assert len(list(Path(location).glob("*.parquet"))) == 5 + 1


def test_maintenance_job_reports_each_table(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_in_small_files(monkeypatch, "raw/flat", [f"f{i}" for i in range(50)], files=5)
    write_table(lake.catalog(), "raw/flat_two", frame(["x"]))
    write_table(lake.catalog(), "raw/flat_two", frame(["y"]))

    result = lake_maintenance_job.execute_in_process(
        run_config={"ops": {"lake_maintenance": {"config": {"older_than_days": 0}}}},
        resources={"lake_io_manager": LakeIOManager()},
    )

    assert result.success
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    per_table = {row["table"]: row for row in metadata["per_table"]}
    assert (per_table["raw/flat"]["files_before"], per_table["raw/flat"]["files_after"]) == (5, 1)
    # older_than_days=0: every snapshot but the current one (and tagged ones) expired.
    assert per_table["raw/flat_two"]["snapshots_expired"] == 2
    assert [r.snapshot_id for r in lake.history("raw/flat_two")] == [
        lake.describe("raw/flat_two").snapshot_id
    ]
    assert lake.read_table("raw/flat_two")["id"].to_pylist() == ["y"]
    # The compaction commit carries the maintenance run's id.
    assert lake.history("raw/flat")[-1].run_id == result.run_id
    assert "| raw/flat |" in metadata["report"]


def test_maintenance_job_and_schedule_are_a_domain() -> None:
    from platform_assets.defs.lake import defs as domain

    # The shared resources (lake_io_manager) come from the code location's policy, as for every domain.
    defs = dg.Definitions.merge(domain, dg.Definitions(resources={"lake_io_manager": LakeIOManager()}))
    assert defs.resolve_job_def("lake_maintenance_job").name == "lake_maintenance_job"
    (schedule,) = defs.schedules
    assert (schedule.name, schedule.cron_schedule) == ("lake_maintenance_schedule", "30 4 * * *")


# CLI


def invoke(*args: str) -> object:
    return CliRunner().invoke(main, ["lake", *args], catch_exceptions=False)


def test_cli_tables_history_read_and_maintain(platform_env: PlatformSettings) -> None:
    catalog = lake.catalog()
    first = write_table(
        catalog, "raw/items", frame(["a", "b"]), snapshot_properties={"dagster-run-id": "run-1"}
    )
    write_table(catalog, "raw/items", frame(["c", "d", "e"]), snapshot_properties={"dagster-run-id": "run-2"})
    tag_snapshot(catalog, "raw/items", first.snapshot_id, "v1")

    tables = invoke("tables")
    assert tables.exit_code == 0, tables.output
    assert "raw/items" in tables.output and "rows" in tables.output.splitlines()[0]

    history = invoke("history", "raw/items")
    assert history.exit_code == 0, history.output
    lines = history.output.splitlines()
    assert "run id" in lines[0] and len(lines) == 4
    assert str(first.snapshot_id) in lines[1] and "run-1" in lines[1] and "v1" in lines[1]
    assert lines[3].split()[1] == "*"  # the current snapshot is marked
    records = [json.loads(line) for line in invoke("history", "raw/items", "--json").output.splitlines()]
    assert [r["run_id"] for r in records] == ["run-1", "run-2", "run-2"] and records[0]["tags"] == ["v1"]

    assert [json.loads(x) for x in invoke("read", "raw/items", "--limit", "2").output.splitlines()] == [
        {"id": "c", "value": 0},
        {"id": "d", "value": 1},
    ]
    pinned = invoke("read", "raw/items", "--snapshot", str(first.snapshot_id))
    assert [json.loads(x)["id"] for x in pinned.output.splitlines()] == ["a", "b"]
    tagged = invoke("read", "raw/items", "--tag", "v1", "--columns", "id")
    assert [json.loads(x) for x in tagged.output.splitlines()] == [{"id": "a"}, {"id": "b"}]

    maintained = invoke("maintain", "--older-than-days", "0", "--json")
    assert maintained.exit_code == 0, maintained.output
    (report,) = [json.loads(line) for line in maintained.output.splitlines()]
    assert (report["table"], report["snapshots_expired"]) == ("raw/items", 1)  # the tagged one stays


def test_cli_unknown_table_snapshot_or_tag_exits_2(platform_env: PlatformSettings) -> None:
    write_table(lake.catalog(), "raw/items", frame(["a"]))
    for args, message in [
        (["history", "raw/nothing"], "no table raw.nothing"),
        (["read", "raw/nothing"], "no table raw.nothing"),
        (["read", "raw/items", "--snapshot", "42"], "raw.items has no snapshot 42"),
        (["read", "raw/items", "--tag", "gone"], "no tag or branch 'gone'"),
        (["maintain", "raw/nothing"], "no table raw.nothing"),
        (["history", "items"], "no table default.items"),
    ]:
        result = CliRunner().invoke(main, ["lake", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


# PostgreSQL catalog and S3 tables


@pytest.fixture
def postgres_catalog(platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """PLATFORM_CATALOG_URI on a fresh database of the local PostgreSQL (dropped afterwards)."""
    from platform_assets_tests.metadata_center_fixture import postgres_database

    with postgres_database(prefix="lake_test") as url:
        # The form users configure; open_catalog picks the psycopg 3 driver itself.
        monkeypatch.setenv("PLATFORM_CATALOG_URI", url.replace("postgresql+psycopg://", "postgresql://"))
        yield url
        open_catalog().engine.dispose()  # no connection left open while the database is dropped


def test_sql_catalog_on_postgresql(postgres_catalog: str, platform_env: PlatformSettings) -> None:
    import sqlalchemy as sa

    resources = {"lake_io_manager": LakeIOManager()}
    first = dg.materialize([raw_things], resources=resources)
    assert first.success
    for key in days.get_partition_keys():
        assert dg.materialize([daily], partition_key=key, resources=resources).success
    assert dg.materialize([raw_things], resources=resources).success

    assert lake.tables() == ["raw/daily", "raw/things"]
    pinned = snapshot_of(first, ["raw", "things"])
    tag_snapshot(lake.catalog(), "raw/things", pinned, "pinned")
    time.sleep(0.01)
    lake.maintain(older_than_days=0)
    assert lake.read_table("raw/things", tag="pinned")["id"].to_pylist() == ["a", "b", "c"]
    assert sorted(lake.read_table("raw/daily")["day"].to_pylist()) == ["2026-01-01"] * 2 + ["2026-01-02"] * 2
    # The catalog really is PostgreSQL: pyiceberg's iceberg_tables holds the tables.
    engine = sa.create_engine(postgres_catalog, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        names = connection.execute(sa.text("SELECT table_namespace, table_name FROM iceberg_tables")).all()
    assert sorted(names) == [("raw", "daily"), ("raw", "things")]


def test_tables_on_s3(
    platform_env: PlatformSettings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("PLATFORM_LAKE_URI", f"s3://{s3_bucket}/lake")
    resources = {"lake_io_manager": LakeIOManager()}
    first = dg.materialize([raw_things], resources=resources)
    assert dg.materialize([daily], partition_key="2026-01-02", resources=resources).success
    assert dg.materialize([daily], partition_key="2026-01-01", resources=resources).success
    assert dg.materialize([daily], partition_key="2026-01-02", resources=resources).success  # re-run

    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(
        k.startswith("lake/raw") and "_partition=2026-01-02" in k and k.endswith(".parquet") for k in keys
    )
    assert any(k.endswith(".metadata.json") for k in keys)
    assert all(path.startswith(f"s3://{s3_bucket}/lake/") for path in data_files("raw/daily"))
    daily_rows = lake.read_table("raw/daily")
    assert sorted(daily_rows["day"].to_pylist()) == ["2026-01-01"] * 2 + ["2026-01-02"] * 2
    assert lake.read_table("raw/things", snapshot_id=snapshot_of(first, ["raw", "things"])).num_rows == 3
    history = lake.history("raw/daily")
    assert [r.partition_key for r in history if r.operation == "append"] == [
        "2026-01-02",
        "2026-01-01",
        "2026-01-02",
    ]

    # Maintenance on S3: compaction writes and commits there too.
    write_in_small_files(monkeypatch, "raw/flat", [f"f{i}" for i in range(50)], files=5)
    (report,) = lake.maintain(["raw/flat"])
    assert (report.files_before, report.files_after) == (5, 1)
    assert all(path.startswith(f"s3://{s3_bucket}/lake/") for path in data_files("raw/flat"))
    assert lake.read_table("raw/flat").num_rows == 50


# Writing in pieces and reading in batches


def test_a_write_in_pieces_is_invisible_until_committed_and_gains_late_columns(
    platform_env: PlatformSettings,
) -> None:
    """A TableWriter's files join the table in one commit; a later piece may bring a column (earlier rows read
    it as null); an aborted writer leaves the table and its files as they were."""
    catalog = lake.catalog()
    write_table(catalog, "raw/pieces", frame(["old"]), partition_key="p")
    before = data_files("raw/pieces")
    with lib_lake.TableWriter(catalog, "raw/pieces", partition_key="p") as writer:
        writer.write(frame(["a", "b", "c"]))
        writer.write(pa.table({"id": ["d"], "value": [3], "note": ["late"]}))
        assert lake.read_table("raw/pieces").column("id").to_pylist() == ["old"]
        result = writer.commit()
    # The piece with a new column starts a file of its own (a parquet file has one schema).
    assert (result.rows, result.files) == (4, 2)
    rows = {row["id"]: row["note"] for row in lake.read_table("raw/pieces").to_pylist()}
    assert rows == {"a": None, "b": None, "c": None, "d": "late"}

    committed = lake.read_table("raw/pieces")
    with (
        pytest.raises(RuntimeError, match="boom"),
        lib_lake.TableWriter(catalog, "raw/pieces", partition_key="p") as w,
    ):
        w.write(frame(["x", "y", "z"]))
        written = list(w.paths)
        raise RuntimeError("boom")
    assert lake.read_table("raw/pieces").equals(committed)
    assert written and not any(Path(path.removeprefix("file://")).exists() for path in written)
    assert not set(before) & set(data_files("raw/pieces"))


def test_batches_come_one_file_at_a_time_in_the_order_asked(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`iter_batches` reads a partition's files in the order of a column's lower bound, in batches no larger
    than asked, with exactly the rows pyiceberg's own scan returns (columns it asks for only)."""
    from pyiceberg.expressions import EqualTo

    catalog = lake.catalog()
    monkeypatch.setattr(lib_lake, "ROWS_PER_FILE", 5)
    rows = pa.table({"line": list(range(45)), "id": [f"r{i}" for i in range(45)], "text": ["t"] * 45})
    # Written last lines first: five files of up to 10 lines, none in line order.
    pieces = [rows.slice(start, 10).to_batches()[0] for start in (40, 30, 20, 10, 0)]
    write_table(
        catalog, "raw/ordered", pa.RecordBatchReader.from_batches(rows.schema, pieces), partition_key="one"
    )
    write_table(catalog, "raw/ordered", rows.slice(0, 5), partition_key="two")
    table = catalog.load_table("raw.ordered")
    assert len(list(table.scan().plan_files())) == 6
    batches = list(
        lib_lake.iter_batches(
            table,
            row_filter=EqualTo("_partition", "one"),
            columns=["line", "id"],
            batch_rows=4,
            order_by="line",
        )
    )
    assert max(batch.num_rows for batch in batches) <= 4
    read = pa.Table.from_batches(batches)
    assert read.column_names == ["line", "id"]
    assert read.column("line").to_pylist() == list(range(45))
    expected = table.scan(row_filter=EqualTo("_partition", "one"), selected_fields=("line", "id")).to_arrow()
    assert sorted_rows(read) == sorted_rows(expected)


def test_runs_that_create_a_partitioned_table_at_the_same_time_both_write_their_partition(
    platform_env: PlatformSettings,
) -> None:
    """Two first writes of a new partitioned table at once (two first deliveries): the table is created with
    its partition spec in one commit, so neither finds it unpartitioned, and both partitions land."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    # A catalog (a connection) for each writer, as each run's process has its own.
    catalogs = {"a": open_catalog(), "b": open_catalog()}
    for attempt in range(4):
        name = f"raw/raced_{attempt}"
        start = threading.Barrier(2, timeout=60)

        def first_write(partition: str, name: str = name, start: threading.Barrier = start) -> int:
            start.wait()
            return write_table(catalogs[partition], name, frame([partition]), partition_key=partition).rows

        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(first_write, ["a", "b"])) == [1, 1]
        table = lake.catalog().load_table(lib_lake.table_name(name))
        assert [field.name for field in table.spec().fields] == ["_partition"]
        assert sorted(lake.read_table(name).column("id").to_pylist()) == ["a", "b"]
