"""Jobs of the reviews domain."""

import dagster as dg

from platform_assets.defs.reviews.assets import CALIBRATION_GROUP, GROUP
from platform_assets.ops.k8s_config import COMPUTE_TAG, EMBEDDING

reviews_job = dg.define_asset_job(
    "reviews_job",
    selection=dg.AssetSelection.groups(GROUP),
    # The queued run coordinator limits concurrent runs by this tag (deploy/helm/values.yaml).
    tags={COMPUTE_TAG: EMBEDDING},
    description="Landing files → raw → cleaned + quarantine → embedded → curated reviews, with their checks.",
)

curation_calibration_job = dg.define_asset_job(
    "curation_calibration_job",
    selection=dg.AssetSelection.groups(CALIBRATION_GROUP),
    description="Calibrates the near-duplicate threshold of curated/reviews with the current embedding model; run "
    "it when the model or the data changes.",
)
