"""Embedding one delivery: its rows of cleaned/reviews (the lake) → the LanceDB table `reviews`, in bounded memory.

The same function runs in the Dagster step (RAY_ADDRESS unset: in process or on a local Ray; host:port: on the
cluster this process is a node of) and inside a Ray job on a cluster (RAY_ADDRESS=http(s)://…:
platform_assets/jobs/embed.py). Either way:

- the delivery is read from the lake a chunk at a time (PLATFORM_CHUNK_ROWS), never handed over by Dagster;
- a row is embedded only when no stored row of the delivery has its review_id, content hash and vector space;
  a row whose vector is reused is rewritten without its vector only when another column changed (its
  `row_hash` differs), so a re-run of an unchanged delivery writes nothing;
- vectors go to LanceDB in merge-inserts of at most WRITE_ROWS rows, and rows the delivery no longer has are
  deleted, so memory follows a chunk and a write batch, not the delivery or the table.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from platform_assets.defs.reviews.contract import (
    CLEANED_REVIEWS,
    EMBEDDED_REVIEWS,
    LANCEDB_TABLE,
    ROW_HASH_COLUMN,
)
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN
from platform_assets.lib.config import get_settings
from platform_assets.lib.embedding.model import (
    EMBEDDING_DIM,
    EMBEDDING_SPACE_COLUMN,
    MODEL_NAME,
    NODE_COLUMN,
    VECTOR_COLUMN,
    content_hash,
)
from platform_assets.lib.memory import release_free_memory

if TYPE_CHECKING:
    import lancedb
    import pyarrow as pa

    from platform_assets.lib.embedding.resource import TextEmbedder

logger = logging.getLogger("platform_assets.embedding")

KEY = EMBEDDED_REVIEWS.key
# Rows per LanceDB merge-insert: about 75 MB of vectors and text, and few enough table versions per delivery.
WRITE_ROWS = 50_000
# Stale review_ids per delete statement (a SQL IN list).
DELETE_ROWS = 1_000
# The scalar indexes the vector table keeps (search filters on rating; merges and deletes look up review_id).
SCALAR_INDEXES = {"review_id": "btree", "rating": "bitmap"}
# How many embedded review_ids the metadata lists.
SAMPLE_IDS = 20
# What the outcome names as the node when the vectors were computed in this process, not on Ray actors.
IN_PROCESS = "in process"


class EmbedError(RuntimeError):
    """The delivery cannot be embedded as things stand (no cleaned table, a vector table of another shape)."""


@dataclass
class EmbedOutcome:
    """What one delivery's embedding did, for the asset's metadata (the same keys in process and from a job)."""

    delivery: str
    backend: str
    space: str
    backend_reason: str
    agreement: dict[str, Any]
    lancedb_uri: str
    rows: int = 0
    embedded: int = 0
    reused: int = 0
    updated_without_embedding: int = 0
    deleted: int = 0
    reembedded_for_backend_change: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0
    nodes: set[str] = field(default_factory=set)
    columns_not_embedded: list[str] = field(default_factory=list)
    embedded_sample: list[str] = field(default_factory=list)
    table_rows: int = 0
    table_version: int = 0
    index_note: str = ""

    def metadata(self) -> dict[str, Any]:
        """Metadata entries in Dagster Pipes' form ({"raw_value", "type"}), which the step turns into
        MetadataValues whether the outcome came from this process or from a Ray job."""

        def entry(value: Any, kind: str) -> dict[str, Any]:
            return {"raw_value": value, "type": kind}

        texts_per_s = self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0
        return {
            "dagster/row_count": entry(self.rows, "int"),
            "embedded_rows": entry(self.embedded, "int"),
            "reused_rows": entry(self.reused, "int"),
            "updated_without_embedding_rows": entry(self.updated_without_embedding, "int"),
            "deleted_rows": entry(self.deleted, "int"),
            "reembedded_for_backend_change": entry(self.reembedded_for_backend_change, "int"),
            "embedding_model": entry(MODEL_NAME, "text"),
            "embedding_backend": entry(self.backend, "text"),
            "embedding_space": entry(self.space, "text"),
            "embedding_backend_reason": entry(self.backend_reason, "text"),
            "embedding_agreement_with_torch": entry(self.agreement, "json"),
            "embedded_review_ids_sample": entry(self.embedded_sample, "json"),
            "columns_not_embedded": entry(self.columns_not_embedded, "json"),
            "embed_seconds": entry(round(self.embed_seconds, 3), "float"),
            "embed_texts_per_s": entry(round(texts_per_s, 1), "float"),
            "seconds": entry(round(self.seconds, 3), "float"),
            "ray_nodes": entry(sorted(self.nodes), "json"),
            "lancedb/table": entry(LANCEDB_TABLE, "text"),
            "lancedb/table_rows": entry(self.table_rows, "int"),
            "lancedb/version": entry(self.table_version, "int"),
            "lancedb/index": entry(self.index_note, "text"),
            "dagster/uri": entry(f"{self.lancedb_uri}/{LANCEDB_TABLE}.lance", "text"),
        }


def embed_delivery(
    delivery: str,
    embedder: TextEmbedder,
    *,
    lancedb_uri: str | None = None,
    index_min_rows: int | None = None,
    log: Callable[[str], None] = logger.info,
) -> EmbedOutcome:
    """Embed the cleaned reviews of `delivery` into LanceDB, reusing every stored vector whose text and vector
    space did not change; return what was done.

    Runs wherever it is called: the embedder decides where the vectors are computed (this process, a local
    Ray, or the Ray cluster this process is attached to, as inside a Ray job).
    """
    import pyarrow.compute as pc

    from platform_assets.lib.lake import count_rows, iter_batches, load_table, open_catalog, partition_filter
    from platform_assets.lib.vector_store import (
        DEFAULT_INDEX_MIN_ROWS,
        connect_lancedb,
        maintain_indexes,
    )

    started = time.perf_counter()
    settings = get_settings()
    spec = embedder.backend_spec()  # resolves the backend (ONNX export and verification once) before Ray
    uri = lancedb_uri or settings.lancedb_uri
    outcome = EmbedOutcome(
        delivery=delivery,
        backend=spec.name,
        space=spec.space_id,
        backend_reason=spec.reason,
        agreement=dict(spec.agreement or {}),
        lancedb_uri=uri,
    )
    catalog = open_catalog()
    cleaned = load_table(catalog, CLEANED_REVIEWS.name)
    if cleaned is None:
        raise EmbedError(f"{CLEANED_REVIEWS.name} has no table in the lake; materialize it first")
    lake_columns = cleaned.schema().as_arrow().names
    # Only the contract's columns: delivered extras stay in the lake, so they never widen the vector table.
    columns = [name for name in EMBEDDED_REVIEWS.column_names if name in lake_columns]
    outcome.columns_not_embedded = [name for name in lake_columns if name not in columns]
    target_schema = _vector_table_schema(cleaned.schema().as_arrow(), columns)
    db = connect_lancedb(uri)
    table = _open_vector_table(db, target_schema)
    stored = _StoredKeys.read(table, delivery, spec.space_id)
    expected_rows = count_rows(catalog, CLEANED_REVIEWS.name, delivery, DELIVERY_COLUMN)
    log(
        f"embedding delivery {delivery}: {expected_rows} cleaned rows, {stored.rows} stored, with {spec.name} "
        f"({spec.reason})"
    )
    sample: list[str] = []

    def rows_to_embed() -> Iterator[pa.Table]:
        chunks = iter_batches(
            cleaned,
            row_filter=partition_filter(DELIVERY_COLUMN, [delivery]),
            columns=columns,
            batch_rows=settings.chunk_rows,
        )
        for chunk in chunks:
            rows = _with_hashes(_conform(chunk, target_schema), spec.space_id)
            outcome.rows += rows.num_rows
            reusable = stored.match(rows)
            reused = rows.filter(reusable)
            outcome.reused += reused.num_rows
            outcome.updated_without_embedding += _update_changed(table, reused, stored)
            fresh = rows.filter(pc.invert(reusable))
            # The 20 smallest embedded ids, without holding them all.
            sample[:] = sorted(sample + _smallest(fresh.column(KEY), SAMPLE_IDS))[:SAMPLE_IDS]
            del chunk, rows, reused
            release_free_memory()
            yield fresh

    embed_started = time.perf_counter()
    pending: list[pa.Table] = []
    pending_rows = 0
    for batch in embedder.embed_tables(rows_to_embed(), rows=expected_rows, key=KEY):
        if NODE_COLUMN in batch.column_names:
            outcome.nodes.update(batch.column(NODE_COLUMN).unique().cast("string").to_pylist())
            batch = batch.drop_columns([NODE_COLUMN])
        else:
            outcome.nodes.add(f"{IN_PROCESS} ({socket.gethostname()})")
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= WRITE_ROWS:
            _merge(table, pending, target_schema)
            outcome.embedded += pending_rows
            log(
                f"embedded {outcome.embedded} texts so far ({_rate(outcome.embedded, embed_started)} texts/s)"
            )
            pending, pending_rows = [], 0
            release_free_memory()
    if pending:
        _merge(table, pending, target_schema)
        outcome.embedded += pending_rows
    outcome.embed_seconds = time.perf_counter() - embed_started
    outcome.reembedded_for_backend_change = stored.other_space_seen()
    if outcome.reembedded_for_backend_change:
        log(
            f"re-embedded {outcome.reembedded_for_backend_change} rows stored in another vector space "
            f"({stored.other_spaces()}) with {spec.name} ({spec.space_id}), so the table never mixes spaces"
        )
    outcome.deleted = _delete(table, delivery, stored.unseen())
    outcome.embedded_sample = sample
    outcome.index_note = maintain_indexes(
        table,
        SCALAR_INDEXES,
        index_min_rows=DEFAULT_INDEX_MIN_ROWS if index_min_rows is None else index_min_rows,
        vector_dim=EMBEDDING_DIM,
    )
    outcome.table_rows = table.count_rows()
    outcome.table_version = table.version
    outcome.seconds = time.perf_counter() - started
    log(
        f"delivery {delivery}: embedded {outcome.embedded}, reused {outcome.reused}, deleted {outcome.deleted} "
        f"in {outcome.seconds:.1f} s on {sorted(outcome.nodes) or ['nothing to embed']}"
    )
    return outcome


def _smallest(values: pa.ChunkedArray, count: int) -> list[str]:
    import pyarrow.compute as pc

    if not len(values):
        return []
    return pc.take(
        values, pc.select_k_unstable(values, count, sort_keys=[("dummy", "ascending")])
    ).to_pylist()


def _rate(count: int, since: float) -> float:
    return round(count / max(time.perf_counter() - since, 1e-9), 1)


def _vector_table_schema(lake_schema: pa.Schema, columns: list[str]) -> pa.Schema:
    """The vector table's columns: the embedded columns as the lake has them (large strings as strings), the
    content hash, the vector space and the vector."""
    import pyarrow as pa

    fields = []
    for name in columns:
        kind = lake_schema.field(name).type
        fields.append(pa.field(name, pa.string() if kind == pa.large_string() else kind))
    fields += [
        pa.field("text_hash", pa.string()),
        pa.field(EMBEDDING_SPACE_COLUMN, pa.string()),
        pa.field(ROW_HASH_COLUMN, pa.string()),
        pa.field(VECTOR_COLUMN, pa.list_(pa.float32(), EMBEDDING_DIM)),
    ]
    return pa.schema(fields)


def _conform(chunk: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """A lake chunk with the vector table's column types (the columns it has)."""
    import pyarrow as pa

    table = pa.Table.from_batches([chunk])
    return table.cast(pa.schema([schema.field(name) for name in table.column_names]))


