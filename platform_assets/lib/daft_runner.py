"""Choosing Daft's runner once per process: native locally, Ray when a Ray cluster is configured."""

from __future__ import annotations

from platform_assets.lib.config import get_settings

_runner_set = False


def ensure_daft_runner() -> None:
    """Fix Daft's runner for this process (Daft allows it once): Ray if `DAFT_RUNNER=ray` or this process is
    attached to a Ray cluster (RAY_ADDRESS=host:port, as inside a Ray job).

    The native runner is the default because on one machine it is the fastest; on a cluster the same cleaning
    code runs distributed on the configured Ray. `DAFT_RUNNER=native` keeps Daft local even with a cluster.
    A job API address (RAY_ADDRESS=http://…) is not one Daft can attach to: the process is not on the cluster,
    so Daft stays native there (`DAFT_RUNNER=ray` then starts a local Ray).
    """
    global _runner_set
    if _runner_set:
        return
    import daft

    settings = get_settings()
    choice, address = settings.daft_runner, settings.ray.driver_address
    try:
        if choice == "ray" or (address and choice != "native"):
            daft.set_runner_ray(address=address)
        else:
            daft.set_runner_native()
    except Exception as err:  # Daft refuses a second choice once something has executed
        if "runner" not in str(err).lower():
            raise
    _runner_set = True
