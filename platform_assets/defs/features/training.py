"""Training sets: entity/label frames from events, and their point-in-time join with the features.

A training set is reproducible: it is built from its input tables read at one snapshot each
(`pin_input_snapshots` → `read_training_inputs` → `build_training_set`), and those snapshot ids are recorded
with it. Reading the inputs again at the recorded snapshots and calling `build_training_set` gives the same
rows, however much data has landed since (the snapshots are tagged, so expiry keeps them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pandas as pd

from platform_assets.defs.features.repo import STATS_FEATURES, STATS_SOURCE, STATS_VIEW
from platform_assets.defs.user_events.etl import day_end

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

LABEL_HORIZON = timedelta(hours=24)
EVENTS_TABLE = "cleaned/user_events"
STATS_TABLE = "features/user_stats"
INPUT_TABLES = (EVENTS_TABLE, STATS_TABLE)
# Only what the entity/label frame needs, plus the delivery order that decides which copy of a re-delivered
# event counts (the same rule as features/user_stats: the first delivery).
EVENT_COLUMNS = ["user_id", "event_time", "event_type", "_partition", "_source_file", "_source_line"]


@dataclass(frozen=True)
class TrainingInputs:
    """The inputs of a training set as read at `snapshots` (table name `<layer>.<name>` → snapshot id)."""

    snapshots: dict[str, int]
    events: pd.DataFrame
    stats: pa.Table


def pin_input_snapshots(catalog: Catalog) -> dict[str, int]:
    """The current snapshot id of every input table (`<layer>.<name>` → id), read before any data, so each
    input is then read at one snapshot however many commits land meanwhile."""
    from platform_assets.lib.lake import current_snapshot_id, table_name

    snapshots = {}
    for key in INPUT_TABLES:
        snapshot_id = current_snapshot_id(catalog, key)
        if snapshot_id is None:
            raise LookupError(f"{table_name(key)} is not in the lake (or empty): materialize {key} first")
        snapshots[table_name(key)] = snapshot_id
    return snapshots


def read_training_inputs(catalog: Catalog, snapshots: Mapping[str, int | str]) -> TrainingInputs:
    """The input tables at the given snapshots (ids as int or as the strings the metadata records)."""
    from platform_assets.lib.lake import read_arrow, table_name

    pinned = {name: int(snapshot_id) for name, snapshot_id in snapshots.items()}
    missing = [table_name(key) for key in INPUT_TABLES if table_name(key) not in pinned]
    if missing:
        raise KeyError(f"no snapshot id given for {', '.join(missing)} (given: {sorted(pinned)})")
    events = read_arrow(
        catalog, EVENTS_TABLE, snapshot_id=pinned[table_name(EVENTS_TABLE)], columns=EVENT_COLUMNS
    ).to_pandas()
    stats = read_arrow(catalog, STATS_TABLE, snapshot_id=pinned[table_name(STATS_TABLE)])
    return TrainingInputs(snapshots=pinned, events=events, stats=stats)


def build_training_set(inputs: TrainingInputs, horizon: timedelta = LABEL_HORIZON) -> pd.DataFrame:
    """Entity/label rows from the events, joined point-in-time with the feature table as read (not with
    whatever Feast's file source shows now). Raises ValueError when no day has a complete label window."""
    from platform_assets.defs.features.offline_store import pinned_sources

    entity_frame = build_entity_frame(inputs.events, horizon)
    if entity_frame.empty:
        raise ValueError("no cleaned user events with a complete label window yet")
    with pinned_sources({STATS_SOURCE: inputs.stats}):
        return historical_features(entity_frame)


def build_entity_frame(events: pd.DataFrame, horizon: timedelta) -> pd.DataFrame:
    """One row per user and active day at the day's end; label 1 when the user purchases within `horizon` after.

    `events`: cleaned events (user_id, event_time, event_type; with the delivery columns `_partition`,
    `_source_file`, `_source_line` when present, an event delivered twice counts as first delivered, whatever
    order the rows come in). Days whose label window reaches past the newest event are left out: their label
    is not known yet.
    """
    if not len(events):
        return pd.DataFrame(columns=["row_id", "user_id", "event_timestamp", "label"])
    order = [
        c for c in ("user_id", "event_time", "_partition", "_source_file", "_source_line") if c in events
    ]
    events = events.sort_values(order, kind="stable").drop_duplicates(["user_id", "event_time"])
    events["event_time"] = pd.to_datetime(events["event_time"], utc=True)
    newest = events["event_time"].max()
    active = events.assign(day=events["event_time"].dt.date)[["user_id", "day"]].drop_duplicates()
    active["event_timestamp"] = [pd.Timestamp(day_end(d)) for d in active["day"]]
    active = active[active["event_timestamp"] + horizon <= newest]
    purchases = events.loc[events["event_type"] == "purchase", ["user_id", "event_time"]]
    merged = active.merge(purchases, on="user_id", how="left")
    in_window = (merged["event_time"] > merged["event_timestamp"]) & (
        merged["event_time"] <= merged["event_timestamp"] + horizon
    )
    labels = merged.assign(hit=in_window).groupby(["user_id", "event_timestamp"])["hit"].any().astype("int64")
    frame = active.drop(columns=["day"]).merge(
        labels.rename("label").reset_index(), on=["user_id", "event_timestamp"]
    )
    frame = frame.sort_values(["event_timestamp", "user_id"]).reset_index(drop=True)
    frame["user_id"] = frame["user_id"].astype("int64")
    frame.insert(0, "row_id", range(len(frame)))
    return frame


def historical_features(entity_frame: pd.DataFrame, features: list[str] | None = None) -> pd.DataFrame:
    """Feast's point-in-time join of `entity_frame` (with a unique `row_id`) with the features, in `row_id` order.

    The same call a user makes (`feature_store().get_historical_features`); the platform's offline store returns
    every entity row, with null features where the view has no row in its TTL window. A different row count
    is refused rather than written as a training set.
    """
    from platform_assets.defs.features.store import feature_store

    features = features or [f"{STATS_VIEW}:{name}" for name in STATS_FEATURES]
    joined = feature_store().get_historical_features(entity_df=entity_frame, features=features).to_df()
    if len(joined) != len(entity_frame) or not joined["row_id"].is_unique:
        raise RuntimeError(
            f"Feast returned {len(joined)} rows ({joined['row_id'].nunique()} distinct) for "
            f"{len(entity_frame)} entity rows; refusing to build a training set from it"
        )
    # The entity columns as given (Feast returns its own copy of the timestamps, in another unit).
    feature_columns = [f.split(":", 1)[1] for f in features]
    result = entity_frame.merge(joined[["row_id", *feature_columns]], on="row_id", validate="one_to_one")
    return result.sort_values("row_id", ignore_index=True)
