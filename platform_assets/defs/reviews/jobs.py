"""Jobs of the reviews domain."""

import dagster as dg

from platform_assets.defs.reviews.assets import GROUP
from platform_assets.ops.k8s_config import COMPUTE_TAG, EMBEDDING

reviews_job = dg.define_asset_job(
    "reviews_job",
    selection=dg.AssetSelection.groups(GROUP),
    # The queued run coordinator limits concurrent runs by this tag (deploy/helm/values.yaml).
    tags={COMPUTE_TAG: EMBEDDING},
    description="Landing files → raw → cleaned + quarantine → embedded reviews, with their checks.",
)
