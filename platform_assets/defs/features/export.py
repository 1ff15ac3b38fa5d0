"""The parquet view Feast reads of the Iceberg table `features.user_stats`.

Feast's file offline store (which `materialize` and ad-hoc `get_historical_features` go through) reads parquet
files from one path; it cannot read an Iceberg table. Why an export rather than pointing Feast at the table's
data files: the table's data directory also holds the files of replaced partitions (kept until snapshot
expiry, so older snapshots stay readable), and Feast would read the old rows beside the new ones. The view is
one `<day>.parquet` per partition under `<lake>/exports/features/user_stats/`, each rewritten from the table's
current snapshot when that partition changed (Iceberg's partition metadata says which snapshot last touched
it), so a sync costs one day's rows per changed day, not the history. `_export.json` (which Feast's reader
skips, as it skips every `_`-prefixed file) records the snapshot the view shows.

Training sets never read this view: they read the table at a pinned snapshot (`training.py`).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from platform_assets.defs.features.repo import stats_source_path
from platform_assets.lib.config import PlatformSettings, get_settings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from upath import UPath

STATS_TABLE = "features/user_stats"
MANIFEST = "_export.json"


@dataclass(frozen=True)
class ExportResult:
    """What a sync of the view did: the snapshot it now shows, its days, and the days rewritten or removed."""

    path: str
    snapshot_id: int | None
    days: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


# The last change of a partition whose changing snapshot was expired (snapshot ids are positive).
EXPIRED_SNAPSHOT = -1


def table_partitions(table: Table, snapshot_id: int | None = None) -> dict[str, int]:
    """The partitions (Dagster partition keys) of a `_partition`-partitioned table at a snapshot, each with the
    id of the snapshot that last changed it; read from the table's metadata, not its data files.

    When that snapshot has been expired, Iceberg no longer knows it (null): the partition gets EXPIRED_SNAPSHOT,
    which differs from any id a sync recorded, so its export is rewritten once and then kept until it changes.
    """
    from platform_assets.lib.lake import PARTITION_COLUMN

    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
    if snapshot is None:
        return {}
    rows = table.inspect.partitions(snapshot_id=snapshot.snapshot_id).to_pylist()
    return {
        str(row["partition"][PARTITION_COLUMN]): (
            int(row["last_updated_snapshot_id"])
            if row["last_updated_snapshot_id"] is not None
            else EXPIRED_SNAPSHOT
        )
        for row in rows
        if row["record_count"] > 0
    }


def sync_stats_export(
    catalog: Catalog | None = None, settings: PlatformSettings | None = None
) -> ExportResult:
    """Bring the parquet view of `features.user_stats` in step with the table's current snapshot.

    Days whose partition changed since the last sync (or whose file is missing) are rewritten from the table,
    one day at a time; files of days no longer in the table are removed; the manifest is written last.
    """
    from platform_assets.lib.lake import (
        PARTITION_COLUMN,
        lake_path,
        load_table,
        open_catalog,
        partition_filter,
        read_arrow,
    )

    settings = settings or get_settings()
    catalog = catalog or open_catalog()
    directory = lake_path(stats_source_path(settings))
    table = load_table(catalog, STATS_TABLE)
    snapshot = table.current_snapshot() if table is not None else None
    if snapshot is None:
        return ExportResult(path=str(directory), snapshot_id=None)
    partitions = table_partitions(table, snapshot.snapshot_id)
    exported = _read_manifest(directory)
    present = (
        {p.name.removesuffix(".parquet") for p in directory.iterdir() if p.name.endswith(".parquet")}
        if directory.exists()
        else set()
    )
    written = []
    for day, changed_in in sorted(partitions.items()):
        if day in present and exported.get(day) == str(changed_in):
            continue
        rows = read_arrow(
            catalog,
            STATS_TABLE,
            snapshot_id=snapshot.snapshot_id,
            row_filter=partition_filter(PARTITION_COLUMN, [day]),
        )
        _write_parquet(directory, f"{day}.parquet", rows)
        written.append(day)
    removed = sorted(present - set(partitions))
    for day in removed:
        (directory / f"{day}.parquet").unlink()
    if written or removed or set(exported) != set(partitions):
        manifest = {
            "table": "features.user_stats",
            "snapshot_id": str(snapshot.snapshot_id),
            # Snapshot ids as strings: they are 64-bit, beyond what a JSON reader in JavaScript keeps exactly.
            "partitions": {day: str(changed_in) for day, changed_in in sorted(partitions.items())},
        }
        _local_dir(directory)
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return ExportResult(
        path=str(directory),
        snapshot_id=snapshot.snapshot_id,
        days=sorted(partitions),
        written=written,
        removed=removed,
    )


def _read_manifest(directory: UPath) -> dict[str, str]:
    path = directory / MANIFEST
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("partitions", {}))
    except (ValueError, AttributeError):
        # A damaged manifest only costs a full rewrite of the view.
        return {}


def _is_local(directory: UPath) -> bool:
    return directory.protocol in ("", "file", "local")


def _local_dir(directory: UPath) -> None:
    if _is_local(directory):
        Path(str(directory)).mkdir(parents=True, exist_ok=True)


def _write_parquet(directory: UPath, name: str, rows: pa.Table) -> None:
    """Replace `directory/name` so a reader sees the old file or the new one, never half of one.

    Locally: written beside the directory, then renamed into it (an atomic replace; a temporary file inside it
    would be read by Feast as a broken partition). On S3 one PUT is atomic already.
    """
    import pyarrow.parquet as pq

    if _is_local(directory):
        target = Path(str(directory))
        staging = target.parent / f".{target.name}.staging"
        staging.mkdir(parents=True, exist_ok=True)
        target.mkdir(parents=True, exist_ok=True)
        temporary = staging / f"{uuid.uuid4().hex}.parquet"
        try:
            pq.write_table(rows, temporary, compression="zstd")
            os.replace(temporary, target / name)
        finally:
            temporary.unlink(missing_ok=True)
        return
    with (directory / name).open("wb") as handle:
        pq.write_table(rows, handle, compression="zstd")
