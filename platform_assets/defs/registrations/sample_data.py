"""A deterministic sample dataset "exported by Alldata's ETL", and its registration payload."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from platform_assets.lib.config import get_settings
from platform_assets.lib.domains import SampleSize

SAMPLE_DATASET_ID = "sample_orders"


def write_sample_orders(directory: Path, rows: int = 500, seed: int = 11) -> Path:
    """Write `directory/part-0.csv` (orders with a few bad values and a repeated row); return the file."""
    rng = random.Random(seed)
    lines = ["order_id,customer_id,amount,created_at"]
    for order in range(1, rows + 1):
        amount = f"{rng.uniform(3, 400):.2f}"
        lines.append(
            f"{order},{rng.randint(1001, 1200)},{amount},2026-01-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
        )
    lines[5] = (
        lines[5].rsplit(",", 2)[0] + ",n/a," + lines[5].rsplit(",", 1)[1]
    )  # a value that is not a number
    lines.append(lines[10])  # a row exported twice
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "part-0.csv"
    content = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != content:
        path.write_text(content)
    return path


def sample_export_dir() -> Path:
    """Where `make run` writes the sample export: $PLATFORM_DATA_DIR/shared/exports/sample_orders."""
    return get_settings().data_dir / "shared" / "exports" / SAMPLE_DATASET_ID


def sample_registration(path: Path) -> dict[str, Any]:
    """The registration Alldata would send for the sample export."""
    rows = sum(1 for _ in path.open()) - 1
    return {
        "dataset_id": SAMPLE_DATASET_ID,
        "name": "Sample orders export",
        "storage_path": str(path.parent),
        "format": "csv",
        "size_bytes": path.stat().st_size,
        "row_count": rows,
        "schema": {
            "columns": [
                {"name": "order_id", "type": "bigint", "nullable": False},
                {"name": "customer_id", "type": "bigint", "nullable": False},
                {"name": "amount", "type": "decimal(10,2)"},
                {"name": "created_at", "type": "timestamp"},
            ]
        },
        "tags": ["sales", "sample"],
        "metadata": {"etl_job_id": "etl_sample_orders", "source_tables": ["erp.orders"]},
    }


def write_sample(size: SampleSize) -> None:
    """`make run`'s sample: write the export and register it (a new version only when the file changed or moved)."""
    from platform_assets.metadata_center.client import MetadataCenterClient, MetadataCenterError

    # Under $PLATFORM_DATA_DIR/shared, one of the default storage roots (PLATFORM_STORAGE_ROOTS): the metadata
    # center refuses registrations anywhere else.
    payload = sample_registration(write_sample_orders(sample_export_dir()))
    client = MetadataCenterClient()
    try:
        latest = client.get(payload["dataset_id"])
    except MetadataCenterError as err:
        if err.status != 404:
            raise
        latest = None
    # The storage_path too: a data directory from before the storage roots has the sample registered under
    # $PLATFORM_DATA_DIR/exports, which is no longer readable.
    if latest is None or (latest["size_bytes"], latest["row_count"], latest["storage_path"]) != (
        payload["size_bytes"],
        payload["row_count"],
        payload["storage_path"],
    ):
        client.register(payload)
