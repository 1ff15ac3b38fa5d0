"""The code location's root: every domain under `defs/`, merged, plus global policy (resources, executor).

Domains are found, not listed (`platform_assets.lib.domains`): a new package under `defs/` is loaded as is.
"""

import dagster as dg

from platform_assets.lib.domains import DOMAINS_PACKAGE, build_definitions, load_domains
from platform_assets.lib.runtime_env import apply_runtime_defaults

# A code location is where a Dagster process starts: set the environment before any heavy library loads.
apply_runtime_defaults()


def build_defs(package: str = DOMAINS_PACKAGE) -> dg.Definitions:
    """The definitions of every domain under `package`, with the shared resources and the executor."""
    from platform_assets.lib.resources import shared_resources

    # In-process execution: the multiprocess executor re-imports the code location for every step (a 4-step
    # run took 38 s instead of 16 s on two cores). Parallelism lives inside steps (Ray, Daft, Spark) instead.
    policy = dg.Definitions(resources=shared_resources(), executor=dg.in_process_executor)
    return build_definitions(load_domains(package), policy)


defs = build_defs()
