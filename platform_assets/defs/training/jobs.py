"""Jobs of the training-data domain."""

import dagster as dg

from platform_assets.defs.training.assets import GROUP

training_data_job = dg.define_asset_job(
    "training_data_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Publish the next version of every training-ready dataset whose rows changed (the reviews corpus "
    "with its vectors, the Feast training set), each with its manifest, registered in the metadata center.",
)
