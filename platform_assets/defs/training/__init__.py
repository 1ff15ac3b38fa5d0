"""Training data out: every training-ready dataset as numbered, reproducible versions with a manifest, registered
in the metadata center, and loaded for training with `Dataset.get(id, version=N).to_torch()` / `.to_ray()`."""

import dagster as dg

from platform_assets.defs.training import assets, checks
from platform_assets.defs.training.jobs import training_data_job

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[training_data_job],
)
