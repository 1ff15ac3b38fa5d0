"""Jobs of the cross-domain quality operations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    # What dg.define_asset_job returns; Dagster exports no public name for it.
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def build_quality_job(domains: dg.Definitions) -> UnresolvedAssetJobDefinition:
    """Evaluate the checks of every unpartitioned asset against its latest materialization.

    Partitioned assets (a day of user events, a registered dataset) are checked partition by partition in the
    runs that build them; one job cannot mix partitioned and unpartitioned checks.
    """
    unpartitioned = [
        key
        for assets_def in domains.assets or []
        if isinstance(assets_def, dg.AssetsDefinition) and assets_def.partitions_def is None
        for key in assets_def.keys
    ]
    return dg.define_asset_job(
        "quality_job",
        selection=dg.AssetSelection.checks_for_assets(*sorted(unpartitioned, key=lambda k: k.path)),
        description="Evaluates the checks of the unpartitioned assets against their latest materializations, "
        "without recomputing anything.",
    )
