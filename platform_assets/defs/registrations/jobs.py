"""Jobs of the registrations domain."""

import dagster as dg

from platform_assets.defs.registrations.assets import GROUP
from platform_assets.defs.registrations.partitions import registered_datasets

registered_datasets_job = dg.define_asset_job(
    "registered_datasets_job",
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=registered_datasets,
    description="One registered dataset: land, check, clean and publish it back as training-ready.",
)
