"""Registrations end to end: the real metadata center on loopback, the sensor, the assets, publishing back."""

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from platform_assets.definitions import defs
from platform_assets.defs.registrations.assets import CLEANED, QUARANTINE, VERSION_TAG
from platform_assets.defs.registrations.partitions import registered_datasets
from platform_assets.defs.registrations.resources import MetadataCenterResource
from platform_assets.defs.registrations.sensors import alldata_registrations_sensor
from platform_assets.lib import lake
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.dataset_versions import diff, rebuild_digest
from platform_assets.lib.resources import shared_resources
from platform_assets_tests.conftest import PROJECT_ROOT, free_port
from platform_assets_tests.metadata_center_fixture import RunningMetadataCenter, metadata_center

pytestmark = pytest.mark.slow
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
ROWS = pd.DataFrame(
    {
        "order_id": ["1", "2", "3", "3", "5", "6"],
        "amount": ["10.50", "20.00", "7.25", "7.25", "lots", "3.10"],
        "created_at": ["2024-01-01T10:00:00Z"] * 6,
    }
)
SCHEMA = {
    "columns": [
        {"name": "order_id", "type": "bigint", "nullable": False},
        {"name": "amount", "type": "decimal(10,2)"},
        {"name": "created_at", "type": "timestamp"},
    ]
}


@pytest.fixture
def service(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[RunningMetadataCenter]:
    # The service and the Dagster side allow the same roots: this platform's lake and shared directory, plus
    # the test's bucket when there is one.
    roots = list(platform_env.storage_roots)
    if "s3_bucket" in request.fixturenames:
        roots.append(f"s3://{request.getfixturevalue('s3_bucket')}/etl-output")
    monkeypatch.setenv("PLATFORM_STORAGE_ROOTS", ",".join(roots))
    with metadata_center(platform_env.data_dir / "mc", storage_roots=roots) as running:
        monkeypatch.setenv("METADATA_CENTER_URL", running.url)
        monkeypatch.setenv("METADATA_CENTER_API_KEY", running.api_key)
        yield running


@pytest.fixture
def shared(platform_env: PlatformSettings) -> Path:
    """$PLATFORM_DATA_DIR/shared: a default storage root, where the tests' exports go."""
    return platform_env.data_dir / "shared"


def csv_dataset(directory: Path, frame: pd.DataFrame = ROWS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "part-0.csv"
    frame.to_csv(path, index=False)
    return path


def payload(dataset_id: str, path: Path | str, rows: int, size: int, fmt: str = "csv") -> dict:
    return {
        "dataset_id": dataset_id,
        "name": f"{dataset_id} orders",
        "storage_path": str(path),
        "format": fmt,
        "size_bytes": size,
        "row_count": rows,
        "schema": SCHEMA,
        "tags": ["sales"],
        "metadata": {"etl_job_id": "etl_sales_001", "source_tables": ["raw_db.orders"]},
    }


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"metadata_center": MetadataCenterResource()}
    )
    return alldata_registrations_sensor(context)


def run_requested(instance: dg.DagsterInstance, result: dg.SensorResult) -> list[dg.ExecuteInProcessResult]:
    # Calling a sensor directly does not apply its partition requests: apply them here.
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    job = defs.resolve_job_def("registered_datasets_job")
    return [
        job.execute_in_process(
            instance=instance,
            partition_key=r.partition_key,
            tags=r.tags,
            raise_on_error=False,
            run_config=QUIET,
            resources=shared_resources(),
        )
        for r in result.run_requests
    ]


