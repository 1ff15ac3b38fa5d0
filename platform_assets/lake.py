"""The lake, for readers and operators: list its tables, read any version of one, see its history, maintain it.

Every lake asset `<layer>/<name>` is the Apache Iceberg table `<layer>.<name>` in the catalog `platform`
(PLATFORM_CATALOG_URI: SQLite by default, PostgreSQL, or an Iceberg REST catalog); data files live under
PLATFORM_LAKE_URI (a directory or s3://…). Each Dagster materialization is one snapshot, whose summary carries
the run id (`dagster-run-id`) and the partition key (`dagster-partition-key`).

    >>> from platform_assets import lake
    >>> lake.tables()
    ['cleaned/reviews', 'quarantine/reviews', 'raw/reviews']
    >>> [(s.snapshot_id, s.run_id, s.rows_added) for s in lake.history("cleaned/reviews")]
    [(5937117119577467004, '0b6f…', 1940), (3224052906410112257, '7c1d…', 2013)]
    >>> lake.read_table("cleaned/reviews", snapshot_id=5937117119577467004).num_rows
    1940
    >>> lake.catalog().load_table("cleaned.reviews").scan(limit=5).to_pandas()   # plain pyiceberg

Maintenance (`maintain`, the `lake_maintenance_job`, `platform lake maintain`) expires snapshots older than the
retention (tagged snapshots and branch heads are kept) and rewrites partitions made of many small files into
one, rows unchanged. See docs/lake.md.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from platform_assets.lib.config import get_settings, redact_url
from platform_assets.lib.lake import (
    PARTITION_COLUMN,
    PARTITION_KEY_PROPERTY,
    ROWS_PER_FILE,
    RUN_ID_PROPERTY,
    load_table,
    open_catalog,
    read_arrow,
    table_name,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

# Compaction defaults: a partition with more than SMALL_FILES_LIMIT data files under SMALL_FILE_BYTES is
# rewritten. Files of a streamed write are up to ROWS_PER_FILE rows (hundreds of MiB), so "small" files are
# the ones many small runs (daily deliveries, re-runs of one partition) leave behind.
SMALL_FILE_BYTES = 32 * 1024 * 1024
SMALL_FILES_LIMIT = 4
# Snapshot summary property marking a snapshot written by maintenance (its value: what was done).
MAINTENANCE_PROPERTY = "platform-maintenance"


def catalog() -> Catalog:
    """The configured pyiceberg catalog `platform` (PLATFORM_CATALOG_URI, data files under PLATFORM_LAKE_URI).

    >>> table = catalog().load_table("cleaned.reviews")
    >>> table.scan(row_filter="rating <= 2", selected_fields=("review_id", "text")).to_arrow()
    """
    return open_catalog()


def _known(cat: Catalog) -> str:
    names = tables(cat)
    shown = ", ".join(names[:20]) + (f", … ({len(names)} in all)" if len(names) > 20 else "")
    return shown or "none yet"


def _load(cat: Catalog, key: str | Sequence[str]) -> Table:
    """The table of `key`, or a LookupError naming it and the catalog's tables."""
    table = load_table(cat, key)
    if table is None:
        name = table_name(key)
        raise LookupError(
            f"no table {name} in the lake catalog ({redact_url(get_settings().catalog_uri)}); "
            f"tables: {_known(cat)}"
        )
    return table


def _resolve_snapshot(table: Table, name: str, snapshot_id: int | None, tag: str | None) -> int | None:
    """The snapshot id to read (None: the current one); a LookupError names a tag or snapshot the table lacks."""
    if snapshot_id is not None and tag is not None:
        raise ValueError(f"{name}: give a snapshot id or a tag, not both")
    if tag is not None:
        ref = table.metadata.refs.get(tag)
        if ref is None:
            tags = sorted(table.metadata.refs)
            raise LookupError(f"{name} has no tag or branch {tag!r}; it has: {', '.join(tags) or 'none'}")
        return ref.snapshot_id
    if snapshot_id is not None and table.snapshot_by_id(int(snapshot_id)) is None:
        raise LookupError(
            f"{name} has no snapshot {snapshot_id} (expired, or the id of another table's snapshot); "
            f"see `platform lake history {name.replace('.', '/', 1)}`"
        )
    return int(snapshot_id) if snapshot_id is not None else None


