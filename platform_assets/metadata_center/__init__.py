"""The metadata center: the dataset registry (docs/metadata_center.md).

An HTTP service (FastAPI, SQLAlchemy, Alembic: `platform metadata-center serve`), its Python client and the
webhook verification helper. Importing this package loads only the light parts (the client and the
Standard Webhooks helpers); the server stack loads with `app`.
"""

from platform_assets.metadata_center.client import (
    MetadataCenterClient,
    MetadataCenterError,
    MetadataCenterUnavailable,
    RegistrationPage,
)
from platform_assets.metadata_center.webhooks import ReplayGuard, WebhookVerificationError, verify_webhook

__all__ = [
    "MetadataCenterClient",
    "MetadataCenterError",
    "MetadataCenterUnavailable",
    "RegistrationPage",
    "ReplayGuard",
    "WebhookVerificationError",
    "verify_webhook",
]
