"""No host file leaves through a registration: storage roots (PLATFORM_STORAGE_ROOTS) at registration and again
before every read, the platform's own files never readable, and no file content in errors or metadata.

Real service on loopback, real Dagster runs, real files (and real symbolic links).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from platform_assets.defs.registrations.assets import RAW
from platform_assets.lib import lake
from platform_assets.lib.config import PlatformSettings
from platform_assets.metadata_center.client import MetadataCenterClient, MetadataCenterError
from platform_assets.sdk import Dataset, DatasetError
from platform_assets_tests.metadata_center_fixture import RunningMetadataCenter, metadata_center
from platform_assets_tests.test_registrations import ROWS, csv_dataset, payload, run_requested, tick

pytestmark = pytest.mark.slow


def landed(dataset_id: str) -> bool:
    """Whether the dataset's raw table (`raw.registered_datasets__<id>`) is in the lake catalog."""
    return lake.load_table(lake.open_catalog(), lake.partition_table_key(RAW, dataset_id)) is not None


def secret() -> str:
    """A value that must never show up in an answer, an error or the event log."""
    return f"SECRET-{uuid.uuid4().hex}"


# -- at registration: 422 naming storage_path ------------------------------------------------------------


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[RunningMetadataCenter, MetadataCenterClient]]:
    """A service whose storage root is its whole data directory (a root *above* its own files), with a
    generated API key file, its SQLite database and a DAGSTER_HOME inside that root."""
    data_dir = tmp_path / "platform"
    (data_dir / "dagster").mkdir(parents=True)
    (data_dir / "dagster" / "dagster.yaml").write_text(f"# {secret()}\n")
    with metadata_center(
        data_dir,
        storage_roots=[data_dir, "s3://etl-output/allowed"],
        # No key in the environment: the service generates its key file, as `make run` does.
        extra_env={"METADATA_CENTER_API_KEY": "", "DAGSTER_HOME": str(data_dir / "dagster")},
    ) as running:
        key = (data_dir / "metadata_center_api_key").read_text().strip()
        yield running, running.client(api_key=key)


def refusal(client: MetadataCenterClient, storage_path: str) -> MetadataCenterError:
    body = payload(f"ds_{uuid.uuid4().hex[:8]}", storage_path, rows=1, size=1)
    with pytest.raises(MetadataCenterError) as error:
        client.register(body)
    return error.value


def test_paths_outside_the_roots_and_the_services_own_files_answer_422(
    guarded: tuple[RunningMetadataCenter, MetadataCenterClient], tmp_path: Path
) -> None:
    service, client = guarded
    data_dir = service.data_dir
    shared = data_dir / "shared"
    shared.mkdir()
    (shared / "passwd.csv").symlink_to("/etc/passwd")
    (shared / "etc").symlink_to("/etc", target_is_directory=True)
    outside = tmp_path / "elsewhere" / "part-0.csv"
    outside.parent.mkdir()
    outside.write_text("order_id\n1\n")
    key = (data_dir / "metadata_center_api_key").read_text().strip()

    outside_roots = [
        "/tmp/x/../../etc/group",
        f"file://{data_dir}/../../../../etc/group",
        str(shared / "passwd.csv"),  # a symbolic link inside the root, pointing outside
        str(shared / "etc" / "group"),  # through a linked directory
        str(outside),
        "s3://etl-output/other/part-0.parquet",
        "s3://etl-output/allowed-but-not-this/x",  # a prefix match is by whole segments
        "s3://another-bucket/allowed/x",
    ]
    own_files = [
        str(data_dir / "metadata_center_api_key"),
        f"{shared}/../metadata_center_api_key",
        str(data_dir / "metadata_center.db"),
        str(data_dir / "dagster" / "dagster.yaml"),
        str(data_dir),  # a directory holding them
    ]
    for storage_path in outside_roots + own_files + ["s3://etl-output/allowed/../other/x"]:
        error = refusal(client, storage_path)
        assert (error.status, error.field) == (422, "storage_path"), (storage_path, error.message)
        assert key not in error.message and "root:" not in error.message
    for storage_path in outside_roots:
        message = refusal(client, storage_path).message
        assert f"outside the allowed storage roots: {data_dir}, s3://etl-output/allowed" in message
    for storage_path in own_files:
        assert "never readable" in refusal(client, storage_path).message
    assert "'..'" in refusal(client, "s3://etl-output/allowed/../other/x").message
    assert list(client.iter_registrations()) == []

    # Inside the roots: accepted.
    client.register(payload("inside", str(shared / "orders.csv"), rows=1, size=1))
    client.register(payload("inside_s3", "s3://etl-output/allowed/orders/", rows=1, size=1))
    assert [i["dataset_id"] for i in client.iter_registrations()] == ["inside", "inside_s3"]


# -- before reading: the Dagster run fails naming the rule, nothing lands, nothing is quoted ---------------


