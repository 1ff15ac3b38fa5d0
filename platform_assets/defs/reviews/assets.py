"""The reviews domain: landing files → raw → cleaned + quarantine → embedded (LanceDB) → semantic search.

Each dataset's columns and rules are its contract (`contract.py`); the Dagster types, the column descriptions
shown in the UI and the quality scores below are derived from it.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg
import numpy as np
import pandas as pd

from platform_assets.defs.lake_sync.assets import LAKE_SYNC
from platform_assets.defs.reviews.cleaning import clean_delivery
from platform_assets.defs.reviews.contract import (
    CLEANED_REVIEWS,
    EMBEDDED_REVIEWS,
    LANCEDB_TABLE,
    QUARANTINED_REVIEWS,
    RAW_REVIEWS,
)
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN, review_deliveries
from platform_assets.lib.config import get_settings
from platform_assets.lib.embedding import (
    EMBEDDING_DIM,
    EMBEDDING_SPACE_COLUMN,
    MODEL_NAME,
    TextEmbedder,
    content_hash,
)
from platform_assets.lib.lake import PARTITION_COLUMN_METADATA, TableWriter
from platform_assets.lib.landing import LandingFileError, iter_landing_file, report_metadata
from platform_assets.lib.memory import release_free_memory
from platform_assets.lib.quality import (
    SuiteAccumulator,
    cleaning_outputs,
    pandera_dagster_type,
    results_metadata,
)
from platform_assets.lib.vector_store import VECTOR_COLUMN, LanceDBResource, equals_any, read_columns
from platform_assets.ops.k8s_config import embedding_op_tags

if TYPE_CHECKING:
    import pyarrow as pa

GROUP = "reviews"
FRESHNESS_LIMIT = timedelta(hours=2)
RAW = RAW_REVIEWS.asset_key
CLEANED = CLEANED_REVIEWS.asset_key
QUARANTINE = QUARANTINED_REVIEWS.asset_key
EMBEDDED = EMBEDDED_REVIEWS.asset_key
# The landing reader's column types (the tests and benchmarks read landing files with it too).
REVIEW_SCHEMA = RAW_REVIEWS.reader_schema()
# The concurrency pool of the cleaning step and its limit: one delivery's cleaning at a time (set on the
# instance by the landing sensor and `materialize_deliveries`, lib.instance.ensure_pool_limits).
CLEANING_POOL = "reviews_cleaning"
POOL_LIMITS = {CLEANING_POOL: 1}

# Structure only (columns, dtypes, lineage never null): the value rules are the suites' asset checks.
RawReviewsType = pandera_dagster_type(
    "RawReviews", RAW_REVIEWS.pandera_schema, "Raw reviews: the contract's columns and dtypes (pandera)."
)
CleanedReviewsType = pandera_dagster_type(
    "CleanedReviews",
    CLEANED_REVIEWS.pandera_schema,
    "Cleaned reviews: the contract's columns and dtypes (pandera).",
)


# Every reviews table is partitioned by delivery on `_source_file`, which holds the partition key.
PARTITIONED_BY_DELIVERY = {PARTITION_COLUMN_METADATA: DELIVERY_COLUMN}


@dg.asset(
    key=RAW,
    group_name=GROUP,
    partitions_def=review_deliveries,
    io_manager_key="lake_io_manager",
    # Collection nodes deliver into the landing zone through lake sync: lineage node → landing → raw.
    deps=[dg.AssetDep(LAKE_SYNC, partition_mapping=dg.AllPartitionMapping())],
    dagster_type=RawReviewsType,
    # The delivery is written to its table chunk by chunk through the IO manager's writer.
    required_resource_keys={"lake_io_manager"},
    # The source should deliver at least every two hours: warn after one, fail after two.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=FRESHNESS_LIMIT, warn_window=FRESHNESS_LIMIT / 2
    ),
    kinds={"pandas", "iceberg"},
    owners=["team:data-platform"],
    metadata={**RAW_REVIEWS.definition_metadata(), **PARTITIONED_BY_DELIVERY},
    description=(
        "Reviews as delivered, one partition per delivery (a CSV, JSON Lines or Parquet file under "
        "$PLATFORM_DATA_DIR/landing/reviews/, keyed by its relative path): typed by the contract's columns, extra "
        "columns kept, plus _source_file, _source_line and _ingest_error for values that did not fit."
    ),
)
def raw_reviews(context: dg.AssetExecutionContext) -> TableWriter:
    """Stream the partition's delivery into the lake chunk by chunk (memory holds one chunk, whatever the
    file's size); a file that cannot be parsed fails the run naming the file and line, and commits nothing."""
    settings = get_settings()
    landing = settings.landing_dir_for("reviews")
    delivery = context.partition_key
    # A delivery with thousands of columns would otherwise widen every layer and its metadata.
    max_extra = settings.landing_max_extra_columns
    writer = context.resources.lake_io_manager.writer(RAW, delivery, DELIVERY_COLUMN)
    quality = SuiteAccumulator(RAW_REVIEWS.suite)
    with writer:
        try:
            stream = iter_landing_file(
                landing / delivery,
                landing,
                REVIEW_SCHEMA,
                max_extra_columns=max_extra,
                chunk_rows=settings.chunk_rows,
            )
            for chunk in stream:
                writer.write(chunk)
                quality.add(chunk)
                del chunk
                release_free_memory()
        except (LandingFileError, ValueError) as err:
            # A Failure shows the message itself at the top of the step's error in the UI, not a stack trace.
            raise dg.Failure(description=str(err), metadata={"file_error": str(err)}) from err
        report = stream.report
        if not report.files:
            reason = report.ignored_reasons.get(delivery)
            raise dg.Failure(
                description=f"Delivery {delivery} is not a readable file under {landing}"
                + (f": {reason}" if reason else " (it was moved or deleted)")
            )
    context.add_output_metadata(
        {
            "landing_dir": dg.MetadataValue.path(str(landing)),
            **report_metadata(context, report, max_extra),
            "rows_with_type_errors": report.rows_with_type_errors,
            **results_metadata([quality.result()], context),
        }
    )
    return writer.finish()


