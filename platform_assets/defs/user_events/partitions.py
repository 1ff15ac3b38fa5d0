"""The user-events domain's partitions: one per delivery day."""

import dagster as dg

from platform_assets.defs.user_events.sample_data import SAMPLE_START

# Partitions start with the sample data; a real deployment sets the first day its sources deliver.
daily = dg.DailyPartitionsDefinition(start_date=SAMPLE_START.isoformat(), timezone="UTC")
