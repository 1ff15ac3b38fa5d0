"""Feast for users of the platform: the store and online lookups (the code lives in `defs/features/store.py`).

`feature_store().get_historical_features(entity_df=…, features=[…])` returns one row per entity row, with
nulls where a view has no value in its TTL window (the platform's offline store, `defs/features/offline_store.py`).
"""

from platform_assets.defs.features.store import (
    FeaturePushError,
    default_features,
    feature_store,
    online_features,
    push_realtime,
)

__all__ = ["FeaturePushError", "default_features", "feature_store", "online_features", "push_realtime"]