@dg.multi_asset(
    outs={
        "cleaned": dg.AssetOut(
            key=CLEANED,
            dagster_type=CleanedReviewsType,
            io_manager_key="lake_io_manager",
            kinds={"daft", "iceberg"},
            metadata={**CLEANED_REVIEWS.definition_metadata(), **PARTITIONED_BY_DELIVERY},
            description="Reviews fit for use: HTML and noise stripped, whitespace collapsed, valid ratings, "
            "review_id unique across deliveries, no duplicate content across deliveries.",
        ),
        "quarantine": dg.AssetOut(
            key=QUARANTINE,
            io_manager_key="lake_io_manager",
            kinds={"daft", "iceberg"},
            metadata={**QUARANTINED_REVIEWS.definition_metadata(), **PARTITIONED_BY_DELIVERY},
            description="Rejected reviews with their original values, reject_reason (a code) and reject_detail.",
        ),
    },
    # The delivery's raw rows are read from the lake in chunks (not loaded as an input), so no step holds a
    # delivery whole.
    deps=[RAW],
    partitions_def=review_deliveries,
    group_name=GROUP,
    # The raw rows and the earlier deliveries' keys are read from the catalog the outputs are written to.
    required_resource_keys={"lake_io_manager"},
    # One delivery's cleaning at a time, across runs: each checks its rows against the keys the others
    # committed, so two running at once could both keep a review_id they share (POOL_LIMITS).
    pool=CLEANING_POOL,
)
def cleaned_reviews(context: dg.AssetExecutionContext) -> Iterator[dg.Output]:
    """Split one delivery's raw reviews into cleaned and quarantine with Daft; every raw row lands in one.

    The delivery is read from the lake and cleaned in chunks of PLATFORM_CHUNK_ROWS rows, in file order; both outputs
    are written chunk by chunk and committed once at the end. Earlier deliveries count as delivered first:
    their review_ids and content keys (two columns of cleaned/reviews, never their texts) make a repeat in this
    delivery a duplicate; earlier chunks of this delivery count the same way, so the split is the one a
    cleaning of the whole delivery at once gives.
    """
    lake = context.resources.lake_io_manager
    catalog = lake.catalog()
    delivery = context.partition_key
    history = _earlier_deliveries_keys(catalog, delivery)
    cleaned = lake.writer(CLEANED, delivery, DELIVERY_COLUMN)
    quarantine = lake.writer(QUARANTINE, delivery, DELIVERY_COLUMN)
    cleaned_quality = SuiteAccumulator(CLEANED_REVIEWS.suite)
    quarantine_quality = SuiteAccumulator(QUARANTINED_REVIEWS.suite)
    reasons: Counter[str] = Counter()
    raw_rows = 0
    with cleaned, quarantine:
        for result in clean_delivery(_raw_chunks(catalog, delivery), history):
            rejected = _name_earlier_deliveries(
                catalog, delivery, result.quarantine, result.history_id_duplicates
            )
            raw_rows += len(result.cleaned) + len(rejected)
            reasons.update(result.reasons())
            cleaned.write(result.cleaned)
            quarantine.write(rejected)
            cleaned_quality.add(result.cleaned)
            quarantine_quality.add(rejected)
            del result, rejected
            release_free_memory()
    context.log.info(
        f"cleaned {cleaned.rows} of {raw_rows} reviews of {delivery} (checked against "
        f"{0 if history is None else history.num_rows} reviews of earlier deliveries); "
        f"quarantined {dict(reasons.most_common())}"
    )
    yield from cleaning_outputs(
        context,
        raw_rows,
        cleaned.finish(),
        quarantine.finish(),
        cleaned_suites=[cleaned_quality],
        quarantine_suites=[quarantine_quality],
        reasons=dict(reasons.most_common()),
    )


