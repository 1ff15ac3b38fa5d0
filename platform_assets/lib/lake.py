"""The lake: Apache Iceberg tables in a catalog, data files under one base URI (a local directory or s3://…).

Every lake asset `<layer>/<name>` is the Iceberg table `<layer>.<name>` (namespace = layer) in the catalog
`platform` (`PLATFORM_CATALOG_URI`: pyiceberg's SQL catalog on SQLite by default or on PostgreSQL, or an
Iceberg REST catalog). A partitioned asset's table is partitioned by identity on its partition column, and
a run of a partition replaces exactly that partition's rows.

Why a small writer on pyiceberg rather than dagster-iceberg's IO managers: dagster-iceberg turns every output
into one in-memory `pa.Table` before writing (a delivery of millions of rows would sit in memory whole), and
its output metadata carries no snapshot id for pinning. Here an output may be a stream of Arrow record
batches (a `RecordBatchReader`, a lazy Daft frame): batches go to parquet files as they come, and the files
join the table in one transaction (delete the partition, add the files), one atomic commit. A reader sees
the old partition or the new one, never a mix, and a failed run leaves the table as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import dagster as dg
from pydantic import Field
from upath import UPath

from platform_assets.lib.config import get_settings, is_remote_uri, redact_url

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

CATALOG_NAME = "platform"
DEFAULT_NAMESPACE = "default"
# The column a partitioned table is partitioned by when the asset does not name one of its own columns
# (definition metadata `lake/partition_column`); it holds the Dagster partition key and is not handed back.
PARTITION_COLUMN = "_partition"
PARTITION_COLUMN_METADATA = "lake/partition_column"
# Definition metadata for a partitioned asset whose partitions have different schemas (a registered dataset
# each): every partition is a table of its own, `<layer>.<name>__<partition key>`, replaced whole.
TABLE_PER_PARTITION_METADATA = "lake/table_per_partition"
# Rows per data file: large enough for efficient scans, small enough that one file never holds a delivery.
ROWS_PER_FILE = 1_000_000
# Tries to add a write's new columns when other runs change the table's schema at the same time.
SCHEMA_UPDATE_ATTEMPTS = 5
# Rows of a staged write kept for the output's preview.
PREVIEW_ROWS = 10
# The pandas dtypes of the latest write, so a pandas round trip gives back the frame's dtypes.
PANDAS_METADATA_PROPERTY = "platform.pandas-metadata"
RUN_ID_PROPERTY = "dagster-run-id"
PARTITION_KEY_PROPERTY = "dagster-partition-key"
NAME_MAPPING_PROPERTY = "schema.name-mapping.default"


def lake_path(base_uri: str, storage_options: dict | None = None) -> UPath:
    """A UPath for a lake URI with the right credentials (S3 options come from the environment)."""
    options = storage_options if storage_options is not None else get_settings().storage_options_for(base_uri)
    return UPath(base_uri, **options)


def _warehouse(lake_uri: str) -> str:
    return lake_uri if is_remote_uri(lake_uri) else f"file://{lake_uri}"


def open_catalog(catalog_uri: str | None = None, lake_uri: str | None = None) -> Catalog:
    """The lake's pyiceberg catalog (`platform`): SQL on sqlite:// or postgresql://, REST on http(s)://.

    Data files go under `lake_uri` (default PLATFORM_LAKE_URI); S3 credentials come from the environment.
    """
    settings = get_settings()
    uri = catalog_uri or settings.catalog_uri
    warehouse = _warehouse(lake_uri or settings.lake_uri)
    properties = {"warehouse": warehouse, **settings.s3.iceberg_properties()}
    if uri.startswith(("http://", "https://")):
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(CATALOG_NAME, uri=uri, **properties)
    if uri.startswith(("postgresql://", "postgres://")):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; the platform ships psycopg 3.
        uri = "postgresql+psycopg://" + uri.split("://", 1)[1]
    if not uri.startswith(("sqlite:", "postgresql+")):
        raise ValueError(
            f"PLATFORM_CATALOG_URI={redact_url(uri)!r} is not a catalog URL: use sqlite:///path, "
            "postgresql://user@host/db or an Iceberg REST catalog's http(s):// URL"
        )
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(CATALOG_NAME, uri=uri, **properties)


def table_name(key: dg.AssetKey | str | Sequence[str]) -> str:
    """`raw/reviews`, `["raw", "reviews"]` or AssetKey(["raw", "reviews"]) → `raw.reviews` (namespace = layer;
    a key of one part, `numbers`, is `default.numbers`)."""
    if isinstance(key, dg.AssetKey):
        parts = list(key.path)
    elif isinstance(key, str):
        parts = key.replace(".", "/").split("/") if "/" in key or "." in key else [key]
    else:
        parts = list(key)
    if len(parts) == 1:
        # An asset key without a layer (a one-off or test asset) lives in the namespace `default`.
        parts = [DEFAULT_NAMESPACE, *parts]
    return f"{parts[0]}.{'__'.join(parts[1:])}"


def load_table(catalog: Catalog, key: dg.AssetKey | str | Sequence[str]) -> Table | None:
    """The Iceberg table of a lake asset, or None when nothing was written yet."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        return catalog.load_table(table_name(key))
    except (NoSuchTableError, NoSuchNamespaceError):
        return None


