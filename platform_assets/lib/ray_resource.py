"""Ray: a local Ray started on demand, or the cluster named by RAY_ADDRESS (a KubeRay head in production).

RAY_ADDRESS=http(s)://head:8265 names a cluster's job API: heavy steps go there as Ray jobs (the embedding,
platform_assets/jobs/embed.py), and whatever small Ray work is left in the Dagster process uses a local Ray.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from platform_assets.lib.config import RayTarget, get_settings, ray_target

# The address that means "a Ray started in this process" (shown in the UI instead of an empty value).
LOCAL = "local"


class RayResource(dg.ConfigurableResource):
    """Connects the current process to Ray before parallel or GPU work.

    Lifecycle: `connect()` is idempotent. With no address it starts a local Ray bound to 127.0.0.1 and leaves
    it running for the life of the process, so several assets in one run (or tests in one session) share it.
    With an address it attaches to that cluster and never shuts it down.
    """

    address: str | None = Field(
        default=None,
        description=f"Ray address: host:6379 when this process runs on a Ray node, or {LOCAL!r} for a Ray started "
        "in this process on 127.0.0.1. Unset: RAY_ADDRESS, else local. An http(s):// job API address sends heavy "
        "steps to that cluster as Ray jobs and leaves this resource local. (Not ray://: Ray Data does not run "
        "over Ray Client.)",
    )
    num_cpus: int | None = Field(
        default=None, description="CPUs for a local Ray; unset: all of this machine's."
    )
    object_store_memory_mb: int = Field(
        default=1024, description="Object store size for a local Ray, in MiB (a remote cluster sets its own)."
    )

    def target(self) -> RayTarget:
        """How Ray is reached: local, attached to a cluster, or through a cluster's job API (jobs mode)."""
        return ray_target(self.address or get_settings().ray_address)

    def resolved_address(self) -> str | None:
        """The cluster address this process attaches to, or None for a local Ray (also in jobs mode)."""
        return self.target().driver_address

    def connect(self) -> None:
        """Attach to the configured Ray, starting a local one if needed."""
        import ray

        if ray.is_initialized():
            return
        address = self.resolved_address()
        if address:
            ray.init(address=address, log_to_driver=True, logging_level="WARNING")
        else:
            ray.init(
                num_cpus=self.num_cpus,
                include_dashboard=False,
                object_store_memory=self.object_store_memory_mb * 1024 * 1024,
                logging_level="WARNING",
                configure_logging=True,
            )
        import logging

        import ray.data

        # Ray Data logs every dataset's plan and timing at INFO; the asset's own metadata says what matters.
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