def _raw_chunks(catalog: Any, delivery: str) -> Iterator[pd.DataFrame]:
    """The delivery's raw rows in chunks of at most PLATFORM_CHUNK_ROWS rows, in file order, with their dtypes."""
    import pyarrow as pa

    from platform_assets.lib.lake import iter_batches, load_table, partition_filter, to_pandas

    table = load_table(catalog, RAW)
    if table is None:
        raise dg.Failure(description=f"{RAW.to_user_string()} has no table in the lake; materialize it first")
    batches = iter_batches(
        table,
        row_filter=partition_filter(DELIVERY_COLUMN, [delivery]),
        batch_rows=get_settings().chunk_rows,
        order_by="_source_line",
    )
    empty = True
    for batch in batches:
        empty = False
        yield to_pandas(table, pa.Table.from_batches([batch]))
    if empty:
        # A delivery without rows still gives both outputs their columns.
        yield to_pandas(table, table.schema().as_arrow().empty_table())


def _earlier_deliveries_keys(catalog: Any, delivery: str) -> "pa.Table | None":
    """review_id and _content_key of every cleaned review from another delivery (None before the first)."""
    from pyiceberg.expressions import NotEqualTo

    from platform_assets.lib.lake import load_table, scan

    table = load_table(catalog, CLEANED)
    if table is None or table.current_snapshot() is None:
        return None
    names = set(table.schema().as_arrow().names)
    columns = [c for c in ("review_id", "_content_key") if c in names]
    return scan(table, row_filter=NotEqualTo(DELIVERY_COLUMN, delivery), columns=columns).to_arrow()


def _name_earlier_deliveries(
    catalog: Any, delivery: str, quarantine: pd.DataFrame, review_ids: tuple[str, ...]
) -> pd.DataFrame:
    """Say in reject_detail which delivery (file and line) first brought each review_id repeated from one."""
    if not review_ids:
        return quarantine
    from pyiceberg.expressions import And, In, NotEqualTo

    from platform_assets.lib.lake import read_arrow

    first = (
        read_arrow(
            catalog,
            CLEANED,
            columns=["review_id", "_source_file", "_source_line"],
            row_filter=And(
                NotEqualTo(DELIVERY_COLUMN, delivery), In("review_id", tuple(sorted(set(review_ids))))
            ),
        )
        .to_pandas()
        .drop_duplicates("review_id")
        .set_index("review_id")
    )
    repeated = quarantine["reject_detail"].str.endswith("already cleaned from an earlier delivery", na=False)
    quarantine.loc[repeated, "reject_detail"] = [
        f"review_id {review_id} first delivered in {first.at[review_id, '_source_file']} line "
        f"{first.at[review_id, '_source_line']}"
        if review_id in first.index
        else detail
        for review_id, detail in zip(
            quarantine.loc[repeated, "review_id"], quarantine.loc[repeated, "reject_detail"], strict=True
        )
    ]
    return quarantine