def _with_hashes(rows: pa.Table, space: str) -> pa.Table:
    """`rows` plus their content hash, vector space and row hash (of all of these columns)."""
    import pandas as pd
    import pyarrow as pa

    hashes = [content_hash(text, space) for text in rows.column("text").to_pylist()]
    rows = rows.append_column("text_hash", pa.array(hashes, pa.string())).append_column(
        EMBEDDING_SPACE_COLUMN, pa.array([space] * rows.num_rows, pa.string())
    )
    # pandas' row hash (a fixed key, so the same in every process) over the columns in name order; the rows
    # always arrive with the vector table's types (_conform), so equal rows hash equal.
    frame = rows.select(sorted(rows.column_names)).to_pandas()
    fingerprints = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return rows.append_column(
        ROW_HASH_COLUMN, pa.array([f"{value:016x}" for value in fingerprints], pa.string())
    )


def _open_vector_table(db: lancedb.DBConnection, schema: pa.Schema) -> lancedb.table.Table:
    """The vector table, created empty with `schema` if missing (exist_ok: two deliveries may race to create it).

    An existing table must have the same columns (a table from before `row_hash` gets it, null); their types may
    differ where a cast is safe (an older table's nanosecond timestamps): rows are cast to them when written.
    """
    from platform_assets.lib.vector_store import open_table

    # exist_ok: another delivery's run may create it between the two calls (it raises if the schemas differ,
    # so an existing table is opened first and compared below).
    table = open_table(db, LANCEDB_TABLE) or db.create_table(LANCEDB_TABLE, schema=schema, exist_ok=True)
    if ROW_HASH_COLUMN not in table.schema.names and set(table.schema.names) == set(schema.names) - {
        ROW_HASH_COLUMN
    }:
        # A table from before row hashes: the column starts null, so each delivery's next run rewrites its
        # rows once (without embedding them again).
        table.add_columns({ROW_HASH_COLUMN: "CAST(NULL AS STRING)"})
    if set(table.schema.names) != set(schema.names):
        raise EmbedError(
            f"LanceDB table {LANCEDB_TABLE!r} has columns {sorted(table.schema.names)}, but a delivery now has "
            f"{sorted(schema.names)}; one delivery cannot change the table's columns (rebuild the table: drop it "
            "and materialize every delivery of embedded/reviews)"
        )
    return table


