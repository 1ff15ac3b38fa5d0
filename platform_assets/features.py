"""Feast for users of the platform: the store and online lookups (the code lives in `defs/features/store.py`)."""

from platform_assets.defs.features.store import (
    FeaturePushError,
    default_features,
    feature_store,
    online_features,
    push_realtime,
)

__all__ = ["FeaturePushError", "default_features", "feature_store", "online_features", "push_realtime"]
