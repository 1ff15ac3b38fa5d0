"""LanceDB: the vector store (a local directory by default, s3://… in production).

`LanceDBResource` opens the database for assets and search; `LanceDBIOManager` writes an asset's frame as a
table with merge-insert on the asset's primary key, so materializing twice never duplicates rows, changed
rows are updated in place and rows gone from the input are removed. The table name and key come from the
asset definition's metadata (`lancedb/table`, `lancedb/primary_key`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from platform_assets.lib.config import get_settings
from platform_assets.lib.embedding.model import EMBEDDING_DIM, VECTOR_COLUMN
from platform_assets.lib.metadata import column_schema, markdown_preview

if TYPE_CHECKING:
    import lancedb
    import numpy as np
    import pyarrow as pa

# Below this many rows exact (flat) search is fast enough and an IVF index is not worth its build time.
DEFAULT_INDEX_MIN_ROWS = 20_000


def connect_lancedb(uri: str | None = None) -> lancedb.DBConnection:
    """Connect to LanceDB at `uri` (default PLATFORM_LANCEDB_URI) with S3 credentials from the environment."""
    import lancedb

    settings = get_settings()
    uri = uri or settings.lancedb_uri
    if uri.startswith("s3://"):
        return lancedb.connect(uri, storage_options=settings.s3.lancedb_options())
    return lancedb.connect(uri)


def open_table(db: lancedb.DBConnection, name: str) -> lancedb.table.Table | None:
    """The table `name`, or None when it does not exist yet."""
    return db.open_table(name) if name in table_names(db) else None


def table_names(db: lancedb.DBConnection) -> list[str]:
    """Names of the tables in the database (lancedb 0.40 paginates list_tables)."""
    response = db.list_tables()
    return list(getattr(response, "tables", response))


def has_vector_index(table: lancedb.table.Table) -> bool:
    """True when the table has an ANN index on its vector column."""
    return any(VECTOR_COLUMN in index.columns for index in table.list_indices())


def read_columns(table: lancedb.table.Table, columns: list[str], where: str | None = None) -> pa.Table:
    """Every row of `table` (or those matching the SQL filter `where`), only `columns` (a scan, not a vector
    search)."""
    query = table.search().select(columns)
    if where is not None:
        query = query.where(where, prefilter=True)
    return query.limit(max(1, table.count_rows(where))).to_arrow()


def vector_matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column of fixed-size float vectors as a (rows, dim) float32 matrix (rows x EMBEDDING_DIM when empty)."""
    import numpy as np
    import pyarrow as pa

    if not len(column):
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    flat = array.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(array), -1).astype(np.float32, copy=False)


def iter_columns(
    table: lancedb.table.Table, columns: list[str], where: str | None = None, batch_rows: int = 10_000
) -> Iterator[pa.RecordBatch]:
    """Like `read_columns`, as a stream of record batches of at most `batch_rows` rows, so that reading
    vectors back never holds them all."""
    query = table.search().select(columns)
    if where is not None:
        query = query.where(where, prefilter=True)
    yield from query.limit(max(1, table.count_rows(where))).to_batches(batch_rows)


def sql_string(value: str) -> str:
    """`value` as a SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def equals_any(column: str, values: list[str]) -> str:
    """A LanceDB filter: `column` equals one of `values` (strings)."""
    if len(values) == 1:
        return f"{column} = {sql_string(values[0])}"
    return f"{column} IN ({', '.join(sql_string(v) for v in values)})"


_URI_DESCRIPTION = (
    "LanceDB URI, a local path or s3://. Unset: PLATFORM_LANCEDB_URI, else $PLATFORM_DATA_DIR/lancedb, read when "
    "the run starts."
)


class LanceDBResource(dg.ConfigurableResource):
    """Opens the platform's LanceDB database (the code location sets `uri` when it loads: `shared_resources`)."""

    uri: str | None = Field(default=None, description=_URI_DESCRIPTION)

    def resolved_uri(self) -> str:
        """The database URI in use."""
        return self.uri or get_settings().lancedb_uri

    def connect(self) -> lancedb.DBConnection:
        """A connection to the database."""
        return connect_lancedb(self.resolved_uri())

    def open_table(self, name: str) -> lancedb.table.Table | None:
        """The table `name`, or None when it does not exist yet."""
        return open_table(self.connect(), name)


