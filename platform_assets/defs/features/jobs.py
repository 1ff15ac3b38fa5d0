"""Jobs of the features domain."""

import dagster as dg

from platform_assets.defs.features.assets import FEAST_REPOSITORY, TRAINING_SET

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets(FEAST_REPOSITORY, TRAINING_SET),
    description="Apply the Feast definitions and rebuild the point-in-time training set.",
)
