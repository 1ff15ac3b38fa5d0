"""The metadata center HTTP API (docs/metadata_center.md), as a FastAPI application.

`prepare(settings)` migrates the database (Alembic `upgrade head`) and installs the API key, the webhook
secret and the configured subscribers; `create_app(service)` builds the API around the result.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
import sqlalchemy as sa
from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from platform_assets.metadata_center import db, registry
from platform_assets.metadata_center.delivery import DeliveryWorker
from platform_assets.metadata_center.models import Registration
from platform_assets.metadata_center.schemas import (
    MAX_BIGINT,
    MAX_INT,
    LineageRecord,
    RegistrationPayload,
    SubscriberRequest,
)
from platform_assets.metadata_center.security import (
    KeyVerifier,
    generate_api_key,
    install_bootstrap_key,
    read_or_create_secret,
)
from platform_assets.metadata_center.settings import MetadataCenterSettings
from platform_assets.metadata_center.storage import mount_command, storage_policy, storage_view
from platform_assets.metadata_center.webhooks import (
    TargetPolicy,
    WebhookTargetError,
    check_secret,
    generate_secret,
)

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
READ_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass
class Service:
    """Everything the API needs at run time."""

    settings: MetadataCenterSettings
    engine: sa.Engine
    verifier: KeyVerifier
    worker: DeliveryWorker
    schema_revision: str | None
    targets: TargetPolicy


def prepare(settings: MetadataCenterSettings) -> Service:
    """Migrate the database, install the API key, webhook secret and subscribers; the worker is not started."""
    storage_policy()  # a malformed PLATFORM_STORAGE_ROOTS stops the start, not every registration
    engine = db.create_db_engine(settings.database_url)
    revision = db.upgrade(engine)
    if settings.api_key:
        install_bootstrap_key(engine, settings.api_key, "env")
    else:
        install_bootstrap_key(engine, read_or_create_secret(settings.api_key_file, generate_api_key), "file")
    secret = settings.webhook_secret or read_or_create_secret(settings.webhook_secret_file, generate_secret)
    try:
        check_secret(secret)
    except ValueError as err:
        raise ValueError(f"METADATA_CENTER_WEBHOOK_SECRET: {err}") from None
    targets = TargetPolicy.of(settings.webhook_allowed_hosts)
    for url in settings.webhook_urls:
        try:
            targets.check(url)
        except WebhookTargetError as err:
            raise ValueError(f"METADATA_CENTER_WEBHOOK_URLS: {err}") from None
    registry.sync_env_subscribers(engine, settings.webhook_urls)
    verifier = KeyVerifier(engine)
    verifier.refresh()
    worker = DeliveryWorker(
        engine, secret, settings.webhook_max_attempts, settings.webhook_backoff_s, targets
    )
    return Service(settings, engine, verifier, worker, revision, targets)


class ApiError(Exception):
    """An error answered as JSON: {"error": code, "message": …, "field": …}."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def _error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """'schema.columns.0.type' for ('body', 'schema', 'columns', 0, 'type')."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        source = parts.pop(0)
        if not parts or not isinstance(parts[0], str):
            # A body that is not JSON at all: the location is a character offset, not a field.
            return source
    return ".".join(str(p) for p in parts)


class ApiKeyMiddleware:
    """Requires X-API-Key on writes (and on reads when configured) before anything else runs.

    A middleware rather than a FastAPI dependency so that an unauthenticated request is answered 401
    before its body is parsed: it learns nothing about validation and changes nothing.
    """

    def __init__(self, app: ASGIApp, verifier: KeyVerifier, require_key_for_reads: bool) -> None:
        self.app = app
        self.verifier = verifier
        self.require_key_for_reads = require_key_for_reads

    def _needs_key(self, method: str, path: str) -> bool:
        if not path.startswith(API_PREFIX + "/"):
            return False  # /healthz and the API docs
        if path.startswith(API_PREFIX + "/webhooks"):
            return True  # subscriber URLs and the delivery log are admin data
        return method not in READ_METHODS or self.require_key_for_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._needs_key(scope["method"], scope["path"]):
            presented = None
            for name, value in scope["headers"]:
                if name == b"x-api-key":
                    presented = value.decode("latin-1")
                    break
            if presented is not None and self.verifier.needs_refresh():
                await anyio.to_thread.run_sync(self.verifier.refresh)
            if not self.verifier.is_valid(presented):
                message = "missing X-API-Key header" if presented is None else "invalid API key"
                response = _error_response(401, "unauthorized", message)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# A refused body is read and discarded up to this much before the 413 is sent, so that the client, still
# sending, reads the answer rather than a reset connection; a larger one has its connection closed instead.
DRAIN_MAX_BYTES = 64 * 1024 * 1024


