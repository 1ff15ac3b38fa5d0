"""Features: the Feast repository, the online store and point-in-time training sets."""

import dagster as dg

from platform_assets.defs.features import assets, checks
from platform_assets.defs.features.jobs import features_job
from platform_assets.defs.features.schedules import features_daily_schedule

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([assets]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[features_job],
    schedules=[features_daily_schedule],
)