# Writing


def iceberg_compatible_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with the types Iceberg (format v2) cannot store replaced by ones it can.

    Nanosecond timestamps become microseconds, untyped all-null columns strings, unsigned integers int64,
    dictionaries their values, fixed-size lists (vectors) lists; nested types are converted likewise.
    """
    import pyarrow as pa

    def convert(kind: pa.DataType) -> pa.DataType:
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            return pa.timestamp("us", tz=kind.tz)
        if pa.types.is_null(kind):
            return pa.string()
        if pa.types.is_unsigned_integer(kind):
            return pa.int64()
        if pa.types.is_dictionary(kind):
            return convert(kind.value_type)
        if pa.types.is_fixed_size_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list(kind):
            return pa.list_(convert(kind.value_type))
        if pa.types.is_struct(kind):
            return pa.struct([field.with_type(convert(field.type)) for field in kind])
        if pa.types.is_large_string(kind):
            return pa.string()
        return kind

    return pa.schema([field.with_type(convert(field.type)) for field in schema], metadata=schema.metadata)


@dataclass(frozen=True)
class WriteResult:
    """What one write committed."""

    table: str
    snapshot_id: int | None
    rows: int
    files: int
    total_rows: int
    location: str
    schema: pa.Schema


def _batches(obj: Any) -> tuple[pa.Schema | None, Iterator[pa.RecordBatch]]:
    """The object's Arrow schema (None when only its batches will tell) and its record batches, streamed."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(obj, pd.DataFrame):
        table = pa.Table.from_pandas(obj, preserve_index=False)
        return table.schema, iter(table.to_batches(max_chunksize=256_000))
    if isinstance(obj, pa.Table):
        return obj.schema, iter(obj.to_batches(max_chunksize=256_000))
    if isinstance(obj, pa.RecordBatchReader):
        return obj.schema, iter(obj)
    if isinstance(obj, pa.RecordBatch):
        return obj.schema, iter([obj])
    if type(obj).__module__.startswith("daft"):
        return None, _daft_batches(obj)
    raise TypeError(
        f"the lake stores pandas DataFrames, Arrow tables or record batch readers and Daft DataFrames, "
        f"not {type(obj).__name__}"
    )


def _daft_batches(frame: Any) -> Iterator[pa.RecordBatch]:
    for part in frame.to_arrow_iter():
        yield from (part.to_batches() if hasattr(part, "to_batches") else [part])


