"""Training sets: entity/label frames from events, and a point-in-time join that never loses a row."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from platform_assets.defs.features.repo import STATS_FEATURES, STATS_VIEW
from platform_assets.defs.user_events.etl import day_end
from platform_assets.lib.config import PlatformSettings


def read_cleaned_event_days(settings: PlatformSettings) -> dict[str, pd.DataFrame]:
    """The cleaned/user_events partitions present in the lake, by day (the lake IO manager's layout)."""
    import pyarrow.parquet as pq

    from platform_assets.lib.lake import lake_path

    directory = lake_path(settings.lake_uri) / "cleaned" / "user_events"
    if not directory.exists():
        return {}
    frames = {}
    for path in sorted(directory.iterdir()):
        if path.name.endswith(".parquet") and not path.name.startswith("."):
            with path.open("rb") as handle:
                frames[path.name.removesuffix(".parquet")] = pq.read_table(handle).to_pandas()
    return frames


def build_entity_frame(cleaned: list[pd.DataFrame], horizon: timedelta) -> pd.DataFrame:
    """One row per user and active day at the day's end; label 1 when the user purchases within `horizon` after.

    Days whose label window reaches past the newest event are left out: their label is not known yet.
    """
    frames = [f for f in cleaned if len(f)]
    if not frames:
        return pd.DataFrame(columns=["row_id", "user_id", "event_timestamp", "label"])
    events = pd.concat(frames, ignore_index=True).drop_duplicates(["user_id", "event_time"])
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


def historical_features(
    entity_frame: pd.DataFrame, features: list[str] | None = None
) -> tuple[pd.DataFrame, int]:
    """Feast's point-in-time join of `entity_frame` with the features; returns (rows, rows restored).

    Feast's file offline store can drop an entity row whose feature rows all lie after its timestamp (seen with
    Feast 0.67's file store); every such row is put back with null features, so the output has exactly one row per
    input row, in input order.
    """
    from platform_assets.defs.features.store import feature_store

    features = features or [f"{STATS_VIEW}:{name}" for name in STATS_FEATURES]
    joined = feature_store().get_historical_features(entity_df=entity_frame, features=features).to_df()
    feature_columns = [f.split(":", 1)[1] for f in features]
    if joined["row_id"].duplicated().any():
        raise RuntimeError("Feast returned an entity row twice; refusing to build a training set from it")
    result = entity_frame.merge(
        joined[["row_id", *feature_columns]], on="row_id", how="left", validate="one_to_one"
    )
    restored = len(entity_frame) - len(joined)
    if len(result) != len(entity_frame):
        raise RuntimeError(f"training set has {len(result)} rows for {len(entity_frame)} entity rows")
    return result.sort_values("row_id").reset_index(drop=True), restored