def read_table(
    key: str | Sequence[str],
    *,
    snapshot_id: int | None = None,
    tag: str | None = None,
    columns: Sequence[str] | None = None,
    limit: int | None = None,
    catalog: Catalog | None = None,
) -> pa.Table:
    """A lake table as Arrow: the current snapshot, or the one of `snapshot_id` or `tag` (time travel).

    `key`: `"<layer>/<name>"` (or `"<layer>.<name>"`). `columns`: only these columns. `limit`: at most this many
    rows (read file by file, so a large table is not read whole). The helper column `_partition` (the Dagster
    partition key of a partitioned asset without a partition column of its own) is left out unless asked for.

        >>> before = [s for s in history("cleaned/reviews") if s.operation == "append"][-2].snapshot_id
        >>> read_table("cleaned/reviews", snapshot_id=before).num_rows        # the table as it was
        >>> read_table("cleaned/reviews", tag="train-user_purchase_training_set-1f0c…")  # a pinned input

    Raises LookupError naming the table, snapshot or tag that does not exist.
    """
    cat = catalog or open_catalog()
    name = table_name(key)
    table = _load(cat, key)
    resolved = _resolve_snapshot(table, name, snapshot_id, tag)
    if limit is None:
        return read_arrow(cat, key, snapshot_id=resolved, columns=columns)
    # pyiceberg stops reading files once `limit` rows are read.
    arrow = table.scan(
        selected_fields=tuple(columns) if columns else ("*",), snapshot_id=resolved, limit=limit
    ).to_arrow()
    if PARTITION_COLUMN in arrow.column_names and not (columns and PARTITION_COLUMN in columns):
        arrow = arrow.drop_columns([PARTITION_COLUMN])
    return arrow