def to_arrow(obj: Any, vector_dim: int | None) -> pa.Table:
    """`obj` (a pandas frame or Arrow table) as Arrow, the vector column cast to fixed_size_list<float32>."""
    import pyarrow as pa

    table = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
    if VECTOR_COLUMN in table.column_names and vector_dim:
        index = table.column_names.index(VECTOR_COLUMN)
        vectors = table.column(VECTOR_COLUMN)
        target = pa.list_(pa.float32(), vector_dim)
        if vectors.type != target:
            table = table.set_column(index, VECTOR_COLUMN, vectors.cast(target))
    return table


class LanceDBIOManager(dg.ConfigurableIOManager):
    """Writes frames to LanceDB tables with merge-insert on a primary key; loads the table object back.

    S3 credentials are never part of this config: `connect_lancedb` reads them from the environment.
    """

    uri: str | None = Field(default=None, description=_URI_DESCRIPTION)
    index_min_rows: int = Field(
        default=DEFAULT_INDEX_MIN_ROWS,
        description="Build an ANN index on the vector column once a table has this many rows; below it exact search is fast enough.",
    )
    vector_dim: int = Field(default=EMBEDDING_DIM, description="Width of the fixed-size vector column.")

    def resolved_uri(self) -> str:
        """The database URI in use."""
        return self.uri or get_settings().lancedb_uri

    def _db(self) -> lancedb.DBConnection:
        return connect_lancedb(self.resolved_uri())

    @staticmethod
    def _table_name(context: dg.OutputContext | dg.InputContext) -> str:
        definition_metadata = context.definition_metadata or {}
        return str(definition_metadata.get("lancedb/table") or context.asset_key.path[-1])

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        definition_metadata = context.definition_metadata or {}
        key = definition_metadata.get("lancedb/primary_key")
        if not key:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: set metadata 'lancedb/primary_key' for merge-insert"
            )
        name = self._table_name(context)
        data = to_arrow(obj, self.vector_dim)
        # A partitioned asset (metadata `lancedb/partition_column`) owns the rows of its partition only: what it
        # no longer has is deleted there, the other partitions' rows are never touched.
        partition_column = definition_metadata.get("lancedb/partition_column")
        scope = (
            f"{partition_column} = {sql_string(context.partition_key)}"
            if partition_column and context.has_asset_partitions
            else "true"
        )
        db = self._db()
        table = open_table(db, name)
        if table is None:
            table = db.create_table(name, data)
            mode = "created"
        elif table.schema != data.schema and scope != "true":
            raise ValueError(
                f"LanceDB table {name!r}: this partition's columns ({data.schema.names}) differ from the table's "
                f"({table.schema.names}); a partition cannot change the table's schema (rebuild the table)"
            )
        elif table.schema != data.schema:
            # A new or retyped column cannot be merged; a full overwrite is still one atomic new version.
            table = db.create_table(name, data, mode="overwrite")
            mode = "overwritten (schema changed)"
        elif data.num_rows == 0:
            table.delete(scope)
            mode = "emptied" if scope == "true" else "partition emptied"
        else:
            (
                table.merge_insert(str(key))
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(None if scope == "true" else scope)
                .execute(data)
            )
            mode = "merged"
        index_note = maintain_indexes(
            table,
            definition_metadata.get("lancedb/scalar_indexes") or {},
            index_min_rows=self.index_min_rows,
            vector_dim=self.vector_dim,
        )
        preview = data.slice(0, 10).to_pandas()
        context.add_output_metadata(
            {
                # A partition's rows (the table holds every partition's: lancedb/table_rows).
                "dagster/row_count": dg.MetadataValue.int(
                    table.count_rows() if scope == "true" else data.num_rows
                ),
                "lancedb/table_rows": dg.MetadataValue.int(table.count_rows()),
                "dagster/column_schema": column_schema(preview),
                "dagster/uri": dg.MetadataValue.text(f"{self.resolved_uri()}/{name}.lance"),
                "lancedb/table": name,
                "lancedb/version": dg.MetadataValue.int(table.version),
                "lancedb/write_mode": mode,
                "lancedb/index": index_note,
                "preview": dg.MetadataValue.md(markdown_preview(preview, drop=(VECTOR_COLUMN,))),
            }
        )

    def load_input(self, context: dg.InputContext) -> lancedb.table.Table:
        name = (
            self._table_name(context.upstream_output)
            if context.upstream_output
            else context.asset_key.path[-1]
        )
        table = open_table(self._db(), name)
        if table is None:
            raise FileNotFoundError(f"LanceDB table {name!r} does not exist yet; materialize its asset first")
        return table


