"""The SDK against a real metadata center and real storage: a CSV dataset on the local file
system and parquet and CSV datasets on S3 (moto's server on loopback): get, read, mount, list."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from platform_assets.metadata_center.cli import datasets_cli
from platform_assets.metadata_center.client import MetadataCenterClient
from platform_assets.sdk import Dataset, DatasetError
from platform_assets_tests.conftest import PROJECT_ROOT, free_port
from platform_assets_tests.metadata_center_fixture import RunningMetadataCenter, metadata_center

COLUMNS = [
    {"name": "order_id", "type": "bigint"},
    {"name": "amount", "type": "decimal(10,2)"},
    {"name": "created_at", "type": "timestamp"},
    {"name": "zip", "type": "varchar(10)"},
]
CSV_TEXT = (
    "order_id,amount,created_at,zip\n"
    "1,10.50,2024-01-15T10:30:00Z,00123\n"
    "2,3.99,2024-01-15T11:00:00Z,98765\n"
    "3,120.00,2024-01-16T08:15:00Z,01010\n"
)


# One bucket for the module's S3 tests: the service's storage roots are fixed when it starts.
SDK_BUCKET = f"sdk-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def storage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local storage root: datasets the tests register live under it."""
    return tmp_path_factory.mktemp("sdk_storage")


def storage_roots(storage_root: Path) -> list[str]:
    # The hdfs root lets a registration through so that the SDK's own refusal of hdfs:// is what is tested.
    return [str(storage_root), f"s3://{SDK_BUCKET}", "hdfs://namenode/data"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, storage_root: Path) -> Iterator[RunningMetadataCenter]:
    with metadata_center(
        tmp_path_factory.mktemp("mc_sdk") / "platform", storage_roots=storage_roots(storage_root)
    ) as running:
        yield running


@pytest.fixture
def client(
    service: RunningMetadataCenter, storage_root: Path, monkeypatch: pytest.MonkeyPatch
) -> MetadataCenterClient:
    # The SDK's default client reads these, as a notebook would; the SDK checks the same storage roots.
    monkeypatch.setenv("METADATA_CENTER_URL", service.url)
    monkeypatch.setenv("METADATA_CENTER_API_KEY", service.api_key)
    monkeypatch.setenv("PLATFORM_STORAGE_ROOTS", ",".join(storage_roots(storage_root)))
    return service.client()


@pytest.fixture
def data_dir(storage_root: Path, tmp_path: Path) -> Path:
    """A fresh directory for this test's data, inside the storage root."""
    path = storage_root / tmp_path.name
    path.mkdir()
    return path