@dataclass
class _StoredKeys:
    """The delivery's rows already in the vector table: review_id, text hash and vector space (no vectors), and
    which of them this run's chunks have seen (the rest are deleted at the end)."""

    ids: pa.Array
    spaces: pa.Array
    reusable_keys: pa.Array  # "review_id\0text_hash" of the rows stored in this run's space
    row_keys: pa.Array  # "review_id\0row_hash" of every stored row that has a row hash
    seen: Any  # numpy bool array over `ids`
    space: str

    @property
    def rows(self) -> int:
        return len(self.ids)

    @classmethod
    def read(cls, table: lancedb.table.Table, delivery: str, space: str) -> _StoredKeys:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from platform_assets.lib.vector_store import equals_any, read_columns

        columns = [KEY, "text_hash", EMBEDDING_SPACE_COLUMN, ROW_HASH_COLUMN]
        stored = read_columns(table, columns, where=equals_any(DELIVERY_COLUMN, [delivery]))
        ids, hashes, spaces, row_hashes = (
            stored.column(c).combine_chunks().cast(pa.string()) for c in columns
        )
        keys = _join_keys(ids, hashes).filter(pc.equal(spaces, space))
        # A null row hash joins to null, which matches nothing: such rows are rewritten once.
        row_keys = _join_keys(ids, row_hashes).drop_null()
        return cls(ids, spaces, keys, row_keys, np.zeros(len(ids), dtype=bool), space)

    def match(self, rows: pa.Table) -> pa.Array:
        """Which of `rows` have a stored vector to reuse; marks their stored review_ids as seen."""
        import numpy as np
        import pyarrow.compute as pc

        if self.rows:
            seen = pc.is_in(self.ids, value_set=rows.column(KEY).combine_chunks())
            self.seen |= np.asarray(seen.to_numpy(zero_copy_only=False), dtype=bool)
        keys = _join_keys(rows.column(KEY).combine_chunks(), rows.column("text_hash").combine_chunks())
        return pc.is_in(keys, value_set=self.reusable_keys)

    def unseen(self) -> list[str]:
        """Stored review_ids of the delivery that no chunk brought: the delivery no longer has them."""
        import numpy as np

        return self.ids.filter(np.logical_not(self.seen)).to_pylist()

    def other_space_seen(self) -> int:
        """Rows of the delivery stored in another vector space (and so embedded again)."""
        import numpy as np

        other = np.asarray(self.spaces.to_numpy(zero_copy_only=False) != self.space, dtype=bool)
        return int((other & self.seen).sum())

    def other_spaces(self) -> dict[str, int]:
        """How many stored rows of the delivery are in each other vector space."""
        import pyarrow.compute as pc

        counts = pc.value_counts(self.spaces.filter(pc.not_equal(self.spaces, self.space)))
        return {str(item["values"]): int(item["counts"]) for item in counts.to_pylist()}