def test_registration_to_training_ready_dataset_with_lineage(
    service: RunningMetadataCenter, shared: Path
) -> None:
    client = service.client()
    data = csv_dataset(shared / "orders")
    client.register(payload("orders_2024_01", data, rows=len(ROWS), size=data.stat().st_size))
    with dg.instance_for_test() as instance:
        first = tick(instance, None)
        assert isinstance(first, dg.SensorResult)
        assert [r.run_key for r in first.run_requests] == ["orders_2024_01:1"]
        assert first.run_requests[0].tags[VERSION_TAG] == "1"
        (result,) = run_requested(instance, first)
        assert result.success
        assert instance.get_dynamic_partitions(registered_datasets.name) == ["orders_2024_01"]
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {
            "matches_registration": True,
            "registered_contract": True,
            "quarantine_expectations": True,
            "published_with_lineage": True,
        }

        view = client.get("orders_2024_01__training")
        assert "training-ready" in view["tags"] and view["metadata"]["dagster_run_id"] == result.run_id
        assert view["row_count"] == 4 and view["metadata"]["data_quality_score"] == 1.0
        lineage = client.get_lineage("orders_2024_01__training")["lineage"]["upstream"]
        assert lineage["datasets"] == ["orders_2024_01@v1"]
        assert lineage["etl_jobs"] == ["etl_sales_001"] and lineage["source_tables"] == ["raw_db.orders"]
        assert "cleaned/registered_datasets[orders_2024_01]" in lineage["dagster_assets"]
        assert "raw/registered_datasets[orders_2024_01]" in lineage["dagster_assets"]

        # Published: plain parquet at the versioned path; the lake layers: one Iceberg table per dataset.
        lake_dir = Path(os.environ["PLATFORM_DATA_DIR"]) / "lake"
        assert view["storage"]["uri"] == f"file://{lake_dir}/published/orders_2024_01__training/v1"
        published = pd.read_parquet(view["storage"]["uri"].removeprefix("file://"))
        assert published["order_id"].tolist() == [1, 2, 3, 6]
        catalog = lake.open_catalog()
        for layer in ("raw", "cleaned", "quarantine"):
            assert catalog.load_table(f"{layer}.registered_datasets__orders_2024_01") is not None
        quarantine = lake.read_arrow(
            catalog, lake.partition_table_key(QUARANTINE, "orders_2024_01")
        ).to_pandas()
        assert dict(zip(quarantine["order_id"], quarantine["reject_reason"], strict=True)) == {
            "3": "duplicate_row",
            "5": "invalid_type",
        }

        # The platform's own publication is not processed again; nothing runs twice.
        second = tick(instance, first.cursor)
        assert isinstance(second, dg.SensorResult) and second.run_requests == []
        assert isinstance(tick(instance, second.cursor), dg.SkipReason)

        # Re-registering makes a new version, and one new run.
        client.register(payload("orders_2024_01", data, rows=len(ROWS), size=data.stat().st_size))
        third = tick(instance, second.cursor)
        assert [r.run_key for r in third.run_requests] == ["orders_2024_01:2"]
        assert third.dynamic_partitions_requests == []


def test_mismatch_with_the_registration_is_a_failed_check_that_blocks_publishing(
    service: RunningMetadataCenter, shared: Path
) -> None:
    client = service.client()
    data = csv_dataset(shared / "short")
    client.register(payload("short_orders", data, rows=99, size=data.stat().st_size + 1))
    with dg.instance_for_test() as instance:
        (result,) = run_requested(instance, tick(instance, None))
        assert not result.success
        (evaluation,) = [
            e for e in result.get_asset_check_evaluations() if e.check_name == "matches_registration"
        ]
        assert not evaluation.passed
        assert evaluation.description == (
            f"row_count registered 99, found 6; size_bytes registered {data.stat().st_size + 1}, found {data.stat().st_size}"
        )
        materialized = {
            e.materialization.asset_key.path[0] for e in result.get_asset_materialization_events()
        }
        assert "published" not in materialized
    with pytest.raises(Exception, match="404|not found|unknown"):
        client.get("short_orders__training")


def test_service_down_skips_and_keeps_the_cursor(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METADATA_CENTER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("METADATA_CENTER_API_KEY", "unused")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, cursor="41", resources={"metadata_center": MetadataCenterResource()}
        )
        skip = alldata_registrations_sensor(context)
        assert isinstance(skip, dg.SkipReason)
        assert "unreachable" in skip.skip_message and "cursor stays at seq 41" in skip.skip_message
        assert context.cursor == "41"