@dataclass(frozen=True)
class SnapshotRecord:
    """One version of a lake table (a write is one snapshot, or two of one commit: see `history`)."""

    snapshot_id: int
    parent_id: int | None
    time: datetime  # UTC
    operation: str  # append, delete, overwrite, replace
    run_id: str | None  # the Dagster run that committed it
    partition_key: str | None  # the Dagster partition it wrote, for a partitioned asset
    rows_added: int
    rows_removed: int
    total_rows: int
    tags: tuple[str, ...] = ()  # tags (and branches other than main) pointing at it
    current: bool = False  # the table's current snapshot
    properties: Mapping[str, str] = field(default_factory=dict)  # the whole snapshot summary

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the time as ISO 8601, ids as integers."""
        record = asdict(self)
        record["time"] = self.time.isoformat()
        record["tags"] = list(self.tags)
        record["properties"] = dict(self.properties)
        return record


def history(key: str | Sequence[str], *, catalog: Catalog | None = None) -> list[SnapshotRecord]:
    """The snapshots of a lake table that are still kept, oldest first.

        >>> for s in history("raw/reviews"):
        ...     print(s.snapshot_id, s.time, s.operation, s.run_id, s.partition_key, s.rows_added, s.tags)

    A write of a partition that already had rows is two snapshots of one commit (a `delete` of the old rows,
    then an `append` of the new ones), both with the run id. Raises LookupError for an unknown table.
    """
    cat = catalog or open_catalog()
    table = _load(cat, key)
    current = table.current_snapshot()
    refs: dict[int, list[str]] = {}
    for ref_name, ref in table.metadata.refs.items():
        if ref_name != "main":
            refs.setdefault(ref.snapshot_id, []).append(ref_name)
    records = []
    for snapshot in sorted(table.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0)):
        summary = snapshot.summary
        properties = {k: str(v) for k, v in summary.additional_properties.items()} if summary else {}
        records.append(
            SnapshotRecord(
                snapshot_id=snapshot.snapshot_id,
                parent_id=snapshot.parent_snapshot_id,
                time=datetime.fromtimestamp(snapshot.timestamp_ms / 1000, tz=UTC),
                operation=summary.operation.value if summary else "unknown",
                run_id=properties.get(RUN_ID_PROPERTY),
                partition_key=properties.get(PARTITION_KEY_PROPERTY),
                rows_added=int(properties.get("added-records", 0)),
                rows_removed=int(properties.get("deleted-records", 0)),
                total_rows=int(properties.get("total-records", 0)),
                tags=tuple(sorted(refs.get(snapshot.snapshot_id, []))),
                current=current is not None and snapshot.snapshot_id == current.snapshot_id,
                properties=properties,
            )
        )
    return records


def tables(catalog: Catalog | None = None) -> list[str]:
    """Every lake table, as `<layer>/<name>`, sorted.

    >>> tables()
    ['cleaned/reviews', 'features/user_features', 'quarantine/reviews', 'raw/reviews', 'raw/user_events']
    """
    cat = catalog or open_catalog()
    names = []
    for namespace in cat.list_namespaces():
        for identifier in cat.list_tables(namespace):
            names.append("/".join(identifier) if len(identifier) == 2 else ".".join(identifier))
    return sorted(names)


@dataclass(frozen=True)
class TableInfo:
    """A lake table at its current snapshot."""

    name: str  # <layer>/<name>
    snapshot_id: int | None
    updated: datetime | None  # UTC
    total_rows: int
    data_files: int
    snapshots: int
    partitioned_by: str | None
    location: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        record = asdict(self)
        record["updated"] = self.updated.isoformat() if self.updated else None
        return record


def describe(key: str | Sequence[str], *, catalog: Catalog | None = None) -> TableInfo:
    """The table's current snapshot, rows, data files, partition column and location (LookupError if unknown)."""
    cat = catalog or open_catalog()
    table = _load(cat, key)
    snapshot = table.current_snapshot()
    summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    spec = table.spec()
    partitioned = ", ".join(table.schema().find_column_name(f.source_id) or "?" for f in spec.fields)
    return TableInfo(
        name=table_name(key).replace(".", "/", 1),
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        updated=datetime.fromtimestamp(snapshot.timestamp_ms / 1000, tz=UTC) if snapshot else None,
        total_rows=int(summary.get("total-records", 0)),
        data_files=int(summary.get("total-data-files", 0)),
        snapshots=len(table.metadata.snapshots),
        partitioned_by=partitioned or None,
        location=table.location(),
    )


# Maintenance


@dataclass
class MaintenanceReport:
    """What maintenance did to one table."""

    table: str  # <layer>/<name>
    snapshots_before: int = 0
    snapshots_expired: int = 0
    files_before: int = 0
    files_after: int = 0
    partitions_compacted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why a partition or step was left alone

    def summary(self) -> str:
        """One line for a log."""
        text = (
            f"{self.table}: {self.snapshots_expired} of {self.snapshots_before} snapshot(s) expired; "
            f"data files {self.files_before} -> {self.files_after}"
        )
        if self.partitions_compacted:
            text += f" ({len(self.partitions_compacted)} partition(s) compacted)"
        if self.skipped:
            text += "; skipped: " + "; ".join(self.skipped)
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def expire_snapshots(
    key: str | Sequence[str], older_than: datetime, *, catalog: Catalog | None = None
) -> list[int]:
    """Expire the table's snapshots committed before `older_than` (a datetime; naive means UTC), except
    tagged snapshots and branch heads (the current snapshot is the head of `main`). Returns the expired ids.

    pyiceberg removes the snapshots from the table's metadata only: data files no longer referenced stay on
    storage (delete them with a tool that removes orphan files, e.g. Spark's `remove_orphan_files`).
    """
    cat = catalog or open_catalog()
    table = _load(cat, key)
    cutoff = older_than if older_than.tzinfo else older_than.replace(tzinfo=UTC)
    cutoff_ms = int(cutoff.timestamp() * 1000)
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    expired = [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.timestamp_ms < cutoff_ms and s.snapshot_id not in protected
    ]
    if expired:
        # by_ids rather than older_than(): the ids are the ones reported, and nothing is committed when none.
        table.maintenance.expire_snapshots().by_ids(expired).commit()
    return expired


