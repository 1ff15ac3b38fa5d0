"""Checks of the training set: complete, labelled, point-in-time."""

import dagster as dg
import pandas as pd

from platform_assets.defs.features.assets import FEAST_REPOSITORY, ONLINE_USER_STATS, TRAINING_SET
from platform_assets.defs.user_events.partitions import daily
from platform_assets.lib import quality as q

TRAINING_SUITE = q.Suite(
    name="training_set_contract",
    blocking=True,
    description="Rows exist, every row has its entity and a 0/1 label, row ids are unique.",
    rules=[
        q.row_count_between(min_value=1, severity="critical"),
        q.not_null("user_id", severity="critical"),
        q.not_null("event_timestamp", severity="critical"),
        q.unique("row_id"),
        q.in_set("label", [0, 1]),
    ],
)

training_set_contract = q.suite_check(TRAINING_SET, TRAINING_SUITE)


@dg.asset_check(asset=TRAINING_SET, description="Features are filled for most rows (null ratio < 5 %).")
def training_features_present(training: pd.DataFrame) -> dg.AssetCheckResult:
    """A row with no features at all is legal (a brand-new user) but should be rare."""
    empty = training["total_purchases"].isna()
    ratio = float(empty.mean()) if len(training) else 0.0
    return dg.AssetCheckResult(
        passed=ratio < 0.05,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_without_features": int(empty.sum()),
            "ratio": dg.MetadataValue.float(round(ratio, 4)),
        },
    )


@dg.asset_check(
    asset=FEAST_REPOSITORY, description="The registry holds exactly the views and entities defined in code."
)
def feast_registry_matches_code() -> dg.AssetCheckResult:
    """A registry applied from other code (or half-applied) is caught before anything reads from it."""
    from platform_assets.defs.features.repo import feature_objects
    from platform_assets.defs.features.store import feature_store
    from platform_assets.lib.config import get_settings

    store = feature_store()
    defined = {o.name for o in feature_objects(get_settings()) if type(o).__name__ == "FeatureView"}
    registered = {view.name for view in store.list_feature_views()}
    entities = {entity.name for entity in store.list_entities()}
    return dg.AssetCheckResult(
        passed=registered == defined and "user" in entities,
        metadata={
            "defined_views": dg.MetadataValue.json(sorted(defined)),
            "registered_views": dg.MetadataValue.json(sorted(registered)),
            "entities": dg.MetadataValue.json(sorted(entities)),
        },
    )


@dg.asset_check(
    asset=ONLINE_USER_STATS,
    partitions_def=daily,
    description="For a sample of users, the online store serves the newest offline feature values.",
)
def online_matches_offline() -> dg.AssetCheckResult:
    """Reads the newest features/user_stats partition from the table (only the compared columns) and compares a
    sample of users with the online store."""
    from platform_assets.defs.features.assets import newest_feature_day
    from platform_assets.defs.features.export import STATS_TABLE
    from platform_assets.defs.features.store import online_features
    from platform_assets.lib.lake import PARTITION_COLUMN, open_catalog, partition_filter, read_arrow

    day = newest_feature_day()
    features = ["total_purchases", "user_segment", "views_7d"]
    latest = (
        read_arrow(
            open_catalog(),
            STATS_TABLE,
            columns=["user_id", *features],
            row_filter=partition_filter(PARTITION_COLUMN, [str(day.date())]),
        )
        .to_pandas()
        .set_index("user_id")
    )
    sample = [int(u) for u in latest.index[:: max(1, len(latest) // SAMPLE_USERS)][:SAMPLE_USERS]]
    rows = online_features(sample, [f"user_statistics:{name}" for name in features])
    mismatches = [
        {
            "user_id": row["user_id"],
            "feature": name,
            "online": row[name],
            "offline": _plain(latest.loc[row["user_id"], name]),
        }
        for row in rows
        for name in features
        if row[name] != _plain(latest.loc[row["user_id"], name])
    ]
    return dg.AssetCheckResult(
        passed=not mismatches,
        metadata={
            "newest_day": str(day.date()),
            "users_compared": len(sample),
            "mismatches": dg.MetadataValue.json(mismatches[:20]),
        },
    )


SAMPLE_USERS = 20


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value
