"""Registrations: datasets registered in the metadata center are landed, checked, cleaned and published back
as training-ready for Cube Studio, with lineage."""

import dagster as dg

from platform_assets.defs.registrations import assets, checks
from platform_assets.defs.registrations.jobs import registered_datasets_job
from platform_assets.defs.registrations.resources import MetadataCenterResource
from platform_assets.defs.registrations.sensors import alldata_registrations_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[registered_datasets_job],
    sensors=[alldata_registrations_sensor],
    resources={"metadata_center": MetadataCenterResource()},
)
