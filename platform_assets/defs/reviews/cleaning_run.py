"""Cleaning one delivery into the lake: its raw/reviews rows → cleaned/reviews and quarantine/reviews.

The same function runs in the Dagster step (the default) and inside a Ray job on a cluster
(RAY_ADDRESS=http(s)://…: platform_assets/jobs/clean.py), where Daft runs on the cluster's Ray
(`lib/daft_runner.py`: a process attached to a cluster, as a job's driver is, uses Daft's Ray runner). Either
way the delivery is read from the lake a chunk at a time (PLATFORM_CHUNK_ROWS) and both outputs are written
chunk by chunk into uncommitted writers; the caller commits them (the lake IO manager in the step, the job
itself on the cluster).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from platform_assets.defs.reviews.cleaning import clean_delivery
from platform_assets.defs.reviews.contract import CLEANED_REVIEWS, QUARANTINED_REVIEWS, RAW_REVIEWS
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN
from platform_assets.lib.config import get_settings
from platform_assets.lib.memory import release_free_memory
from platform_assets.lib.quality import SuiteAccumulator

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from platform_assets.lib.lake import LakeIOManager, TableWriter

logger = logging.getLogger("platform_assets.cleaning")


class CleaningError(RuntimeError):
    """The delivery cannot be cleaned as things stand (its raw rows are not in the lake)."""


@dataclass
class CleanedDelivery:
    """One delivery cleaned: both outputs written but not committed, their quality and the reasons counted."""

    delivery: str
    raw_rows: int
    history_rows: int
    reasons: dict[str, int]
    cleaned: TableWriter
    quarantine: TableWriter
    cleaned_quality: SuiteAccumulator
    quarantine_quality: SuiteAccumulator


def clean_delivery_into_lake(
    lake: LakeIOManager, delivery: str, log: Callable[[str], None] = logger.info
) -> CleanedDelivery:
    """Split `delivery`'s raw reviews into cleaned and quarantine writers (finished, not committed).

    Earlier deliveries count as delivered first: their review_ids and content keys (two columns of
    cleaned/reviews, never their texts) make a repeat in this delivery a duplicate; earlier chunks of this
    delivery count the same way, so the split is the one a cleaning of the whole delivery at once gives.
    """
    catalog = lake.catalog()
    history = _earlier_deliveries_keys(catalog, delivery)
    cleaned = lake.writer(CLEANED_REVIEWS.name, delivery, DELIVERY_COLUMN)
    quarantine = lake.writer(QUARANTINED_REVIEWS.name, delivery, DELIVERY_COLUMN)
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
    history_rows = 0 if history is None else history.num_rows
    log(
        f"cleaned {cleaned.rows} of {raw_rows} reviews of {delivery} (checked against {history_rows} reviews of "
        f"earlier deliveries); quarantined {dict(reasons.most_common())}"
    )
    return CleanedDelivery(
        delivery=delivery,
        raw_rows=raw_rows,
        history_rows=history_rows,
        reasons=dict(reasons.most_common()),
        cleaned=cleaned.finish(),
        quarantine=quarantine.finish(),
        cleaned_quality=cleaned_quality,
        quarantine_quality=quarantine_quality,
    )


def _raw_chunks(catalog: Any, delivery: str) -> Iterator[pd.DataFrame]:
    """The delivery's raw rows in chunks of at most PLATFORM_CHUNK_ROWS rows, in file order, with their dtypes."""
    import pyarrow as pa

    from platform_assets.lib.lake import iter_batches, load_table, partition_filter, to_pandas

    table = load_table(catalog, RAW_REVIEWS.name)
    if table is None:
        raise CleaningError(f"{RAW_REVIEWS.name} has no table in the lake; materialize it first")
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


def _earlier_deliveries_keys(catalog: Any, delivery: str) -> pa.Table | None:
    """review_id and _content_key of every cleaned review from another delivery (None before the first)."""
    from pyiceberg.expressions import NotEqualTo

    from platform_assets.lib.lake import load_table, scan

    table = load_table(catalog, CLEANED_REVIEWS.name)
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
            CLEANED_REVIEWS.name,
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