@dg.asset(
    key=EMBEDDED,
    group_name=GROUP,
    ins={"cleaned": dg.AssetIn(key=CLEANED)},
    partitions_def=review_deliveries,
    io_manager_key="lancedb_io_manager",
    kinds={"ray", "lancedb"},
    metadata={
        "lancedb/table": LANCEDB_TABLE,
        "lancedb/primary_key": EMBEDDED_REVIEWS.key,
        # A delivery's run replaces that delivery's rows only: rows it no longer has are deleted.
        "lancedb/partition_column": DELIVERY_COLUMN,
        "lancedb/scalar_indexes": {"review_id": "btree", "rating": "bitmap"},
        "embedding/model": MODEL_NAME,
        **EMBEDDED_REVIEWS.definition_metadata(),
    },
    # The embedding step is the one that wants a GPU in production: its compute class and pod shape.
    op_tags=embedding_op_tags(),
    description=f"Cleaned reviews plus a {EMBEDDING_DIM}-d normalised vector of the text, in the LanceDB table "
    f"'{LANCEDB_TABLE}', delivery by delivery (merge-insert on review_id; rows a re-delivery dropped are deleted; "
    "unchanged texts are not re-embedded).",
)
def embedded_reviews(
    context: dg.AssetExecutionContext,
    cleaned: pd.DataFrame,
    embedder: TextEmbedder,
    lancedb: LanceDBResource,
) -> pd.DataFrame:
    """Embed new and changed texts on Ray; reuse the stored vector of every text that did not change.

    Every row records the vector space it was embedded in (`embedding_space`). A vector is reused only when
    its text and its space both match; when the configured backend changed (say to onnx-int8), every stored
    vector from the old space is embedded again, so one table never mixes vectors from two backends.
    """
    spec = embedder.backend_spec()  # resolves the backend (ONNX export and verification once) before Ray
    space = spec.space_id
    # Only the contract's columns: delivered extras stay in the lake, so they never widen the vector table.
    columns = [name for name in EMBEDDED_REVIEWS.column_names if name in cleaned.columns]
    left_out = [name for name in cleaned.columns if name not in columns]
    frame = cleaned[columns].copy()
    frame["text_hash"] = [content_hash(text, space) for text in frame["text"]]
    frame[EMBEDDING_SPACE_COLUMN] = space
    reusable, other_spaces = _stored_vectors(lancedb, frame, space)
    to_embed = frame.loc[~frame["review_id"].isin(reusable.keys())]
    switched = sum(other_spaces.values())
    if switched:
        context.log.warning(
            f"the table holds {switched} vectors of this batch from another embedding space ({other_spaces}); "
            f"embedding all of them again with {spec.name} ({space}) so the table never mixes spaces"
        )
    context.log.info(
        f"embedding {len(to_embed)} texts with {spec.name} ({spec.reason}), reusing {len(reusable)} stored vectors"
    )
    fresh = embedder.embed(to_embed["review_id"].tolist(), to_embed["text"].tolist())
    vectors = {**reusable, **fresh}
    frame[VECTOR_COLUMN] = [vectors[review_id] for review_id in frame["review_id"]]
    context.add_output_metadata(
        {
            "embedded_rows": len(fresh),
            "reused_rows": len(reusable),
            "reembedded_for_backend_change": switched,
            "embedding_model": MODEL_NAME,
            "embedding_backend": spec.name,
            "embedding_space": space,
            "embedding_backend_reason": spec.reason,
            "embedding_agreement_with_torch": dg.MetadataValue.json(spec.agreement or {}),
            "embedded_review_ids_sample": dg.MetadataValue.json(sorted(fresh)[:20]),
            "columns_not_embedded": dg.MetadataValue.json(left_out),
        }
    )
    return frame


def _stored_vectors(
    lancedb: LanceDBResource, frame: pd.DataFrame, space: str
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Reusable vectors, and how many of the frame's rows are stored in another space (by space).

    Reusable: the stored row's review_id, text hash and embedding space all match the new frame. A table
    written before spaces were recorded counts as space "unrecorded" and is embedded again once.
    """
    table = lancedb.open_table(LANCEDB_TABLE)
    if table is None or "text_hash" not in table.schema.names:
        return {}, {}
    has_space = EMBEDDING_SPACE_COLUMN in table.schema.names
    columns = ["review_id", "text_hash", VECTOR_COLUMN] + ([EMBEDDING_SPACE_COLUMN] if has_space else [])
    # Only this delivery's rows: a review_id belongs to one delivery (a repeat elsewhere is quarantined), so
    # the table's other deliveries hold no vector to reuse and are never read.
    deliveries = frame[DELIVERY_COLUMN].unique().tolist() if DELIVERY_COLUMN in frame.columns else []
    where = equals_any(DELIVERY_COLUMN, deliveries) if deliveries else None
    if where is not None and DELIVERY_COLUMN not in table.schema.names:
        where = None
    stored = read_columns(table, columns, where=where).to_pandas()
    if not has_space:
        stored[EMBEDDING_SPACE_COLUMN] = "unrecorded"
    current = stored["review_id"].isin(frame["review_id"])
    other = stored.loc[current & (stored[EMBEDDING_SPACE_COLUMN] != space), EMBEDDING_SPACE_COLUMN]
    same_space = stored.loc[stored[EMBEDDING_SPACE_COLUMN] == space]
    merged = same_space.merge(frame[["review_id", "text_hash"]], on=["review_id", "text_hash"], how="inner")
    reusable = {
        review_id: np.asarray(vector, dtype=np.float32)
        for review_id, vector in zip(merged["review_id"], merged[VECTOR_COLUMN], strict=True)
    }
    return reusable, {str(name): int(count) for name, count in other.value_counts().items()}
