"""Running the reviews domain delivery by delivery outside the daemon (tests, benchmarks, notebooks).

The daemon's `reviews_landing_sensor` does the same: one partition per landing file, one run each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from platform_assets.defs.reviews.partitions import review_deliveries
from platform_assets.lib.config import get_settings
from platform_assets.lib.landing import display_name, list_landing_files


def landed_deliveries() -> list[str]:
    """The deliveries (landing files, relative to landing/reviews) readable now, in file order."""
    landing = get_settings().landing_dir_for("reviews")
    files, _ = list_landing_files(landing)
    return [display_name(path.relative_to(landing)) for path in files]


def register_deliveries(instance: dg.DagsterInstance, deliveries: Sequence[str]) -> None:
    """Add the deliveries the instance does not know yet as partitions of `review_deliveries`, and give the
    cleaning's concurrency pool its limit (one at a time) if the instance has none."""
    from platform_assets.defs.reviews.assets import POOL_LIMITS
    from platform_assets.lib.instance import ensure_pool_limits

    ensure_pool_limits(instance, POOL_LIMITS)
    known = set(instance.get_dynamic_partitions(review_deliveries.name))
    new = [key for key in deliveries if key not in known]
    if new:
        instance.add_dynamic_partitions(review_deliveries.name, new)


def materialize_deliveries(
    assets: Sequence[Any],
    *,
    resources: Mapping[str, Any],
    instance: dg.DagsterInstance,
    deliveries: Sequence[str] | None = None,
    selection: Any = None,
    raise_on_error: bool = True,
) -> dict[str, dg.ExecuteInProcessResult]:
    """`dg.materialize` the reviews assets (and checks) once per delivery, in order; results by delivery.

    `deliveries`: default every landed file. Each run reads only its delivery and checks it against the
    deliveries run before it.
    """
    keys = list(deliveries) if deliveries is not None else landed_deliveries()
    register_deliveries(instance, keys)
    results: dict[str, dg.ExecuteInProcessResult] = {}
    for key in keys:
        results[key] = dg.materialize(
            assets,
            selection=selection if selection is not None else dg.AssetSelection.groups("reviews"),
            resources=dict(resources),
            instance=instance,
            partition_key=key,
            raise_on_error=raise_on_error,
        )
    return results


def deliveries_after(instance: dg.DagsterInstance, delivery: str) -> list[str]:
    """The deliveries added as partitions after `delivery` (the instance keeps them in the order they were added):
    what curation and the drift check leave out, so a re-run of a delivery judges it as it was first judged."""
    keys = list(instance.get_dynamic_partitions(review_deliveries.name))
    return keys[keys.index(delivery) + 1 :] if delivery in keys else []