def _data_files(table: Table, snapshot_id: int) -> list[Any]:
    return [task.file for task in table.scan(snapshot_id=snapshot_id).plan_files()]


def compact(
    key: str | Sequence[str],
    *,
    small_file_bytes: int = SMALL_FILE_BYTES,
    small_files_limit: int = SMALL_FILES_LIMIT,
    run_id: str | None = None,
    catalog: Catalog | None = None,
    log: Callable[[str], None] | None = None,
) -> MaintenanceReport:
    """Rewrite each partition (or the unpartitioned table) holding more than `small_files_limit` data files
    smaller than `small_file_bytes` into as few files as possible (one per ROWS_PER_FILE rows), rows unchanged.

    Like a write of the IO manager (`lib.lake.write_table`), one partition is one commit: delete the
    partition's files, add the new ones. The rows come from the snapshot current when the partition's rewrite
    starts, and the commit requires that snapshot to still be current: if a run wrote to the table meanwhile,
    the commit fails, the new files are removed and the partition is reported as skipped (the next maintenance
    compacts it), so compaction never puts back rows a run has replaced. Rows are streamed batch by batch.
    """
    cat = catalog or open_catalog()
    name = table_name(key)
    table = _load(cat, key)
    report = MaintenanceReport(table=name.replace(".", "/", 1))
    snapshot = table.current_snapshot()
    if snapshot is None:
        return report
    files = _data_files(table, snapshot.snapshot_id)
    report.files_before = report.files_after = len(files)
    spec = table.spec()
    if len(spec.fields) > 1 or any(str(f.transform) != "identity" for f in spec.fields):
        report.skipped.append(
            f"partition spec {spec} is not one identity column (not written by the platform)"
        )
        return report
    column = table.schema().find_column_name(spec.fields[0].source_id) if spec.fields else None
    by_partition: dict[Any, list[Any]] = {}
    for data_file in files:
        if data_file.spec_id != spec.spec_id:
            report.skipped.append(f"files of an older partition spec ({data_file.spec_id}) present")
            return report
        value = data_file.partition[0] if column is not None else None
        by_partition.setdefault(value, []).append(data_file)
    compacted = False
    for value, partition_files in sorted(by_partition.items(), key=lambda item: str(item[0])):
        small = [f for f in partition_files if f.file_size_in_bytes < small_file_bytes]
        if len(small) <= small_files_limit:
            continue
        label = f"{column}={value}" if column is not None else "(whole table)"
        # Each partition is read at the snapshot current now (a run may have written another partition since
        # the files were planned); the commit requires that snapshot to still be current.
        table = cat.load_table(name)
        outcome = _rewrite_partition(table, column, value, run_id)
        if isinstance(outcome, int):
            compacted = True
            report.partitions_compacted.append(label)
            if log:
                log(f"{name} {label}: {len(partition_files)} data files rewritten as {outcome}")
        else:
            report.skipped.append(f"{label}: {outcome}")
            if log:
                log(f"{name} {label}: not compacted: {outcome}")
    if compacted:
        table = cat.load_table(name)
        report.files_after = len(_data_files(table, table.current_snapshot().snapshot_id))
    return report


