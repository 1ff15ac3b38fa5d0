"""The code location's root: every domain's Definitions, merged, plus global policy (resources, executor)."""

import dagster as dg

from platform_assets.defs import features, lake_sync, quality, registrations, reviews, user_events
from platform_assets.lib.resources import shared_resources

# In-process execution: the multiprocess executor re-imports the code location for every step (a 4-step run
# took 38 s instead of 16 s on two cores). Parallelism lives inside steps (Ray, Daft, Spark) instead.
defs = dg.Definitions.merge(
    reviews.defs,
    user_events.defs,
    features.defs,
    lake_sync.defs,
    registrations.defs,
    quality.defs,
    dg.Definitions(resources=shared_resources(), executor=dg.in_process_executor),
)