@pytest.fixture
def wide_service(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningMetadataCenter]:
    """A service that still allows an `old_root` the Dagster side no longer allows (the roots changed after
    registration). The Dagster side runs with the defaults: the lake and the shared directory."""
    data_dir = platform_env.data_dir
    monkeypatch.delenv("PLATFORM_STORAGE_ROOTS", raising=False)
    roots = [*platform_env.storage_roots, str(data_dir / "old_root")]
    with metadata_center(data_dir / "mc", storage_roots=roots) as running:
        monkeypatch.setenv("METADATA_CENTER_URL", running.url)
        monkeypatch.setenv("METADATA_CENTER_API_KEY", running.api_key)
        yield running


def run_of(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    (result,) = run_requested(instance, tick(instance, None))
    return result


def failure_of(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.user_failure_data.description


def assert_never_quoted(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, *texts: str) -> None:
    """Nothing of `texts` in any event of the run: errors, their causes, metadata."""
    log = "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(result.run_id))
    for text in texts:
        assert text not in log


def test_roots_changed_after_registration_fail_the_run(
    wide_service: RunningMetadataCenter, platform_env: PlatformSettings
) -> None:
    marker = secret()
    data = csv_dataset(
        platform_env.data_dir / "old_root" / "orders",
        ROWS.assign(amount=[marker] * len(ROWS)),
    )
    wide_service.client().register(payload("moved", data, rows=len(ROWS), size=data.stat().st_size))
    with dg.instance_for_test() as instance:
        result = run_of(instance)
        description = failure_of(result)
        assert "outside the allowed storage roots" in description and str(data) in description
        assert_never_quoted(instance, result, marker)
    assert not landed("moved")
    with pytest.raises(DatasetError, match="outside the allowed storage roots"):
        Dataset.get("moved").read()


def test_a_file_swapped_for_a_symlink_after_registration_is_not_read(
    wide_service: RunningMetadataCenter, platform_env: PlatformSettings, tmp_path: Path
) -> None:
    shared = platform_env.data_dir / "shared"
    data = csv_dataset(shared / "swapped")
    size = data.stat().st_size
    wide_service.client().register(payload("swapped", data.parent, rows=len(ROWS), size=size))
    marker = secret()
    target = tmp_path / "not_a_dataset.csv"
    ROWS.assign(amount=[marker] * len(ROWS)).to_csv(target, index=False)
    data.unlink()
    data.symlink_to(target)
    with dg.instance_for_test() as instance:
        result = run_of(instance)
        description = failure_of(result)
        assert "resolves outside the allowed storage roots" in description
        assert f"{data.parent}/part-0.csv" in description and str(target) not in description
        assert_never_quoted(instance, result, marker)
    assert not landed("swapped")


def test_a_file_that_does_not_parse_is_named_with_its_line_never_quoted(
    wide_service: RunningMetadataCenter, platform_env: PlatformSettings
) -> None:
    shared = platform_env.data_dir / "shared"
    marker = secret()
    broken = shared / "broken" / "part-0.csv"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        f"order_id,amount,created_at\n1,2.50,2024-01-01T10:00:00Z\n{marker}:x:0:0:/root:/bin/sh\n"
    )
    foreign = shared / "foreign.csv"  # a one-line key file read as CSV: its line would become a column name
    foreign_marker = secret()
    foreign.write_text(foreign_marker + "\n")
    client = wide_service.client()
    client.register(payload("broken", broken.parent, rows=2, size=broken.stat().st_size))
    client.register(payload("foreign", foreign, rows=0, size=foreign.stat().st_size))
    with dg.instance_for_test() as instance:
        results = run_requested(instance, tick(instance, None))
        failures = {r.dagster_run.tags["dagster/partition"]: failure_of(r) for r in results}
        assert (
            f"cannot read {broken.parent}/part-0.csv as csv: line 3, expected 3 fields, found 1"
            in (failures["broken"])
        )
        assert (
            f"cannot read {foreign} as csv: its header (line 1) has none of the 3 registered columns"
            in (failures["foreign"])
        )
        for result in results:
            assert_never_quoted(instance, result, marker, foreign_marker)
    for dataset_id in ("broken", "foreign"):
        assert not landed(dataset_id)
    with pytest.raises(DatasetError) as error:
        Dataset.get("broken").read()
    assert "line 3" in str(error.value) and marker not in str(error.value)
    assert error.value.__cause__ is None and error.value.__context__ is None


def test_a_value_that_does_not_convert_is_located_not_quoted(
    wide_service: RunningMetadataCenter, platform_env: PlatformSettings
) -> None:
    """The SDK's typed read: a CSV value that is not of its registered type is named by column and position."""
    marker = secret()
    frame = pd.DataFrame(
        {"order_id": ["1", "2"], "amount": ["1.0", "2.0"], "created_at": ["2024-01-01T00:00:00Z", marker]}
    )
    data = csv_dataset(platform_env.data_dir / "shared" / "typed", frame)
    wide_service.client().register(payload("typed", data, rows=2, size=data.stat().st_size))
    with pytest.raises(DatasetError) as error:
        Dataset.get("typed").read()
    message = str(error.value)
    assert "created_at" in message and marker not in message
    assert error.value.__cause__ is None and error.value.__context__ is None
    assert "1 value(s) do not convert, the first in data row 2" in message
