"""The reviews domain: landing files → raw → cleaned + quarantine → embedded (LanceDB) → semantic search.

Each dataset's columns and rules are its contract (`contract.py`); the Dagster types, the column descriptions
shown in the UI and the quality scores below are derived from it.
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dagster as dg

from platform_assets.defs.lake_sync.assets import LAKE_SYNC
from platform_assets.defs.reviews.calibration import (
    CALIBRATION,
    UNCALIBRATED,
    calibrate_threshold,
    duplicate_threshold,
)
from platform_assets.defs.reviews.cleaning_run import clean_delivery_into_lake
from platform_assets.defs.reviews.contract import (
    CLEANED_REVIEWS,
    CURATED_LANCEDB_TABLE,
    CURATED_REVIEWS,
    CURATION_QUARANTINE,
    DUPLICATE_PAIRS,
    EMBEDDED_REVIEWS,
    LANCEDB_TABLE,
    QUARANTINED_REVIEWS,
    RAW_REVIEWS,
)
from platform_assets.defs.reviews.embedding import SCALAR_INDEXES, embed_delivery
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN, review_deliveries
from platform_assets.lib.config import get_settings
from platform_assets.lib.curation.policy import CurationPolicy
from platform_assets.lib.embedding import EMBEDDING_DIM, MODEL_NAME, TextEmbedder
from platform_assets.lib.lake import PARTITION_COLUMN_METADATA, LakeIOManager, TableWriter
from platform_assets.lib.landing import LandingFileError, iter_landing_file, report_metadata
from platform_assets.lib.memory import release_free_memory
from platform_assets.lib.quality import (
    SuiteAccumulator,
    cleaning_outputs,
    pandera_dagster_type,
    results_metadata,
)
from platform_assets.lib.ray_jobs import pipes_metadata, run_ray_job, runs_as_ray_job
from platform_assets.lib.vector_store import LanceDBIOManager
from platform_assets.ops.k8s_config import embedding_op_tags

GROUP = "reviews"
# The calibration runs on its own (curation_calibration_job), not once per delivery.
CALIBRATION_GROUP = "curation"
FRESHNESS_LIMIT = timedelta(hours=2)
RAW = RAW_REVIEWS.asset_key
CLEANED = CLEANED_REVIEWS.asset_key
QUARANTINE = QUARANTINED_REVIEWS.asset_key
EMBEDDED = EMBEDDED_REVIEWS.asset_key
CURATED = CURATED_REVIEWS.asset_key
CURATION_QUARANTINE_KEY = CURATION_QUARANTINE.asset_key
DUPLICATE_PAIRS_KEY = DUPLICATE_PAIRS.asset_key
# The landing reader's column types (the tests and benchmarks read landing files with it too).
REVIEW_SCHEMA = RAW_REVIEWS.reader_schema()
# The concurrency pool of the cleaning step and its limit: one delivery's cleaning at a time (set on the
# instance by the landing sensor and `materialize_deliveries`, lib.instance.ensure_pool_limits).
CLEANING_POOL = "reviews_cleaning"
# Curation likewise compares a delivery with what the earlier deliveries kept: one at a time.
CURATION_POOL = "reviews_curation"
POOL_LIMITS = {CLEANING_POOL: 1, CURATION_POOL: 1}

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
    if runs_as_ray_job():
        yield from _clean_as_ray_job(context)
        return
    run = clean_delivery_into_lake(context.resources.lake_io_manager, context.partition_key, context.log.info)
    yield from cleaning_outputs(
        context,
        run.raw_rows,
        run.cleaned,
        run.quarantine,
        cleaned_suites=[run.cleaned_quality],
        quarantine_suites=[run.quarantine_quality],
        reasons=run.reasons,
    )


@dg.asset(
    key=EMBEDDED,
    group_name=GROUP,
    # The delivery's cleaned rows are read from the lake where the embedding runs (this process or a Ray job on
    # the cluster), never loaded into the step as an input.
    deps=[CLEANED],
    partitions_def=review_deliveries,
    # The step writes LanceDB itself (or its Ray job does); the IO manager loads the table for checks and
    # downstream assets.
    io_manager_key="lancedb_io_manager",
    kinds={"ray", "lancedb"},
    metadata={
        "lancedb/table": LANCEDB_TABLE,
        "lancedb/primary_key": EMBEDDED_REVIEWS.key,
        # A delivery's run replaces that delivery's rows only: rows it no longer has are deleted.
        "lancedb/partition_column": DELIVERY_COLUMN,
        "lancedb/scalar_indexes": SCALAR_INDEXES,
        "embedding/model": MODEL_NAME,
        **EMBEDDED_REVIEWS.definition_metadata(),
    },
    # The embedding step is the one that wants a GPU in production: its compute class and pod shape.
    op_tags=embedding_op_tags(),
    description=f"Cleaned reviews plus a {EMBEDDING_DIM}-d normalised vector of the text, in the LanceDB table "
    f"'{LANCEDB_TABLE}', delivery by delivery (merge-insert on review_id; rows a re-delivery dropped are deleted; "
    "unchanged texts are not re-embedded). With RAY_ADDRESS=http(s)://head:8265 it runs as a Ray job on that "
    "cluster.",
)
def embedded_reviews(
    context: dg.AssetExecutionContext,
    embedder: TextEmbedder,
    # The IO manager's URI and index threshold: the step writes LanceDB where the IO manager loads it from.
    lancedb_io_manager: dg.ResourceParam[LanceDBIOManager],
) -> dg.MaterializeResult:
    """Embed new and changed texts; reuse the stored vector of every text that did not change.

    Where it runs follows RAY_ADDRESS (lib/config.RayTarget): unset or host:port, here (in process, on a local
    Ray, or on the cluster this process is a node of); http(s)://…, as a Ray job on that cluster, submitted
    through Dagster Pipes (`platform_assets.jobs.embed`), whose logs and outcome come back to this step.

    Every row records the vector space it was embedded in (`embedding_space`). A vector is reused only when
    its text and its space both match; when the configured backend changed (say to onnx-int8), every stored
    vector from the old space is embedded again, so one table never mixes vectors from two backends.
    """
    delivery = context.partition_key
    if runs_as_ray_job():
        arguments = embed_job_arguments(delivery, embedder, lancedb_io_manager)
        invocation = run_ray_job(context, "platform_assets.jobs.embed", arguments, f"embedding {delivery}")
        return invocation.get_materialize_result()
    outcome = embed_delivery(
        delivery,
        embedder,
        lancedb_uri=lancedb_io_manager.resolved_uri(),
        index_min_rows=lancedb_io_manager.index_min_rows,
        log=context.log.info,
    )
    return dg.MaterializeResult(metadata=pipes_metadata(outcome.metadata()))


def embed_job_arguments(
    delivery: str, embedder: TextEmbedder, lancedb_io_manager: LanceDBIOManager
) -> dict[str, Any]:
    """The arguments of `platform_assets.jobs.embed` for `delivery`: the embedder's and the IO manager's settings."""
    return {
        "--delivery": delivery,
        "--backend": embedder.backend,
        "--actors": embedder.actors,
        "--threads-per-actor": embedder.threads_per_actor,
        "--gpus-per-actor": embedder.gpus_per_actor,
        "--batch-size": embedder.batch_size,
        "--rows-per-block": embedder.rows_per_block,
        "--lancedb-uri": lancedb_io_manager.resolved_uri(),
        "--index-min-rows": lancedb_io_manager.index_min_rows,
    }


def _clean_as_ray_job(context: dg.AssetExecutionContext) -> Iterator[dg.Output]:
    """Clean the delivery in a Ray job on the cluster (Daft on the cluster's Ray); the job commits both tables
    and reports both materializations, which become this step's outputs.

    Each is an Output of None with the job's metadata: the lake IO manager has nothing left to write, and the
    Dagster type accepts None from a Ray job, which ran the same check on its writer before committing.
    """
    delivery = context.partition_key
    invocation = run_ray_job(
        context, "platform_assets.jobs.clean", {"--delivery": delivery}, f"cleaning {delivery}"
    )
    outputs = {CLEANED: "cleaned", QUARANTINE: "quarantine"}
    reported = {result.asset_key: result for result in invocation.get_results()}
    missing = [key.to_user_string() for key in outputs if key not in reported]
    if missing:
        raise dg.Failure(
            description=f"the Ray job cleaning {delivery} reported no materialization of {missing}"
        )
    for key, name in outputs.items():
        yield dg.Output(None, output_name=name, metadata=dict(reported[key].metadata or {}))


@dg.asset(
    key=CALIBRATION,
    group_name=CALIBRATION_GROUP,
    # The stored reviews' nearest-neighbour similarities are shown beside the labelled pairs.
    deps=[EMBEDDED],
    kinds={"numpy", "lancedb"},
    owners=["team:data-platform"],
    description="The near-duplicate threshold of curated/reviews, calibrated with the current embedding model on "
    "generated labelled pairs (light edits, re-punctuation, word swaps and paraphrases of the review sentences as "
    "duplicates; different reviews of one topic as non-duplicates): the lowest threshold with no different pair "
    "above it, a margin clear of them. Metadata: threshold, precision and recall (per kind), and a histogram of "
    "the pairs' and the stored reviews' nearest-neighbour similarities. Materialize it when the model or the "
    "data changes (curation_calibration_job); curation uses the latest for the current model.",
)
def reviews_near_duplicate_calibration(
    context: dg.AssetExecutionContext,
    embedder: TextEmbedder,
    curation: CurationPolicy,
    lancedb_io_manager: dg.ResourceParam[LanceDBIOManager],
) -> dg.MaterializeResult:
    """Choose and record the near-duplicate threshold for the current embedding model."""
    result, metadata = calibrate_threshold(embedder, curation, lancedb_io_manager.resolved_uri())
    context.log.info(
        f"near-duplicate threshold {result.threshold}: precision {result.precision}, recall {result.recall} "
        f"on {sum(result.pairs_by_kind.values())} labelled pairs"
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.multi_asset(
    outs={
        "curated": dg.AssetOut(
            key=CURATED,
            io_manager_key="lake_io_manager",
            kinds={"lancedb", "iceberg"},
            metadata={
                **CURATED_REVIEWS.definition_metadata(),
                **PARTITIONED_BY_DELIVERY,
                "lancedb/table": CURATED_LANCEDB_TABLE,
            },
            description="Embedded reviews fit for training: near-duplicates (the first delivered kept) and "
            "kNN-distance outliers removed, personal data masked in the text (PLATFORM_CURATION_PII_POLICY). "
            f"Lake table without vectors; the kept rows with their vectors are the LanceDB table "
            f"'{CURATED_LANCEDB_TABLE}'.",
        ),
        "quarantine": dg.AssetOut(
            key=CURATION_QUARANTINE_KEY,
            io_manager_key="lake_io_manager",
            kinds={"iceberg"},
            metadata={**CURATION_QUARANTINE.definition_metadata(), **PARTITIONED_BY_DELIVERY},
            description="Every review curation removed, with reject_reason (near_duplicate, outlier, pii), "
            "reject_detail, and for a near-duplicate the kept review (duplicate_of) and the similarity; the text "
            "masked as in curated/reviews.",
        ),
        "pairs": dg.AssetOut(
            key=DUPLICATE_PAIRS_KEY,
            io_manager_key="lake_io_manager",
            kinds={"iceberg"},
            metadata={**DUPLICATE_PAIRS.definition_metadata(), **PARTITIONED_BY_DELIVERY},
            description="The near-duplicate decisions, one row per removed review: the kept review, the "
            "similarity, the component (the kept review's id), where the twin was found, the threshold and the "
            "run. Review them here, or query them with platform_assets.lake.read_table.",
        ),
    },
    # The rows and vectors are read from LanceDB where embedded/reviews wrote them.
    deps=[EMBEDDED, CALIBRATION],
    partitions_def=review_deliveries,
    group_name=GROUP,
    pool=CURATION_POOL,
)
def curated_reviews(
    context: dg.AssetExecutionContext,
    curation: CurationPolicy,
    lake_io_manager: dg.ResourceParam[LakeIOManager],
    lancedb_io_manager: dg.ResourceParam[LanceDBIOManager],
) -> Iterator[dg.Output]:
    """Curate the delivery: remove near-duplicates and outliers, handle personal data by the policy; every
    embedded row lands in curated or the curation quarantine."""
    from platform_assets.defs.reviews.curation import CurationError, curate_delivery_into_lake
    from platform_assets.defs.reviews.deliveries import deliveries_after

    threshold, source = duplicate_threshold(context.instance, curation)
    if source == UNCALIBRATED:
        context.log.warning(
            f"no calibration of the near-duplicate threshold for this model yet: using {threshold}; "
            f"materialize {CALIBRATION.to_user_string()}"
        )
    try:
        run = curate_delivery_into_lake(
            lake_io_manager,
            context.partition_key,
            curation,
            threshold=threshold,
            threshold_source=source,
            run_id=context.run_id,
            lancedb_uri=lancedb_io_manager.resolved_uri(),
            index_min_rows=lancedb_io_manager.index_min_rows,
            later=deliveries_after(context.instance, context.partition_key),
            log=context.log.info,
        )
    except CurationError as err:
        raise dg.Failure(description=str(err)) from err
    common = {"delivery_embedded_rows": run.embedded_rows}
    yield dg.Output(
        run.curated,
        output_name="curated",
        metadata={
            **common,
            "near_duplicate_threshold": run.threshold,
            "threshold_source": run.threshold_source,
            "outlier_threshold": run.outlier_threshold,
            "pii_policy": curation.pii_policy,
            "pii_found": dg.MetadataValue.json(dict(sorted(run.pii_counts.items()))),
            "lancedb/table": CURATED_LANCEDB_TABLE,
            "lancedb/version": run.lancedb_version,
            "lancedb/rows_written": run.lancedb_rows_written,
            "seconds": round(run.seconds, 3),
        },
    )
    yield dg.Output(
        run.quarantine,
        output_name="quarantine",
        metadata={**common, "reasons": dg.MetadataValue.json(dict(run.reasons.most_common()))},
    )
    yield dg.Output(
        run.pairs, output_name="pairs", metadata={**common, "near_duplicate_threshold": run.threshold}
    )
