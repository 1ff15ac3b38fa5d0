"""platform_assets: an AI data platform built on Dagster.

Importing the package applies the process-wide environment defaults (no hub, no telemetry, loopback-only
Ray) before any heavy library is imported.
"""

from platform_assets.lib.runtime_env import apply_runtime_defaults

apply_runtime_defaults()

__all__ = ["apply_runtime_defaults"]
