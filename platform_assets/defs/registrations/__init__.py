"""Registrations (seed 000): Alldata registers datasets in the metadata center; the platform lands, checks and
cleans them and publishes the training-ready version back for Cube Studio, with lineage."""

import dagster as dg

from platform_assets.defs.registrations import assets, checks
from platform_assets.defs.registrations.resources import MetadataCenterResource
from platform_assets.defs.registrations.sensors import alldata_registrations_sensor, registered_datasets_job

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[registered_datasets_job],
    sensors=[alldata_registrations_sensor],
    resources={"metadata_center": MetadataCenterResource()},
)
