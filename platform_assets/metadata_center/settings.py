"""Configuration of the metadata center, its client and the SDK.

The METADATA_CENTER_* variables are read in `platform_assets/lib/config.py`, the one place that reads the
environment, and only when asked (never at import time); this module re-exports them for the metadata center's
code. Storage settings (AWS_*) and the data directory come from `get_settings()`. docs/configuration.md lists
every variable of the platform.

| variable | default |
|---|---|
| METADATA_CENTER_URL | http://127.0.0.1:8090 |
| METADATA_CENTER_API_KEY | generated into $PLATFORM_DATA_DIR/metadata_center_api_key (0600) on first start |
| METADATA_CENTER_WEBHOOK_SECRET | generated into $PLATFORM_DATA_DIR/metadata_center_webhook_secret (0600) |
| METADATA_CENTER_DB_URL | sqlite:///$PLATFORM_DATA_DIR/metadata_center.db |
| METADATA_CENTER_WEBHOOK_URLS | unset (comma-separated subscriber URLs) |
| METADATA_CENTER_REQUIRE_KEY_FOR_READS | false |
| METADATA_CENTER_WEBHOOK_MAX_ATTEMPTS | 10 |
| METADATA_CENTER_WEBHOOK_BACKOFF_S | 2.0 (doubling per attempt, capped at 10 minutes) |
| METADATA_CENTER_MAX_BODY_BYTES | 1048576 (larger request bodies are answered 413; at least 1024) |
| METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS | unset (comma-separated hosts or CIDRs that subscribers may target although they are loopback or private addresses) |
| PLATFORM_STORAGE_ROOTS | the lake and $PLATFORM_DATA_DIR/shared (where a storage_path may point; see `storage.py`) |
"""

from platform_assets.lib.config import (  # noqa: F401 - re-exported
    METADATA_CENTER_DEFAULT_URL as DEFAULT_URL,
)
from platform_assets.lib.config import (  # noqa: F401
    MetadataCenterSettings,
    metadata_center_settings,
)