def _rewrite_partition(table: Table, column: str | None, value: Any, run_id: str | None) -> int | str:
    """Rewrite one partition at the table's current snapshot: the number of files written, or why it was left
    alone."""
    import pyarrow.parquet as pq
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import AlwaysTrue, EqualTo, IsNull

    if column is None:
        row_filter: Any = AlwaysTrue()
    else:
        row_filter = IsNull(column) if value is None else EqualTo(column, value)
    snapshot_id = table.current_snapshot().snapshot_id
    schema = table.schema().as_arrow()
    directory = f"{table.location().rstrip('/')}/data"
    if column is not None:
        directory += f"/{column}={quote(str(value), safe='')}"
    paths: list[str] = []
    writer = sink = None
    rows_in_file = 0
    try:
        try:
            reader = table.scan(row_filter=row_filter, snapshot_id=snapshot_id).to_arrow_batch_reader()
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                if batch.schema != schema:
                    batch = batch.cast(schema)
                if writer is None or rows_in_file >= ROWS_PER_FILE:
                    if writer is not None:
                        writer.close()
                        sink.close()
                    path = f"{directory}/{uuid.uuid4().hex}.parquet"
                    sink = table.io.new_output(path).create(overwrite=True)
                    writer = pq.ParquetWriter(sink, schema, compression="zstd")
                    paths.append(path)
                    rows_in_file = 0
                writer.write_batch(batch)
                rows_in_file += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
                sink.close()
        properties = {MAINTENANCE_PROPERTY: "compaction"}
        if run_id:
            properties[RUN_ID_PROPERTY] = run_id
        # `table` is still at `snapshot_id`: the transaction requires `main` to point there when it commits.
        with table.transaction() as txn:
            txn.delete(row_filter, snapshot_properties=properties)
            if paths:
                txn.add_files(paths, snapshot_properties=properties, check_duplicate_files=False)
    except CommitFailedException:
        _remove(table, paths)
        return "the table changed while compacting (a run wrote to it); the next maintenance retries"
    except BaseException:
        _remove(table, paths)
        raise
    return len(paths)


def _remove(table: Table, paths: list[str]) -> None:
    for path in paths:
        # An orphan file is harmless (no snapshot references it): a failed delete is not an error.
        with contextlib.suppress(OSError):
            table.io.delete(path)


def maintain(
    keys: Sequence[str] | None = None,
    *,
    older_than_days: float | None = None,
    small_file_bytes: int = SMALL_FILE_BYTES,
    small_files_limit: int = SMALL_FILES_LIMIT,
    run_id: str | None = None,
    catalog: Catalog | None = None,
    log: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> list[MaintenanceReport]:
    """Maintain every lake table (or `keys`): expire snapshots older than `older_than_days` (default
    PLATFORM_SNAPSHOT_RETENTION_DAYS, 7), keeping tagged ones and branch heads, then compact small files.

        >>> for report in maintain(older_than_days=7):
        ...     print(report.summary())
        raw/reviews: 12 of 14 snapshot(s) expired; data files 9 -> 2 (1 partition(s) compacted)
    """
    cat = catalog or open_catalog()
    days = get_settings().snapshot_retention_days if older_than_days is None else older_than_days
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    reports = []
    for key in keys if keys is not None else tables(cat):
        table = _load(cat, key)
        before = len(table.metadata.snapshots)
        expired = expire_snapshots(key, cutoff, catalog=cat)
        if log and expired:
            log(f"{table_name(key)}: expired {len(expired)} snapshot(s) older than {cutoff.isoformat()}")
        report = compact(
            key,
            small_file_bytes=small_file_bytes,
            small_files_limit=small_files_limit,
            run_id=run_id,
            catalog=cat,
            log=log,
        )
        report.snapshots_before = before
        report.snapshots_expired = len(expired)
        reports.append(report)
        if log:
            log(report.summary())
    return reports
