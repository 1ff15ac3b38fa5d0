"""Resources of the cross-domain quality operations."""

from platform_assets.defs.quality.alerts import AlertWebhook

__all__ = ["AlertWebhook"]
