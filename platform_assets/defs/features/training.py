"""Training sets: entity/label frames from events, and their point-in-time join with the features."""

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