class BodyLimitMiddleware:
    """Answers 413 to a request whose body is larger than `max_bytes` (METADATA_CENTER_MAX_BODY_BYTES)
    before anything parses it: by its Content-Length, or counted as it arrives when it is sent chunked."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, more_body: bool) -> None:
        drained = 0
        while more_body and drained <= DRAIN_MAX_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            more_body = message.get("more_body", False)
        response = _error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_bytes} bytes (METADATA_CENTER_MAX_BODY_BYTES)",
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None:
            # The server reads exactly Content-Length bytes, so the declared size is the body's size.
            if declared > self.max_bytes:
                await self._refuse(scope, receive, send, more_body=True)
            else:
                await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            more_body = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, more_body)
                return
            chunks.append(chunk)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)


def dataset_view(
    service: Service, registration: Registration, versions: list[int], pinned: bool
) -> dict[str, Any]:
    """The Cube Studio view for one registration, plus the registered fields."""
    payload = registration.payload
    s3 = service.settings.s3
    return {
        "dataset_id": registration.dataset_id,
        "name": registration.name,
        "version": registration.version,
        "latest_version": versions[-1],
        "versions": versions,
        "seq": registration.seq,
        "registered_at": registry.iso(registration.registered_at),
        "format": registration.format,
        "size_bytes": registration.size_bytes,
        "row_count": registration.row_count,
        "storage_path": registration.storage_path,
        "storage": storage_view(registration.storage_path, s3.endpoint_url, s3.region),
        "schema": payload["schema"],
        "tags": payload.get("tags", []),
        "metadata": payload.get("metadata", {}),
        "mount_command": mount_command(registration.dataset_id, registration.version if pinned else None),
    }


def create_app(service: Service) -> FastAPI:
    """The API around a prepared service; starting the app starts the webhook worker."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.worker.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.worker.stop)
            service.engine.dispose()

    app = FastAPI(
        title="platform metadata center",
        version="1",
        description="The dataset registry: registrations, the Cube Studio view, lineage, webhooks.",
        lifespan=lifespan,
    )
    # Added first, so it runs inside the key check: an unauthenticated request is answered 401 unread.
    app.add_middleware(BodyLimitMiddleware, max_bytes=service.settings.max_body_bytes)
    app.add_middleware(
        ApiKeyMiddleware,
        verifier=service.verifier,
        require_key_for_reads=service.settings.require_key_for_reads,
    )
    engine = service.engine

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError) -> JSONResponse:
        extra = {"field": err.field} if err.field else {}
        return _error_response(err.status, err.code, err.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError) -> JSONResponse:
        errors = err.errors()
        fields = [_field_of(e.get("loc", ())) for e in errors]
        first = errors[0] if errors else {"msg": "invalid request"}
        message = f"{fields[0]}: {first.get('msg')}" if fields else str(first.get("msg"))
        detail = [
            {"field": f, "message": e.get("msg"), "type": e.get("type")}
            for f, e in zip(fields, errors, strict=True)
        ]
        return _error_response(
            422,
            "validation_error",
            message,
            field=fields[0] if fields else None,
            fields=fields,
            detail=detail,
        )

    @app.exception_handler(sa.exc.OperationalError)
    async def _database_down(_request: Request, err: sa.exc.OperationalError) -> JSONResponse:
        # 503 rather than 500: clients (the Dagster sensor) treat it as "try again later", not as a bug.
        log.error("database error: %s", err.orig)
        return _error_response(503, "unavailable", "the registry database is unavailable; try again later")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 400 and err.detail == "There was an error parsing the body":
            # FastAPI's answer when the JSON parser itself fails (RecursionError on a document nested deeper
            # than it can parse): a body that is not usable JSON, answered like one that is not JSON at all.
            return _error_response(
                422,
                "validation_error",
                "body: the JSON could not be parsed (nested too deeply?)",
                field="body",
                fields=["body"],
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return _error_response(err.status_code, code, str(err.detail))

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness and readiness: the database answers and is migrated."""
        try:
            with engine.connect() as connection:
                revision = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
        except sa.exc.SQLAlchemyError as err:
            return _error_response(503, "unavailable", f"database unreachable: {type(err).__name__}")
        return JSONResponse({"status": "ok", "database": engine.dialect.name, "schema_revision": revision})

    @app.post(f"{API_PREFIX}/datasets/register", status_code=201)
    def register(
        payload: RegistrationPayload,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=255,
                description="Retries with the same key and body within 24 hours get the first answer.",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Register a dataset; registering an existing dataset_id adds a version."""
        try:
            result = registry.register(engine, payload, idempotency_key)
        except registry.IdempotencyConflict as err:
            raise ApiError(422, "idempotency_conflict", str(err), "Idempotency-Key") from None
        if result.deliveries and not result.replayed:
            service.worker.notify()
        return {**result.item, "webhook_deliveries": result.deliveries}

    @app.get(f"{API_PREFIX}/datasets")
    def list_datasets(
        after: Annotated[
            int, Query(ge=0, le=MAX_BIGINT, description="Return registrations with seq > after.")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=registry.MAX_PAGE)] = 100,
        tag: Annotated[list[str] | None, Query(description="Only registrations with every tag.")] = None,
        latest: Annotated[bool, Query(description="Only the newest version of each dataset.")] = False,
    ) -> dict[str, Any]:
        """Registrations in seq order after a cursor (the Dagster sensor's cursor is the last seq it handled)."""
        items, has_more = registry.list_registrations(engine, after, limit, tag or (), latest)
        return {"items": items, "next_after": items[-1]["seq"] if items else after, "has_more": has_more}

    @app.get(f"{API_PREFIX}/datasets/{{dataset_id}}")
    def get_dataset(
        dataset_id: str, version: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None
    ) -> dict[str, Any]:
        """The Cube Studio view of a dataset: the latest version, or `version`."""
        found = registry.get_registration(engine, dataset_id, version)
        if found is None:
            if version is not None and registry.get_registration(engine, dataset_id) is not None:
                raise ApiError(
                    404, "not_found", f"dataset {dataset_id!r} has no version {version}", "version"
                )
            raise ApiError(404, "not_found", f"dataset {dataset_id!r} is not registered", "dataset_id")
        registration, versions = found
        return dataset_view(service, registration, versions, pinned=version is not None)

    @app.get(f"{API_PREFIX}/lineage/{{entity_id:path}}")
    def get_lineage(entity_id: str) -> dict[str, Any]:
        """The lineage record of an entity."""
        record = registry.get_lineage(engine, entity_id)
        if record is None:
            raise ApiError(404, "not_found", f"no lineage recorded for {entity_id!r}", "entity_id")
        return record

    @app.put(f"{API_PREFIX}/lineage/{{entity_id:path}}")
    def put_lineage(
        entity_id: str,
        record: Annotated[LineageRecord, Body()],
        mode: Annotated[Literal["merge", "replace"], Query()] = "merge",
    ) -> dict[str, Any]:
        """Record lineage: merge adds every id in the record; replace makes the record the whole lineage."""
        if len(entity_id) > 1024:
            raise ApiError(422, "validation_error", "entity_id is longer than 1024 characters", "entity_id")
        if record.entity_id is not None and record.entity_id != entity_id:
            raise ApiError(
                422,
                "validation_error",
                f"entity_id {record.entity_id!r} differs from the URL's {entity_id!r}",
                "entity_id",
            )
        return registry.put_lineage(engine, entity_id, record, replace=mode == "replace")

    @app.get(f"{API_PREFIX}/webhooks/subscribers")
    def list_subscribers() -> dict[str, Any]:
        """Webhook subscribers (from METADATA_CENTER_WEBHOOK_URLS and this endpoint)."""
        return {"items": registry.list_subscribers(engine)}

    @app.post(f"{API_PREFIX}/webhooks/subscribers", status_code=201)
    def add_subscriber(request: SubscriberRequest) -> dict[str, Any]:
        """Subscribe a URL to every future registration (loopback and private addresses only when
        METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS allows them)."""
        try:
            service.targets.check(request.url)
        except WebhookTargetError as err:
            raise ApiError(422, "validation_error", str(err), "url") from None
        return registry.add_subscriber(engine, request.url)

    @app.delete(f"{API_PREFIX}/webhooks/subscribers/{{subscriber_id}}")
    def remove_subscriber(subscriber_id: Annotated[int, Path(le=MAX_BIGINT)]) -> dict[str, Any]:
        """Unsubscribe; its pending deliveries are cancelled, its log kept."""
        if not registry.remove_subscriber(engine, subscriber_id):
            raise ApiError(404, "not_found", f"no subscriber {subscriber_id}", "subscriber_id")
        return {"id": subscriber_id, "active": False}

    @app.get(f"{API_PREFIX}/webhooks/deliveries")
    def list_deliveries(
        status: Annotated[Literal["pending", "delivered", "failed", "cancelled"] | None, Query()] = None,
        seq: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
        after_id: Annotated[int, Query(ge=0, le=MAX_BIGINT)] = 0,
        limit: Annotated[int, Query(ge=1, le=registry.MAX_PAGE)] = 100,
    ) -> dict[str, Any]:
        """The delivery log: one entry per message and subscriber, with attempts, status and last error."""
        return {"items": registry.list_deliveries(engine, status, seq, after_id, limit)}

    @app.post(f"{API_PREFIX}/webhooks/deliveries/{{delivery_id}}/retry")
    def retry_delivery(delivery_id: Annotated[int, Path(le=MAX_BIGINT)]) -> dict[str, Any]:
        """Queue a failed delivery again."""
        item = registry.retry_delivery(engine, delivery_id)
        if item is None:
            raise ApiError(404, "not_found", f"no delivery {delivery_id}", "delivery_id")
        service.worker.notify()
        return item

    return app