@pytest.fixture
def bucket(s3_bucket: str, s3_endpoint: str) -> str:
    """The module's bucket on the loopback S3 (s3_bucket sets the AWS_* variables)."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=SDK_BUCKET)
    return SDK_BUCKET


def register(client: MetadataCenterClient, storage_path: str, fmt: str, **extra: object) -> str:
    dataset_id = f"ds_{uuid.uuid4().hex[:10]}"
    client.register(
        {
            "dataset_id": dataset_id,
            "name": f"test dataset {dataset_id}",
            "storage_path": storage_path,
            "format": fmt,
            "schema": {"columns": COLUMNS},
            "tags": ["sdk-test"],
            **extra,
        }
    )
    return dataset_id


def orders_table(offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "order_id": pa.array([1 + offset, 2 + offset], pa.int64()),
            "amount": pa.array([Decimal("10.50"), Decimal("3.99")], pa.decimal128(10, 2)),
            "created_at": pa.array(
                pd.to_datetime(["2024-01-15 10:30", "2024-01-15 11:00"]), pa.timestamp("us")
            ),
            "zip": pa.array(["00123", "98765"]),
        }
    )


def test_csv_dataset_on_the_local_file_system(
    client: MetadataCenterClient, data_dir: Path, tmp_path: Path
) -> None:
    root = data_dir / "exports" / "orders"
    (root / "region=eu").mkdir(parents=True)
    (root / "region=eu" / "part-0.csv").write_text(CSV_TEXT)
    (root / "_SUCCESS").write_text("")
    dataset_id = register(client, f"file://{root}/", "csv", row_count=3)

    dataset = Dataset.get(dataset_id)  # the default client, from the environment
    assert (dataset.dataset_id, dataset.version, dataset.format, dataset.row_count) == (
        dataset_id,
        1,
        "csv",
        3,
    )
    assert [f.relative for f in dataset.files()] == ["region=eu/part-0.csv"]

    df = dataset.read()
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert df["order_id"].tolist() == [1, 2, 3]
    assert df["zip"].tolist() == ["00123", "98765", "01010"]  # registered as varchar: leading zeros kept
    assert df["created_at"].iloc[0] == pd.Timestamp("2024-01-15 10:30:00")
    assert set(df["region"]) == {"eu"}  # the hive partition directory becomes a column

    table = dataset.read(as_arrow=True, columns=["order_id", "amount", "created_at"])
    assert table.schema.field("order_id").type == pa.int64()
    assert table.schema.field("amount").type == pa.decimal128(10, 2)
    assert table.schema.field("created_at").type == pa.timestamp("us")
    assert table.column("amount").to_pylist()[2] == Decimal("120.00")

    mounted = dataset.mount(tmp_path / "mnt" / "data")
    link = mounted / "region=eu" / "part-0.csv"
    assert link.is_symlink() and link.resolve() == (root / "region=eu" / "part-0.csv").resolve()
    assert not (mounted / "_SUCCESS").exists()
    assert dataset.mount(mounted) == mounted  # idempotent


def test_a_single_local_csv_file(client: MetadataCenterClient, data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "orders.csv"
    path.write_text(CSV_TEXT)
    dataset = Dataset.get(register(client, str(path), "csv"))
    assert len(dataset.read()) == 3
    mounted = dataset.mount(tmp_path / "mnt")
    assert (mounted / "orders.csv").read_text() == CSV_TEXT


def test_parquet_dataset_on_s3(
    client: MetadataCenterClient, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    s3_bucket = bucket
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for index in range(2):
        buffer = io.BytesIO()
        pq.write_table(orders_table(offset=10 * index), buffer)
        s3.put_object(Bucket=s3_bucket, Key=f"sales/2024-01/part-{index}.parquet", Body=buffer.getvalue())
    s3.put_object(Bucket=s3_bucket, Key="sales/2024-01/_SUCCESS", Body=b"")
    dataset_id = register(client, f"s3://{s3_bucket}/sales/2024-01/", "parquet", row_count=4)

    dataset = Dataset.get(dataset_id)
    assert dataset.location.bucket == s3_bucket and dataset.location.path == "sales/2024-01/"
    df = dataset.read()
    assert sorted(df["order_id"]) == [1, 2, 11, 12]
    assert df["amount"].tolist()[:2] == [Decimal("10.50"), Decimal("3.99")]
    table = dataset.read(as_arrow=True)
    assert table.num_rows == 4 and table.schema.field("created_at").type == pa.timestamp("us")

    mounted = dataset.mount(tmp_path / "mnt" / "data")
    files = sorted(p.relative_to(mounted).as_posix() for p in mounted.rglob("*") if p.is_file())
    assert files == ["part-0.parquet", "part-1.parquet"]
    assert not any(p.is_symlink() for p in mounted.rglob("*"))
    assert pq.read_table(mounted / "part-1.parquet").column("order_id").to_pylist() == [11, 12]
    stamp = (mounted / "part-0.parquet").stat().st_mtime_ns
    dataset.mount(mounted)  # already there with the same size: kept, not downloaded again
    assert (mounted / "part-0.parquet").stat().st_mtime_ns == stamp


def test_csv_file_on_s3(client: MetadataCenterClient, bucket: str, s3_endpoint: str) -> None:
    s3_bucket = bucket
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").put_object(
        Bucket=s3_bucket, Key="exports/orders.csv", Body=CSV_TEXT.encode()
    )
    dataset = Dataset.get(register(client, f"s3a://{s3_bucket}/exports/orders.csv", "csv"))
    df = dataset.read()
    assert df["order_id"].tolist() == [1, 2, 3] and df["zip"].tolist()[0] == "00123"


def test_versions_and_list_by_tags(client: MetadataCenterClient, data_dir: Path) -> None:
    old = data_dir / "v1.csv"
    old.write_text(CSV_TEXT)
    new = data_dir / "v2.csv"
    new.write_text(CSV_TEXT + "4,1.00,2024-01-17T00:00:00Z,11111\n")
    tag = f"team-{uuid.uuid4().hex[:6]}"
    dataset_id = register(client, str(old), "csv", tags=[tag, "training-ready"])
    register_again = {
        "dataset_id": dataset_id,
        "name": "v2",
        "storage_path": str(new),
        "format": "csv",
        "schema": {"columns": COLUMNS},
        "tags": [tag, "training-ready"],
    }
    client.register(register_again)
    other = register(client, str(old), "csv", tags=[tag])

    assert len(Dataset.get(dataset_id).read()) == 4
    assert len(Dataset.get(dataset_id, version=1).read()) == 3
    listed = Dataset.list(tags=[tag, "training-ready"])
    assert [(d.dataset_id, d.version, d.name) for d in listed] == [(dataset_id, 2, "v2")]
    assert {d.dataset_id for d in Dataset.list(tags=[tag])} == {dataset_id, other}
    assert Dataset.get(dataset_id).lineage()["entity_id"] == dataset_id


def test_list_gives_the_full_metadata_that_list_pages_truncate(
    client: MetadataCenterClient, data_dir: Path
) -> None:
    """List pages carry large metadata only as a marker; Dataset.list still returns all of it."""
    path = data_dir / "big_metadata.csv"
    path.write_text(CSV_TEXT)
    tag = f"big-{uuid.uuid4().hex[:6]}"
    notes = {"notes": "x" * 20_000, "owner": "team-a"}
    dataset_id = register(client, str(path), "csv", tags=[tag], metadata=notes)
    [item] = client.list(tags=[tag]).items
    assert item.get("metadata_truncated") is True
    [listed] = Dataset.list(tags=[tag])
    assert listed.dataset_id == dataset_id and listed.metadata == notes


def test_cli_mount(
    service: RunningMetadataCenter, client: MetadataCenterClient, data_dir: Path, tmp_path: Path
) -> None:
    path = data_dir / "orders.csv"
    path.write_text(CSV_TEXT)
    dataset_id = register(client, str(path), "csv")
    view = client.get(dataset_id)
    assert view["mount_command"] == f"platform datasets mount {dataset_id} /mnt/data"
    target = tmp_path / "mnt"
    result = CliRunner().invoke(datasets_cli, ["mount", dataset_id, str(target)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target) and (target / "orders.csv").is_symlink()


def test_errors_name_the_dataset_and_the_reason(
    client: MetadataCenterClient, data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(DatasetError, match="no_such_dataset.*not registered"):
        Dataset.get("no_such_dataset")
    gone = Dataset.get(register(client, str(data_dir / "missing"), "parquet"))
    with pytest.raises(DatasetError, match="does not exist"):
        gone.read()
    hdfs = Dataset.get(register(client, "hdfs://namenode/data/x", "parquet"))
    with pytest.raises(DatasetError, match="hdfs"):
        hdfs.read()
    with pytest.raises(DatasetError, match="unreachable"):
        Dataset.get("x", client=MetadataCenterClient(f"http://127.0.0.1:{free_port()}", "k"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "orders.csv").write_text("not the dataset")
    csv = data_dir / "orders.csv"
    csv.write_text(CSV_TEXT)
    with pytest.raises(DatasetError, match="exists"):
        Dataset.get(register(client, str(csv), "csv")).mount(tmp_path / "taken")


def test_sdk_and_client_import_light() -> None:
    # Notebooks and sensors import these; the server stack and the data stack load only when used.
    code = (
        "import sys, platform_assets.sdk, platform_assets.metadata_center.client, platform_assets.metadata_center;"
        "heavy = [m for m in ('fastapi', 'sqlalchemy', 'alembic', 'uvicorn', 'pydantic', 'pandas', 'pyarrow', "
        "'s3fs', 'requests') if m in sys.modules];"
        "print(json.dumps(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json;" + code],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == []
