"""The metadata center as a Dagster resource (one client for sensors and assets, local or in-cluster)."""

import dagster as dg
from pydantic import Field

from platform_assets.metadata_center.client import MetadataCenterClient


class MetadataCenterResource(dg.ConfigurableResource):
    """A client of the metadata center; URL and key from METADATA_CENTER_URL / METADATA_CENTER_API_KEY.

    The API key is a secret: it is read from the environment (or the key file) by the client, never put into
    this resource's config.
    """

    url: str | None = Field(
        default=None,
        description="Service URL. Unset: METADATA_CENTER_URL, else http://127.0.0.1:8090, read when the run "
        "starts (`make run` points it at the metadata center it starts).",
    )
    timeout_seconds: float = Field(default=10.0, description="Per-request timeout.")

    def client(self) -> MetadataCenterClient:
        """A client for the configured service (the API key never goes into resource config: it is env-only)."""
        return MetadataCenterClient(url=self.url, timeout_s=self.timeout_seconds)