def _join_keys(ids: pa.Array, hashes: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(ids, hashes, "\x00")


def _update_changed(table: lancedb.table.Table, rows: pa.Table, stored: _StoredKeys) -> int:
    """Rewrite the columns (not the vectors, which stay) of those `rows` whose row hash differs from the stored
    row's; returns how many. Unchanged rows are not written at all.

    The comparison is done here on the row hash, not in the merge's `where` condition: lancedb 0.40 panics on a
    conditional merge of a column subset into a table with a btree index on the key (measured).
    """
    import pyarrow.compute as pc

    if not rows.num_rows:
        return 0
    keys = _join_keys(rows.column(KEY).combine_chunks(), rows.column(ROW_HASH_COLUMN).combine_chunks())
    changed = rows.filter(pc.invert(pc.is_in(keys, value_set=stored.row_keys)))
    if changed.num_rows:
        columns = _without_vector(table.schema)
        table.merge_insert(KEY).when_matched_update_all().execute(changed.select(columns.names).cast(columns))
    return changed.num_rows


def _without_vector(schema: pa.Schema) -> pa.Schema:
    return schema.remove(schema.get_field_index(VECTOR_COLUMN))


def _merge(table: lancedb.table.Table, batches: list[pa.Table], schema: pa.Schema) -> None:
    """Insert or update embedded rows on review_id, with the table's own column order and types."""
    import pyarrow as pa

    data = pa.concat_tables([batch.select(schema.names).cast(schema) for batch in batches])
    data = data.select(table.schema.names).cast(table.schema)
    table.merge_insert(KEY).when_matched_update_all().when_not_matched_insert_all().execute(data)


def _delete(table: lancedb.table.Table, delivery: str, review_ids: list[str]) -> int:
    """Delete the delivery's rows with these review_ids, a bounded IN list at a time."""
    from platform_assets.lib.vector_store import equals_any

    for start in range(0, len(review_ids), DELETE_ROWS):
        ids = review_ids[start : start + DELETE_ROWS]
        table.delete(f"{equals_any(DELIVERY_COLUMN, [delivery])} AND {equals_any(KEY, ids)}")
    return len(review_ids)
