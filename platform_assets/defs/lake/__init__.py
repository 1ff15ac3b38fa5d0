"""Lake operations: the maintenance of every Iceberg table in the catalog (snapshot expiry, compaction)."""

import dagster as dg

from platform_assets.defs.lake.jobs import lake_maintenance_job
from platform_assets.defs.lake.schedules import lake_maintenance_schedule

defs = dg.Definitions(jobs=[lake_maintenance_job], schedules=[lake_maintenance_schedule])
