"""Product reviews: landing files to semantic search."""

import dagster as dg

from platform_assets.defs.reviews import assets, checks
from platform_assets.defs.reviews.jobs import curation_calibration_job, reviews_job
from platform_assets.defs.reviews.sensors import curation_calibration_sensor, reviews_landing_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[reviews_job, curation_calibration_job],
    sensors=[reviews_landing_sensor, curation_calibration_sensor],
)
