"""A small, synchronous Python client for the metadata center API.

    from platform_assets.metadata_center.client import MetadataCenterClient

    client = MetadataCenterClient()                 # METADATA_CENTER_URL / METADATA_CENTER_API_KEY
    client.register(payload)                        # -> {"seq", "dataset_id", "version", "registered_at", …}
    page = client.list(after=cursor, limit=100)     # -> RegistrationPage(items, next_after, has_more)
    client.get("sales_training_2024_01")            # -> the Cube Studio view (storage, schema, version, …)
    client.get_lineage(id); client.put_lineage(id, record); client.health()

Errors: `MetadataCenterUnavailable` when the service cannot be reached (connection refused, timeout, 502,
503, 504), `MetadataCenterError` (with `.status`, `.code`, `.field`) for every other failed request.
Imports only the standard library at import time (requests is imported on first use), so importing it is
cheap for sensors and notebooks. One client may be shared between threads (a session per thread).
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

API = "/api/v1"
DEFAULT_TIMEOUT_S = 10.0
UNAVAILABLE_STATUSES = (502, 503, 504)


class MetadataCenterError(Exception):
    """A request the metadata center answered with an error.

    `status` is the HTTP status (401 missing or wrong key, 404 unknown, 422 invalid), `code` the API's
    error code, `field` the offending field for validation errors (e.g. "schema.columns.0.type").
    """

    def __init__(
        self, message: str, status: int | None = None, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field


class MetadataCenterUnavailable(MetadataCenterError):
    """The metadata center could not be reached or is not ready (connection refused, timeout, 502/503/504)."""


@dataclass(frozen=True)
class RegistrationPage:
    """One page of the registration log: `items` in seq order; resume with `after=next_after`."""

    items: list[dict[str, Any]]
    next_after: int
    has_more: bool = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class MetadataCenterClient:
    """Talks to one metadata center. `url` and `api_key` default to the settings (environment), the key
    falling back to the one a local service generated under $PLATFORM_DATA_DIR."""

    url: str | None = None
    api_key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.url is None or self.api_key is None:
            from platform_assets.metadata_center.settings import metadata_center_settings

            settings = metadata_center_settings()
            self.url = self.url or settings.url
            self.api_key = self.api_key or settings.client_api_key()
        self.url = self.url.rstrip("/")

    # -- the API ---------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """GET /healthz: {"status": "ok", "database", "schema_revision"}; raises Unavailable when down."""
        return self._request("GET", "/healthz")

    def register(self, payload: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /api/v1/datasets/register: returns {seq, dataset_id, version, registered_at, payload,
        webhook_deliveries}. With `idempotency_key`, a retry with the same key and payload within 24 hours
        gets the first answer instead of registering another version."""
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        return self._request("POST", f"{API}/datasets/register", json=dict(payload), extra_headers=extra)

    def list(
        self, after: int = 0, limit: int = 100, tags: Sequence[str] = (), latest: bool = False
    ) -> RegistrationPage:
        """GET /api/v1/datasets: registrations with seq > after, in seq order (each {seq, dataset_id,
        version, registered_at, payload}). `tags` keeps those with every tag; `latest` only each dataset's
        newest version."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if tags:
            params["tag"] = list(tags)
        if latest:
            params["latest"] = "true"
        body = self._request("GET", f"{API}/datasets", params=params)
        return RegistrationPage(items=body["items"], next_after=body["next_after"], has_more=body["has_more"])

    def iter_registrations(
        self, after: int = 0, page_size: int = 500, tags: Sequence[str] = (), latest: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every registration after `after`, page by page."""
        while True:
            page = self.list(after=after, limit=page_size, tags=tags, latest=latest)
            yield from page.items
            if not page.has_more:
                return
            after = page.next_after

    def get(self, dataset_id: str, version: int | None = None) -> dict[str, Any]:
        """GET /api/v1/datasets/{id}: the Cube Studio view (dataset_id, name, version, versions, storage
        {protocol, endpoint, bucket, path, access_via, uri}, schema, format, row_count, size_bytes, tags,
        metadata, mount_command). Raises MetadataCenterError(status=404) when unknown."""
        params = {"version": version} if version is not None else None
        return self._request("GET", f"{API}/datasets/{_quote(dataset_id)}", params=params)

    def get_lineage(self, entity_id: str) -> dict[str, Any]:
        """GET /api/v1/lineage/{id}: {entity_type, entity_id, lineage: {upstream: {source_tables,
        etl_jobs, datasets, …}, downstream: {datasets, training_jobs, models, …}}, updated_at}."""
        return self._request("GET", f"{API}/lineage/{_quote(entity_id, safe='/')}")

    def put_lineage(self, entity_id: str, record: Mapping[str, Any], replace: bool = False) -> dict[str, Any]:
        """PUT /api/v1/lineage/{id}: merges the record's ids into the entity's lineage (or replaces the whole
        lineage with `replace=True`); returns the resulting record."""
        params = {"mode": "replace"} if replace else None
        return self._request(
            "PUT", f"{API}/lineage/{_quote(entity_id, safe='/')}", json=dict(record), params=params
        )

    def add_subscriber(self, url: str) -> dict[str, Any]:
        """POST /api/v1/webhooks/subscribers: send every future registration to `url`."""
        return self._request("POST", f"{API}/webhooks/subscribers", json={"url": url})

    def deliveries(
        self, status: str | None = None, seq: int | None = None, limit: int = 100
    ) -> builtins.list[dict[str, Any]]:
        """GET /api/v1/webhooks/deliveries: the webhook delivery log."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if seq is not None:
            params["seq"] = seq
        return self._request("GET", f"{API}/webhooks/deliveries", params=params)["items"]

    # -- plumbing --------------------------------------------------------------------------------------

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            self._local.session = session
        return session

    def _request(
        self, method: str, path: str, extra_headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Any:
        import requests

        headers = {"Accept": "application/json", **(extra_headers or {})}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        target = f"{self.url}{path}"
        try:
            response = self._session().request(
                method, target, headers=headers, timeout=self.timeout_s, **kwargs
            )
        except requests.ConnectionError as err:
            raise MetadataCenterUnavailable(
                f"metadata center unreachable at {self.url}: {_reason(err)}", code="unavailable"
            ) from None
        except requests.Timeout:
            raise MetadataCenterUnavailable(
                f"metadata center at {self.url} did not answer within {self.timeout_s:g}s", code="unavailable"
            ) from None
        if response.ok:
            return response.json()
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = body.get("message") or response.text[:200] or response.reason
        text = f"{method} {path}: HTTP {response.status_code}: {message}"
        if response.status_code == 401:
            text += " (set METADATA_CENTER_API_KEY)"
        error_type = (
            MetadataCenterUnavailable if response.status_code in UNAVAILABLE_STATUSES else MetadataCenterError
        )
        raise error_type(text, status=response.status_code, code=body.get("error"), field=body.get("field"))


def _quote(value: str, safe: str = "") -> str:
    from urllib.parse import quote

    return quote(value, safe=safe)


def _reason(err: Exception) -> str:
    """The innermost cause of a connection error, e.g. '[Errno 111] Connection refused'."""
    import re

    found = re.search(r"\[Errno -?\d+\][^'\"()]*", str(err))
    return found.group(0).strip() if found else type(err).__name__