def ivf_pq_params(rows: int, vector_dim: int) -> tuple[int, int]:
    """(num_partitions, num_sub_vectors) of the IVF_PQ index for a table of `rows` vectors of `vector_dim`."""
    # About a thousand rows per partition keeps IVF training well fed (it samples 256 per partition).
    partitions = max(1, min(1024, rows // 1000))
    # 8 dimensions per PQ sub-vector (48 for 384-d): the codes stay small and the refine step restores the
    # exact order of the candidates (see NPROBES / REFINE_FACTOR in platform_assets/search.py).
    return partitions, max(1, vector_dim // 8)


def ensure_scalar_indexes(table: lancedb.table.Table, scalar_indexes: Mapping[str, str]) -> list[str]:
    """Create the missing scalar indexes (`{column: "btree" | "bitmap" | "label_list"}`); returns their columns."""
    from lancedb.index import Bitmap, BTree, LabelList

    configs = {"btree": BTree, "bitmap": Bitmap, "label_list": LabelList}
    indexed = {column for index in table.list_indices() for column in index.columns}
    created = []
    for column, kind in scalar_indexes.items():
        if column not in indexed:
            table.create_index(column, config=configs[str(kind).lower()]())
            created.append(column)
    return created


def ensure_vector_index(table: lancedb.table.Table, *, index_min_rows: int, vector_dim: int) -> str:
    """Build the IVF_PQ (cosine) index once the table has `index_min_rows` rows, else fold new rows into it.

    Returns a one-line note for the asset's metadata.
    """
    from lancedb.index import IvfPq

    rows = table.count_rows()
    if has_vector_index(table):
        # Folds new rows into the existing index and compacts the fragments left by merges.
        table.optimize()
        return f"IVF_PQ (cosine), updated; {rows} rows"
    if rows < index_min_rows:
        return f"none: {rows} rows < index_min_rows {index_min_rows} (exact search)"
    partitions, sub_vectors = ivf_pq_params(rows, vector_dim)
    table.create_index(
        VECTOR_COLUMN,
        config=IvfPq(distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub_vectors),
    )
    return f"IVF_PQ (cosine), built: {partitions} partitions, {sub_vectors} sub-vectors; {rows} rows"


def maintain_indexes(
    table: lancedb.table.Table,
    scalar_indexes: Mapping[str, str],
    *,
    index_min_rows: int = DEFAULT_INDEX_MIN_ROWS,
    vector_dim: int = EMBEDDING_DIM,
) -> str:
    """The indexes the IO manager keeps after every write: the declared scalar ones, then the vector index."""
    if VECTOR_COLUMN not in table.schema.names:
        return "none (no vector column)"
    ensure_scalar_indexes(table, scalar_indexes)
    return ensure_vector_index(table, index_min_rows=index_min_rows, vector_dim=vector_dim)
