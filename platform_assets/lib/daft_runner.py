"""Choosing Daft's runner once per process: native locally, Ray when a Ray cluster is configured."""

from __future__ import annotations

from platform_assets.lib.config import get_settings

_runner_set = False


def ensure_daft_runner() -> None:
    """Fix Daft's runner for this process (Daft allows it once): Ray if `DAFT_RUNNER=ray` or `RAY_ADDRESS` is set.

    The native runner is the default because on one machine it is the fastest; on a cluster the same cleaning
    code runs distributed on the configured Ray. `DAFT_RUNNER=native` keeps Daft local even with a cluster.
    """
    global _runner_set
    if _runner_set:
        return
    import daft

    settings = get_settings()
    choice, address = settings.daft_runner, settings.ray_address
    try:
        if choice == "ray" or (address and choice != "native"):
            daft.set_runner_ray(address=address)
        else:
            daft.set_runner_native()
    except Exception as err:  # Daft refuses a second choice once something has executed
        if "runner" not in str(err).lower():
            raise
    _runner_set = True