def test_parquet_dataset_on_s3(
    service: RunningMetadataCenter, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import boto3

    frame = pd.DataFrame(
        {
            "order_id": [1, 2, 3],
            "amount": [1.5, 2.5, 3.5],
            "created_at": pd.to_datetime(["2024-01-01"] * 3, utc=True),
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    boto3.client("s3").put_object(
        Bucket=s3_bucket, Key="etl-output/orders/part-0.parquet", Body=buffer.getvalue()
    )
    client = service.client()
    client.register(
        payload(
            "s3_orders",
            f"s3://{s3_bucket}/etl-output/orders/",
            rows=3,
            size=len(buffer.getvalue()),
            fmt="parquet",
        )
    )
    events_file = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE_FILE", str(events_file))
    with dg.instance_for_test() as instance:
        (result,) = run_requested(instance, tick(instance, None))
        assert result.success, [
            e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure
        ]
    assert client.get("s3_orders__training")["row_count"] == 3
    # OpenLineage naming for S3: namespace s3://<bucket>, name the object key without a leading slash.
    (event,) = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert {"namespace": f"s3://{s3_bucket}", "name": "etl-output/orders"}.items() <= event["inputs"][
        1
    ].items()


def test_through_a_running_dagster(platform_env: PlatformSettings, tmp_path: Path) -> None:
    """register → the daemon's sensor tick → partition added → run → training-ready dataset registered back."""
    data_dir = platform_env.data_dir
    with metadata_center(data_dir / "mc-e2e", storage_roots=platform_env.storage_roots) as running:
        home = data_dir / "dagster"
        (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_ADDRESS"))}
        env.update(
            PLATFORM_DATA_DIR=str(data_dir),
            DAGSTER_HOME=str(home),
            METADATA_CENTER_URL=running.url,
            METADATA_CENTER_API_KEY=running.api_key,
        )
        log = (tmp_path / "dagster.log").open("w")
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster"),
                "dev",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(free_port()),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            data = csv_dataset(data_dir / "shared" / "live")
            running.client().register(payload("live_orders", data, rows=len(ROWS), size=data.stat().st_size))
            deadline = time.monotonic() + 420
            view = None
            while time.monotonic() < deadline and view is None:
                assert process.poll() is None, (tmp_path / "dagster.log").read_text()[-3000:]
                try:
                    view = running.client().get("live_orders__training")
                except Exception:
                    time.sleep(3)
            assert view is not None, (tmp_path / "dagster.log").read_text()[-5000:]
            assert "training-ready" in view["tags"]
            run_id = view["metadata"]["dagster_run_id"]
            os.environ["DAGSTER_HOME"] = str(home)
            with dg.DagsterInstance.get() as instance:
                run = instance.get_run_by_id(run_id)
                assert run.tags.get("dagster/sensor_name") == "alldata_registrations_sensor"
                assert run.tags.get("dagster/run_key") == "live_orders:1"
                assert instance.get_dynamic_partitions("registered_datasets") == ["live_orders"]
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()


def test_cube_studio_publisher_posts_the_uri_in_expand(
    service: RunningMetadataCenter, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from platform_assets_tests.http_receiver import Receiver

    client = service.client()
    data = csv_dataset(shared / "cube")
    client.register(payload("cube_orders", data, rows=len(ROWS), size=data.stat().st_size))
    with Receiver() as cube, dg.instance_for_test() as instance:
        monkeypatch.setenv("CUBE_STUDIO_URL", cube.url.removesuffix("/hook"))
        monkeypatch.setenv("CUBE_STUDIO_TOKEN", "cube-token-123")
        (result,) = run_requested(instance, tick(instance, None))
        assert result.success
        (body,) = cube.bodies
        (headers,) = cube.headers
        assert headers["Authorization"] == "cube-token-123"
        assert body["name"] == "cube_orders__training" and body["path"] == ""
        expand = json.loads(body["expand"])
        assert expand["uri"].endswith("lake/published/cube_orders__training/v1")
        assert "training-ready" in expand["tags"]

        cube.status = 500
        client.register(payload("cube_orders", data, rows=len(ROWS), size=data.stat().st_size))
        (failed,) = run_requested(instance, tick(instance, "1"))
        assert not failed.success
        failure = next(e for e in failed.all_events if e.is_step_failure)
        assert "Cube Studio answered HTTP 500" in failure.step_failure_data.user_failure_data.description


def test_openlineage_event_for_the_publication(
    service: RunningMetadataCenter, shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    client = service.client()
    data = csv_dataset(shared / "ol")
    client.register(payload("ol_orders", data, rows=len(ROWS), size=data.stat().st_size))
    events_file = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE_FILE", str(events_file))
    with dg.instance_for_test() as instance:
        (result,) = run_requested(instance, tick(instance, None))
        assert result.success
    (line,) = events_file.read_text().splitlines()
    event = json.loads(line)
    assert event["eventType"] == "COMPLETE" and event["run"]["runId"] == result.run_id
    assert event["job"]["name"] == "published/registered_datasets[ol_orders]"
    assert {"namespace": "metadata-center", "name": "ol_orders@v1"}.items() <= event["inputs"][0].items()
    assert event["outputs"][0]["name"] == "ol_orders__training"
    # The OpenLineage naming conventions: local files are namespace `file` with the absolute path as name
    # (not a file:// URI), so other producers' events about the same files join ours.
    (source,) = [d for d in event["inputs"] if d["namespace"] == "file"]
    assert source["name"] == str(data)
    (landed,) = [d for d in event["outputs"] if d["namespace"] == "file"]
    assert landed["name"] == str(
        Path(os.environ["PLATFORM_DATA_DIR"]) / "lake/published/ol_orders__training/v1"
    )
    assert not any("://" in d["name"] for d in event["inputs"] + event["outputs"])


def run_version(instance: dg.DagsterInstance, dataset_id: str, version: int) -> dg.ExecuteInProcessResult:
    """Run the whole job for one registered version (as the sensor's run for it would)."""
    if dataset_id not in instance.get_dynamic_partitions(registered_datasets.name):
        instance.add_dynamic_partitions(registered_datasets.name, [dataset_id])
    result = defs.resolve_job_def("registered_datasets_job").execute_in_process(
        instance=instance,
        partition_key=dataset_id,
        tags={VERSION_TAG: str(version)},
        raise_on_error=False,
        run_config=QUIET,
        resources=shared_resources(),
    )
    assert result.success, [
        e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure
    ]
    return result


def published_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[0] == "published"
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_published_versions_are_immutable_parquet_pinned_to_a_tagged_snapshot(
    service: RunningMetadataCenter, shared: Path
) -> None:
    """v1 is plain parquet at its versioned path; re-publishing the same rows adds no version and no directory;
    new data is v2 beside an untouched v1, whose cleaned snapshot stays tagged and readable, even after expiry."""
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    from platform_assets.sdk import Dataset

    client = service.client()
    data = csv_dataset(shared / "pinned")
    client.register(payload("pinned", data, rows=len(ROWS), size=data.stat().st_size))
    versions_dir = Path(os.environ["PLATFORM_DATA_DIR"]) / "lake/published/pinned__training"
    cleaned_key = lake.partition_table_key(CLEANED, "pinned")
    catalog = lake.open_catalog()
    with dg.instance_for_test() as instance:
        first = published_metadata(run_version(instance, "pinned", 1))
        assert first["registered_version"] == 1 and first["lake/snapshot_tag"] == "publish-pinned-v1"
        v1_file = versions_dir / "v1" / "part-00000.parquet"
        assert sorted(p.name for p in versions_dir.iterdir()) == ["v1"]
        assert sorted(p.name for p in (versions_dir / "v1").iterdir()) == ["part-00000.parquet"]
        # Plain pyarrow, no catalog: the registered directory is the version.
        v1_rows = pq.read_table(versions_dir / "v1")
        assert v1_rows.column("order_id").to_pylist() == [1, 2, 3, 6]
        assert v1_rows.column("amount").to_pylist() == [10.5, 20.0, 7.25, 3.1]
        v1_bytes = v1_file.read_bytes()
        view = client.get("pinned__training")
        ((table, snapshot),) = view["metadata"]["lake/input_snapshots"].items()
        assert table == "cleaned.registered_datasets__pinned" == lake.table_name(cleaned_key)
        assert first["lake/input_snapshots"] == {table: snapshot}
        assert view["storage"]["uri"] == f"file://{versions_dir}/v1" and view["size_bytes"] == len(v1_bytes)
        # Its manifest rebuilds exactly its rows from the pinned cleaned snapshot.
        manifest = view["metadata"]["manifest"]
        assert manifest["pin"] == "publish-pinned-v1" and manifest["metrics"]["rows"] == 4
        assert manifest["metrics"]["mean"]["amount"] == pytest.approx((10.5 + 20.0 + 7.25 + 3.1) / 4)
        assert rebuild_digest(manifest) == (view["metadata"]["content_sha256"], 4)

        # The same registration again: raw and cleaned are written anew (a new cleaned snapshot), same rows.
        again = published_metadata(run_version(instance, "pinned", 1))
        assert (again["registered_version"], again["registered_seq"]) == (1, "unchanged")
        assert lake.current_snapshot_id(catalog, cleaned_key) != int(snapshot)
        assert client.get("pinned__training")["versions"] == [1]
        assert sorted(p.name for p in versions_dir.iterdir()) == ["v1"]
        assert again["lake/input_snapshots"] == {table: snapshot}

        # New data lands: a new source version with another row.
        more = ROWS._append(
            {"order_id": "7", "amount": "1.00", "created_at": "2024-01-02T10:00:00Z"}, ignore_index=True
        )
        data = csv_dataset(shared / "pinned", more)
        client.register(payload("pinned", data, rows=len(more), size=data.stat().st_size))
        second = published_metadata(run_version(instance, "pinned", 2))
        assert second["registered_version"] == 2 and second["lake/snapshot_tag"] == "publish-pinned-v2"
        assert sorted(p.name for p in versions_dir.iterdir()) == ["v1", "v2"]
        assert pq.read_table(versions_dir / "v2").column("order_id").to_pylist() == [1, 2, 3, 6, 7]
        assert v1_file.read_bytes() == v1_bytes
        # After new data: v1 still rebuilds from its manifest, and `diff` tells the versions apart.
        assert rebuild_digest(manifest)[0] == view["metadata"]["content_sha256"]
        compared = diff(client.get("pinned__training", version=1), client.get("pinned__training", version=2))
        assert compared["same_rows"] is False and compared["metrics"][0] == {
            "metric": "rows",
            "old": 4,
            "new": 5,
            "change": 1,
        }
        assert client.get("pinned__training", version=1)["storage"]["uri"] == f"file://{versions_dir}/v1"
        # The SDK reads a version inside the storage roots (the lake is one by default) exactly.
        assert Dataset.get("pinned__training", 1, client=client).read(as_arrow=True).equals(v1_rows)

        # v1's input snapshot is tagged, survives expiry of every untagged snapshot, and reads back as v1.
        iceberg = catalog.load_table(table)
        assert iceberg.snapshot_by_name("publish-pinned-v1").snapshot_id == int(snapshot)
        iceberg.maintenance.expire_snapshots().older_than(datetime.now(UTC)).commit()
        for pinned in (
            lake.read_arrow(catalog, cleaned_key, tag="publish-pinned-v1"),
            lake.read_arrow(catalog, cleaned_key, snapshot_id=int(snapshot)),
        ):
            assert pinned.column("order_id").to_pylist() == [1, 2, 3, 6]
        # Expiry did remove the untagged snapshots: only v1's pinned one and the current one (v2's) are left.
        left = {s.snapshot_id for s in catalog.load_table(table).snapshots()}
        assert left == {int(snapshot), lake.current_snapshot_id(catalog, cleaned_key)}


def test_a_version_directory_is_never_overwritten(platform_env: PlatformSettings) -> None:
    """The writer reuses a directory holding the same rows and refuses one holding other rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from platform_assets.lib.published import VersionTaken, content_digest, write_version

    root = str(platform_env.data_dir / "lake")
    rows = pa.table({"order_id": [1, 2], "amount": [1.5, 2.5]})
    digest = content_digest(rows)
    written = write_version(root, "x__training", 1, rows, digest)
    assert not written.reused and written.directory == f"{root}/published/x__training/v1"
    again = write_version(root, "x__training", 1, pa.concat_tables([rows.slice(0, 1), rows.slice(1)]), digest)
    assert again.reused and again.size_bytes == written.size_bytes
    other = pa.table({"order_id": [3], "amount": [0.5]})
    with pytest.raises(VersionTaken):
        write_version(root, "x__training", 1, other, content_digest(other))
    assert pq.read_table(written.directory).equals(rows)
    assert sorted(p.name for p in Path(written.directory).parent.iterdir()) == ["v1"]  # no temporary left


def test_versions_on_s3(platform_env: PlatformSettings, s3_bucket: str) -> None:
    """On an S3 lake the version is one object, readable by plain pyarrow, and never overwritten."""
    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs

    from platform_assets.lib.published import VersionTaken, content_digest, write_version

    root = f"s3://{s3_bucket}/lake"
    rows = pa.table({"order_id": [1, 2]})
    written = write_version(root, "x__training", 1, rows, content_digest(rows))
    assert written.directory == f"{root}/published/x__training/v1"
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["lake/published/x__training/v1/part-00000.parquet"]
    s3 = fs.S3FileSystem(
        endpoint_override=os.environ["AWS_ENDPOINT_URL"],
        access_key="test-key",
        secret_key="test-secret",
        region="us-east-1",
        scheme="http",
    )
    assert pq.read_table(f"{s3_bucket}/lake/published/x__training/v1", filesystem=s3).equals(rows)
    assert write_version(root, "x__training", 1, rows, content_digest(rows)).reused
    other = pa.table({"order_id": [3]})
    with pytest.raises(VersionTaken):
        write_version(root, "x__training", 1, other, content_digest(other))