class TableWriter:
    """Writes record batches to new parquet files of a lake table (or of one partition of it); nothing is
    visible to readers until `commit`, which replaces the partition (or the table) by those files in one
    snapshot. `abort` (or leaving a `with` block on an error) deletes the files.

    An asset that produces a large dataset in pieces (a delivery read in chunks) writes them here as they come
    and returns the finished writer as its output: the lake IO manager commits it, so the rows are written once
    and never held together in memory. Batches may bring new columns (the table gains them by name; earlier
    files read them as null).
    """

    def __init__(
        self,
        catalog: Catalog,
        key: dg.AssetKey | str | Sequence[str],
        *,
        partition_column: str | None = None,
        partition_key: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.name = table_name(key)
        self.partition_key = partition_key
        self.partition_column = (partition_column or PARTITION_COLUMN) if partition_key is not None else None
        self.paths: list[str] = []
        self.rows = 0
        # Nulls per column over every row written (a structure check reads them instead of the rows).
        self.null_counts: dict[str, int] = {}
        # The first rows written, for a preview; the pandas dtypes of the first frame written.
        self.head: pa.Table | None = None
        self.pandas_metadata: bytes | None = None
        self._table: Table | None = None
        self._file_schema: pa.Schema | None = None
        self._writer: _ClosingWriter | None = None
        self._rows_in_file = 0
        self._finished = False

    @property
    def schema(self) -> pa.Schema | None:
        """The table's Arrow schema as the files are written (None before the first batch)."""
        return self._file_schema

    def write(self, data: Any) -> None:
        """Append rows: a pandas DataFrame, an Arrow table, record batch or reader, or a Daft DataFrame."""
        if self._finished:
            raise RuntimeError(f"{self.name}: the writer is finished; nothing more can be written")
        import pyarrow as pa

        schema, batches = _batches(data)
        if self.pandas_metadata is None and _is_pandas(data) and schema is not None:
            # The Arrow conversion of a frame carries its dtypes: recorded from there, not inferred again.
            self.pandas_metadata = (schema.metadata or {}).get(b"pandas")
        for batch in batches:
            self._write_batch(batch)
        if self._file_schema is None and schema is not None:
            # No rows yet: the schema alone creates the table, so an empty output still writes its partition.
            self._write_batch(pa.RecordBatch.from_pylist([], schema=schema))

    def _write_batch(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        column, key = self.partition_column, self.partition_key
        if key is not None and column not in batch.schema.names:
            batch = batch.append_column(column, pa.array([key] * batch.num_rows, pa.string()))
        if self._file_schema is None or not set(batch.schema.names) <= set(self._file_schema.names):
            self._close_file()
            self._table = _ensure_table(
                self.catalog, self.name, iceberg_compatible_schema(batch.schema), column
            )
            self._file_schema = self._table.schema().as_arrow()
        if batch.num_rows == 0:
            return
        batch = _conform(batch, self._file_schema)
        if key is not None:
            wrong = pc.sum(pc.invert(pc.fill_null(pc.equal(batch.column(column), key), False))).as_py()
            if wrong:
                raise ValueError(
                    f"{self.name}: {wrong} rows of partition {key!r} have another value in its partition "
                    f"column {column!r}"
                )
        if self._writer is None or self._rows_in_file >= ROWS_PER_FILE:
            self._close_file()
            assert self._table is not None
            directory = f"{self._table.location().rstrip('/')}/data"
            if key is not None:
                directory += f"/{column}={quote(key, safe='')}"
            self._writer, path = _open_file(self._table, directory, self._file_schema)
            self.paths.append(path)
            self._rows_in_file = 0
        self._writer.write_batch(batch)
        self.rows += batch.num_rows
        self._rows_in_file += batch.num_rows
        for name, values in zip(batch.schema.names, batch.columns, strict=True):
            self.null_counts[name] = self.null_counts.get(name, 0) + values.null_count
        if self.head is None:
            self.head = pa.Table.from_batches([batch.slice(0, PREVIEW_ROWS)])

    def _close_file(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def finish(self) -> TableWriter:
        """Close the last file: the writer now holds a complete, uncommitted version of the data."""
        self._close_file()
        self._finished = True
        return self

    def commit(
        self,
        snapshot_properties: Mapping[str, str] | None = None,
        pandas_metadata: bytes | None = None,
        *,
        record_dtypes: bool = True,
    ) -> WriteResult:
        """Replace the partition (or the table) by the rows written, in one snapshot.

        The table records `pandas_metadata`, or with `record_dtypes` the dtypes of the first frame written, so a
        pandas reader gets them back."""
        if pandas_metadata is None and record_dtypes:
            pandas_metadata = self.pandas_metadata
        self.finish()
        if self._table is None:
            raise ValueError(f"{self.name}: nothing was written, so the table's schema is unknown")
        properties = {k: str(v) for k, v in (snapshot_properties or {}).items()}
        if self.partition_key is not None:
            properties[PARTITION_KEY_PROPERTY] = self.partition_key
        try:
            _commit(
                self.catalog,
                self.name,
                self.paths,
                self.partition_column,
                self.partition_key,
                properties,
                pandas_metadata,
            )
        except BaseException:
            self.abort()
            raise
        table = self.catalog.load_table(self.name)
        snapshot = table.current_snapshot()
        total = int(snapshot.summary.get("total-records", 0)) if snapshot and snapshot.summary else 0
        assert self._file_schema is not None
        return WriteResult(
            table=self.name,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            rows=self.rows,
            files=len(self.paths),
            total_rows=total,
            location=table.location(),
            schema=self._file_schema,
        )

    def abort(self) -> None:
        """Delete the files written: they belong to no snapshot."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._close_file()
        self._finished = True
        if self._table is not None:
            for path in self.paths:
                with contextlib.suppress(OSError):
                    self._table.io.delete(path)
        self.paths = []

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self.abort()


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas")


def _conform(batch: pa.RecordBatch, file_schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with the table's columns, in its order and types (columns it lacks as nulls)."""
    import pyarrow as pa

    columns = []
    for field in file_schema:
        if field.name in batch.schema.names:
            column = batch.column(field.name)
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            columns.append(column.cast(field.type) if column.type != field.type else column)
        else:
            columns.append(pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(columns, schema=file_schema)


def write_table(
    catalog: Catalog,
    key: dg.AssetKey | str | Sequence[str],
    data: Any,
    *,
    partition_column: str | None = None,
    partition_key: str | None = None,
    snapshot_properties: Mapping[str, str] | None = None,
    pandas_metadata: bytes | None = None,
) -> WriteResult:
    """Replace the table's rows (or, with `partition_key`, that partition's rows) with `data`, in one commit.

    `data`: a pandas DataFrame, an Arrow table, a RecordBatchReader or a Daft DataFrame, written batch by batch.
    When `partition_key` is given and `partition_column` is absent from the data, the column is added holding
    the key. The table is created on the first write and gains new columns by name (a column whose type
    changes incompatibly fails with the column named).
    """
    with TableWriter(catalog, key, partition_column=partition_column, partition_key=partition_key) as writer:
        writer.write(data)
        if writer.schema is None:
            raise ValueError(f"{writer.name}: the Daft frame produced no batches, so its schema is unknown")
        return writer.commit(snapshot_properties, pandas_metadata, record_dtypes=False)


def _open_file(table: Table, directory: str, schema: pa.Schema) -> tuple[Any, str]:
    import pyarrow.parquet as pq

    path = f"{directory}/{uuid.uuid4().hex}.parquet"
    sink = table.io.new_output(path).create(overwrite=True)
    return _ClosingWriter(pq.ParquetWriter(sink, schema, compression="zstd"), sink), path


class _ClosingWriter:
    """A ParquetWriter that also closes the stream it writes to."""

    def __init__(self, writer: Any, sink: Any) -> None:
        self._writer, self._sink = writer, sink

    def write_batch(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
        self._sink.close()


def _ensure_table(catalog: Catalog, name: str, schema: pa.Schema, partition_column: str | None) -> Table:
    """Load the table, creating it (and its namespace) or adding the columns `schema` brings."""
    from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, TableAlreadyExistsError

    namespace = name.split(".", 1)[0]
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        # Another run created it between the check and the insert (the SQL catalog then fails on its key).
        if not catalog.namespace_exists(namespace):
            raise
    try:
        table = catalog.load_table(name)
    except NoSuchTableError:
        # Created with its partition spec in one commit: a run that creates the same table at the same time
        # (two first deliveries) finds it complete, never unpartitioned for a moment.
        create = catalog.create_table_transaction(name, schema=schema)
        if partition_column is not None:
            with create.update_spec() as spec:
                spec.add_identity(partition_column)
        # Another run created it in between (the SQL catalog says so with a failed commit).
        with contextlib.suppress(TableAlreadyExistsError, CommitFailedException):
            create.commit_transaction()
        table = catalog.load_table(name)
    for attempt in range(SCHEMA_UPDATE_ATTEMPTS):
        if set(schema.names) <= set(table.schema().as_arrow().names):
            break
        try:
            with table.update_schema() as update:
                update.union_by_name(schema)
        except ValueError as err:
            raise ValueError(f"{name}: the new columns do not fit the table's schema: {err}") from err
        except CommitFailedException:
            # Another run changed the table (its own new columns) in between: look again.
            if attempt == SCHEMA_UPDATE_ATTEMPTS - 1:
                raise
        table = catalog.load_table(name)
    if partition_column is not None and not any(
        table.schema().find_column_name(f.source_id) == partition_column for f in table.spec().fields
    ):
        raise ValueError(
            f"{name} is not partitioned by {partition_column!r}; a partitioned asset needs its own table"
        )
    return table


def _commit(
    catalog: Catalog,
    name: str,
    paths: list[str],
    partition_column: str | None,
    partition_key: str | None,
    properties: dict[str, str],
    pandas_metadata: bytes | None,
) -> None:
    """Replace the partition (or the whole table) by the files at `paths` in one transaction, retried on a
    concurrent commit (another partition written at the same time)."""
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import AlwaysTrue, EqualTo
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

    @retry(
        retry=retry_if_exception_type(CommitFailedException),
        stop=stop_after_attempt(8),
        wait=wait_random_exponential(multiplier=0.1, max=3),
        reraise=True,
    )
    def commit() -> None:
        table = catalog.load_table(name)
        row_filter = EqualTo(partition_column, partition_key) if partition_key is not None else AlwaysTrue()
        with table.transaction() as txn:
            mapping = table.schema().name_mapping.model_dump_json()
            updates = (
                {NAME_MAPPING_PROPERTY: mapping}
                if table.properties.get(NAME_MAPPING_PROPERTY) != mapping
                else {}
            )
            if pandas_metadata is not None:
                updates[PANDAS_METADATA_PROPERTY] = pandas_metadata.decode()
            if updates:
                txn.set_properties(**updates)
            if table.current_snapshot() is not None:
                with warnings.catch_warnings():
                    # "Delete operation did not match any records": a partition written for the first time.
                    warnings.simplefilter("ignore", UserWarning)
                    txn.delete(row_filter, snapshot_properties=properties)
            if paths:
                txn.add_files(paths, snapshot_properties=properties, check_duplicate_files=False)

    commit()


# Reading


def scan(
    table: Table,
    *,
    row_filter: Any = None,
    columns: Sequence[str] | None = None,
    snapshot_id: int | None = None,
) -> Any:
    """A pyiceberg scan of `table` (all columns, the current snapshot unless given)."""
    from pyiceberg.expressions import AlwaysTrue

    return table.scan(
        row_filter=row_filter if row_filter is not None else AlwaysTrue(),
        selected_fields=tuple(columns) if columns else ("*",),
        snapshot_id=snapshot_id,
    )


def iter_batches(
    table: Table,
    *,
    row_filter: Any = None,
    columns: Sequence[str] | None = None,
    batch_rows: int = 100_000,
    order_by: str | None = None,
    snapshot_id: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """The table's rows (those in the files `row_filter` selects: use it for partitions) as record batches of
    at most `batch_rows` rows, one data file at a time, so memory holds one batch whatever the table's size.

    pyiceberg's own batch reader reads every selected file at once, each into a list of batches; this reads
    the files one after the other with pyarrow. `order_by`: a column by whose lower bound (from the file's
    statistics) the files are read, so that rows written in that order come back in it. Files are the
    platform's copy-on-write files: a scan that needs delete files falls back to pyiceberg's reader.
    `snapshot_id`: read the table as it was at that snapshot, with the schema it had then.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
    if snapshot is None:
        if snapshot_id is not None:
            raise LookupError(
                f"{'.'.join(table.name())} has no snapshot {snapshot_id} (expired, or from another table)"
            )
        return
    tasks = list(scan(table, row_filter=row_filter, snapshot_id=snapshot.snapshot_id).plan_files())
    schema = schema_at(table, snapshot)
    wanted = schema.as_arrow() if not columns else pa.schema([schema.as_arrow().field(c) for c in columns])
    if any(task.delete_files for task in tasks):
        reader = scan(
            table, row_filter=row_filter, columns=columns, snapshot_id=snapshot.snapshot_id
        ).to_arrow_batch_reader()
        yield from reader
        return
    if order_by is not None:
        from pyiceberg.conversions import from_bytes

        field = schema.find_field(order_by)

        def lower_bound(task: Any) -> Any:
            raw = (task.file.lower_bounds or {}).get(field.field_id)
            return (0, from_bytes(field.field_type, raw)) if raw is not None else (1, 0)

        tasks.sort(key=lower_bound)
    for task in tasks:
        with table.io.new_input(task.file.file_path).open() as stream:
            parquet = pq.ParquetFile(stream)
            present = [name for name in wanted.names if name in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=present):
                arrays = [
                    batch.column(f.name).cast(f.type)
                    if f.name in present
                    else pa.nulls(batch.num_rows, f.type)
                    for f in wanted
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=wanted)


def to_pandas(table: Table, arrow: pa.Table, drop: Sequence[str] = ()) -> pd.DataFrame:
    """An Arrow result as pandas with the dtypes of the frame last written (strings stay `string`, …)."""
    arrow = arrow.drop_columns([name for name in drop if name in arrow.column_names])
    recorded = table.properties.get(PANDAS_METADATA_PROPERTY)
    return with_pandas_dtypes(arrow, recorded.encode() if recorded else None)


def with_pandas_dtypes(arrow: pa.Table, pandas_metadata: bytes | None) -> pd.DataFrame:
    """`arrow` as pandas with the dtypes `pandas_metadata` (recorded from a frame of the same columns) names."""
    if pandas_metadata:
        meta = json.loads(pandas_metadata)
        names = [c["name"] for c in meta.get("columns", []) if c.get("name") is not None]
        # The recorded frame's column order first; columns it did not have (other partitions') after, and
        # pandas leaves recorded columns that are absent out: the dtypes apply by name.
        order = [n for n in names if n in arrow.column_names]
        order += [n for n in arrow.column_names if n not in order]
        arrow = arrow.select(order).replace_schema_metadata({b"pandas": pandas_metadata})
    return arrow.to_pandas(coerce_temporal_nanoseconds=True)


def partition_filter(column: str, keys: Sequence[str]) -> Any:
    """The row filter of one or more partition keys."""
    from pyiceberg.expressions import EqualTo, In

    return EqualTo(column, keys[0]) if len(keys) == 1 else In(column, tuple(keys))


class LakeIOManager(dg.ConfigurableIOManager):
    """Lake assets as Iceberg tables: `<layer>/<name>` is `<layer>.<name>` in the `platform` catalog.

    Outputs: pandas DataFrames, Arrow tables or record batch readers, Daft DataFrames (streamed). A partitioned
    asset replaces its partition's rows; every write is one commit, and its snapshot id is in the output
    metadata (`lake/snapshot_id`). Inputs come as pandas, or as Arrow when the input is annotated `pa.Table`;
    several upstream partitions come as a dict by partition key (missing ones left out when the input's
    metadata says `allow_missing_partitions`). The code location sets the fields when it loads, so the UI shows
    them; S3 credentials and a catalog password are never part of this config (read from the environment).
    """

    catalog_uri: str | None = Field(
        default=None,
        description="The Iceberg catalog (PLATFORM_CATALOG_URI), shown without its password. Unset or redacted: "
        "read from the environment when the run starts.",
    )
    base_uri: str | None = Field(
        default=None,
        description="Where data files go: PLATFORM_LAKE_URI, a local path or s3:// URI (unset: read when the run "
        "starts).",
    )

    def catalog(self) -> Catalog:
        """The configured catalog."""
        uri = self.catalog_uri if self.catalog_uri and "***" not in self.catalog_uri else None
        return open_catalog(uri, self.base_uri)

    def resolved_uri(self) -> str:
        """The lake root data files are written under."""
        return self.base_uri or get_settings().lake_uri

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        import pandas as pd

        from platform_assets.lib.metadata import arrow_metadata

        if obj is None:
            return
        metadata = context.definition_metadata or {}
        partition_key = context.partition_key if context.has_asset_partitions else None
        key: Any = context.asset_key
        if partition_key is not None and metadata.get(TABLE_PER_PARTITION_METADATA):
            key, partition_key = partition_table_key(context.asset_key, partition_key), None
        column = metadata.get(PARTITION_COLUMN_METADATA)
        properties = {RUN_ID_PROPERTY: context.run_id}
        if isinstance(obj, TableWriter):
            context.add_output_metadata(self._commit_staged(obj, key, partition_key, column, properties))
            return
        pandas_metadata = None
        if isinstance(obj, pd.DataFrame):
            import pyarrow as pa

            pandas_metadata = (pa.Schema.from_pandas(obj, preserve_index=False).metadata or {}).get(b"pandas")
        result = write_table(
            self.catalog(),
            key,
            obj,
            partition_column=column,
            partition_key=partition_key,
            snapshot_properties=properties,
            pandas_metadata=pandas_metadata if partition_key is None or column else None,
        )
        preview = None
        if isinstance(obj, pd.DataFrame):
            preview = obj.head(10)
        context.add_output_metadata(arrow_metadata(result, preview, drop=(PARTITION_COLUMN,)))

    def writer(
        self,
        key: dg.AssetKey | str | Sequence[str],
        partition_key: str | None = None,
        partition_column: str | None = None,
    ) -> TableWriter:
        """A writer for an output too large to hold whole: write it in pieces, then return the writer as the
        output (the IO manager commits it). Give the partition column the asset's metadata names, if any."""
        return TableWriter(
            self.catalog(), key, partition_column=partition_column, partition_key=partition_key
        )

    def _commit_staged(
        self,
        writer: TableWriter,
        key: Any,
        partition_key: str | None,
        column: str | None,
        properties: dict[str, str],
    ) -> dict[str, Any]:
        from platform_assets.lib.metadata import arrow_metadata

        expected = (table_name(key), partition_key, (column or PARTITION_COLUMN) if partition_key else None)
        staged = (writer.name, writer.partition_key, writer.partition_column)
        if staged != expected:
            writer.abort()
            raise ValueError(
                f"the output was staged for table {staged[0]} partition {staged[1]!r} (column {staged[2]!r}), "
                f"but it belongs to {expected[0]} partition {expected[1]!r} (column {expected[2]!r})"
            )
        keep_dtypes = partition_key is None or column
        result = writer.commit(properties, record_dtypes=bool(keep_dtypes))
        preview = None
        if writer.head is not None:
            preview = with_pandas_dtypes(writer.head, writer.pandas_metadata)
        return arrow_metadata(result, preview, drop=(PARTITION_COLUMN,))

    def load_input(self, context: dg.InputContext) -> Any:
        import pyarrow as pa

        catalog = self.catalog()
        wants_arrow = context.dagster_type.typing_type in (pa.Table,)
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        upstream = (context.upstream_output.definition_metadata or {}) if context.upstream_output else {}
        if context.has_asset_partitions and upstream.get(TABLE_PER_PARTITION_METADATA):
            values = {}
            for key in context.asset_partition_keys:
                table = load_table(catalog, partition_table_key(context.asset_key, key))
                if table is None:
                    if allow_missing:
                        continue
                    raise FileNotFoundError(
                        f"{context.asset_key.to_user_string()}: partition {key} is not in the lake "
                        f"({table_name(partition_table_key(context.asset_key, key))}); materialize it first"
                    )
                arrow = scan(table).to_arrow()
                values[key] = arrow if wants_arrow else to_pandas(table, arrow)
            if len(context.asset_partition_keys) == 1:
                return next(iter(values.values()), None)
            return values
        table = load_table(catalog, context.asset_key)
        name = table_name(context.asset_key)
        if table is None:
            if allow_missing:
                return {} if context.has_asset_partitions and len(context.asset_partition_keys) > 1 else None
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()}: no table {name} in the lake; "
                "materialize the upstream asset first"
            )
        column = upstream.get(PARTITION_COLUMN_METADATA) or PARTITION_COLUMN
        drop = (PARTITION_COLUMN,)

        def read(row_filter: Any = None) -> Any:
            arrow = scan(table, row_filter=row_filter).to_arrow()
            if wants_arrow:
                return arrow.drop_columns([c for c in drop if c in arrow.column_names])
            return to_pandas(table, arrow, drop)

        if not context.has_asset_partitions:
            return read()
        keys = list(context.asset_partition_keys)
        if not keys:  # the mapping reaches no upstream partition (e.g. the day before the first)
            return None
        # A partition without rows is either written empty (a clean delivery's quarantine) or never written;
        # only an input that allows missing partitions tells them apart (by the snapshots' partition keys).
        written = _written_partitions(table) if allow_missing else set()
        values = {}
        for key in keys:
            value = read(partition_filter(column, [key]))
            if len(value) == 0 and allow_missing and key not in written:
                continue
            values[key] = value
        if len(keys) == 1:
            return values.get(keys[0])
        return values


def _written_partitions(table: Table) -> set[str]:
    """The partition keys any snapshot of `table` recorded (written, replaced or emptied)."""
    return {
        key
        for snapshot in table.snapshots()
        if (
            key := (snapshot.summary.additional_properties if snapshot.summary else {}).get(
                PARTITION_KEY_PROPERTY
            )
        )
    }


def partition_table_key(key: dg.AssetKey, partition_key: str) -> list[str]:
    """The table of one partition of a table-per-partition asset: `<layer>/<name>__<partition key>`."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", partition_key)
    if safe != partition_key:
        # Keys that differ only in replaced characters ("a.b", "a_b") must not share a table.
        safe = f"{safe}_{hashlib.sha256(partition_key.encode()).hexdigest()[:8]}"
    return [key.path[0], "__".join([*key.path[1:], safe])]


def schema_at(table: Table, snapshot: Any) -> Any:
    """The Iceberg schema `table` had at `snapshot` (the current one for snapshots that do not record it)."""
    if snapshot.schema_id is None:
        return table.schema()
    return table.schemas().get(snapshot.schema_id, table.schema())


def current_snapshot_id(catalog: Catalog, key: dg.AssetKey | str | Sequence[str]) -> int | None:
    """The table's current snapshot id (None when the table does not exist or is empty)."""
    table = load_table(catalog, key)
    snapshot = table.current_snapshot() if table is not None else None
    return snapshot.snapshot_id if snapshot is not None else None


def tag_snapshot(
    catalog: Catalog, key: dg.AssetKey | str | Sequence[str], snapshot_id: int, tag: str
) -> None:
    """Pin a snapshot with a tag: snapshot expiry never removes a tagged snapshot. An existing tag of the same
    name is moved to `snapshot_id`."""
    table = catalog.load_table(table_name(key))
    manage = table.manage_snapshots()
    if tag in table.metadata.refs:
        manage = manage.remove_tag(tag)
    manage.create_tag(snapshot_id, tag).commit()


def read_arrow(
    catalog: Catalog,
    key: dg.AssetKey | str | Sequence[str],
    *,
    snapshot_id: int | None = None,
    tag: str | None = None,
    columns: Sequence[str] | None = None,
    row_filter: Any = None,
) -> pa.Table:
    """A lake table (or `columns` of it, rows matching `row_filter`) as Arrow, at the current snapshot, a snapshot
    id or a tag; the table-per-partition helper column `_partition` is left out."""
    name = table_name(key)
    table = load_table(catalog, key)
    if table is None:
        raise LookupError(f"no table {name} in the lake catalog")
    if tag is not None:
        ref = table.snapshot_by_name(tag)
        if ref is None:
            raise LookupError(f"{name} has no snapshot tagged {tag!r}")
        snapshot_id = ref.snapshot_id
    if snapshot_id is not None and table.snapshot_by_id(snapshot_id) is None:
        raise LookupError(f"{name} has no snapshot {snapshot_id} (expired, or from another table)")
    arrow = scan(table, row_filter=row_filter, columns=columns, snapshot_id=snapshot_id).to_arrow()
    return (
        arrow.drop_columns([PARTITION_COLUMN])
        if PARTITION_COLUMN in arrow.column_names and not (columns and PARTITION_COLUMN in columns)
        else arrow
    )


def count_rows(
    catalog: Catalog,
    key: dg.AssetKey | str | Sequence[str],
    partition_key: str | None = None,
    partition_column: str = PARTITION_COLUMN,
) -> int:
    """Rows in a lake table (or one partition of it) from the table's metadata, without reading the data.

    Exact: the platform writes whole files per partition (copy-on-write, no delete files), so the record
    counts of the data files a partition filter selects are its rows.
    """
    table = load_table(catalog, key)
    if table is None or table.current_snapshot() is None:
        return 0
    row_filter = partition_filter(partition_column, [partition_key]) if partition_key is not None else None
    return sum(task.file.record_count for task in scan(table, row_filter=row_filter).plan_files())


def value_counts(
    catalog: Catalog,
    key: dg.AssetKey | str | Sequence[str],
    column: str,
    partition_key: str | None = None,
    partition_column: str = PARTITION_COLUMN,
) -> dict[str, int]:
    """Rows per value of one column (most frequent first), reading only that column."""
    table = load_table(catalog, key)
    if table is None or table.current_snapshot() is None:
        return {}
    row_filter = partition_filter(partition_column, [partition_key]) if partition_key is not None else None
    values = scan(table, row_filter=row_filter, columns=[column]).to_arrow().column(column)
    counts = sorted(values.value_counts().to_pylist(), key=lambda item: -item["counts"])
    return {str(item["values"]): int(item["counts"]) for item in counts}
