"""The registry's operations on the database: registrations, lineage, webhook subscribers and deliveries.

Every write is one transaction. Registrations take the seq counter's row lock first (BEGIN IMMEDIATE on
SQLite), which orders them: seqs are unique and gap-free, and commit in seq order, so a poller that resumes
after seq N never skips a registration that committed late with a smaller seq.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from platform_assets.metadata_center.db import read_session, with_retry, write_session
from platform_assets.metadata_center.models import (
    REGISTRATION_SEQ,
    Counter,
    IdempotencyKey,
    LineageEdge,
    LineageEntity,
    Registration,
    RegistrationTag,
    WebhookDelivery,
    WebhookSubscriber,
    utcnow,
)
from platform_assets.metadata_center.schemas import (
    DOWNSTREAM_KINDS,
    UPSTREAM_KINDS,
    LineageRecord,
    RegistrationPayload,
)
from platform_assets.metadata_center.webhooks import EVENT_REGISTERED, new_message_id

MAX_PAGE = 1000
# List pages carry a registration's metadata only up to this size (its compact JSON); larger metadata is
# replaced by a marker and served by GET /api/v1/datasets/{id}, so that a page stays small.
LIST_METADATA_MAX_BYTES = 8 * 1024
# How long an Idempotency-Key's answer is kept.
IDEMPOTENCY_TTL = timedelta(hours=24)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def registration_item(registration: Registration) -> dict[str, Any]:
    """A registration as the list endpoint and webhooks carry it."""
    return {
        "seq": registration.seq,
        "dataset_id": registration.dataset_id,
        "version": registration.version,
        "registered_at": iso(registration.registered_at),
        "payload": registration.payload,
    }


def _insert_ignore(session: Session, model: type, rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and Postgres."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and Postgres are supported backends
        raise NotImplementedError(f"unsupported database dialect {dialect!r}")
    session.execute(insert(model).values(rows).on_conflict_do_nothing(index_elements=list(keys)))


def _upsert_entity(session: Session, entity_id: str, entity_type: str) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = utcnow()
    statement = insert(LineageEntity).values(entity_id=entity_id, entity_type=entity_type, updated_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["entity_id"], set_={"entity_type": entity_type, "updated_at": now}
        )
    )


def _add_edges(session: Session, entity_id: str, direction: str, sides: dict[str, Iterable[str]]) -> None:
    now = utcnow()
    rows = [
        {"entity_id": entity_id, "direction": direction, "kind": kind, "ref": ref.strip(), "created_at": now}
        for kind, refs in sides.items()
        for ref in dict.fromkeys(refs)
    ]
    _insert_ignore(session, LineageEdge, rows, ["entity_id", "direction", "kind", "ref"])


def _upstream_from_metadata(metadata: dict[str, Any]) -> dict[str, list[str]]:
    """Lineage a registration already states: metadata.etl_job_id, metadata.source_tables and
    metadata.upstream_datasets."""
    upstream: dict[str, list[str]] = {}
    if isinstance(metadata.get("etl_job_id"), str) and metadata["etl_job_id"].strip():
        upstream["etl_jobs"] = [metadata["etl_job_id"]]
    for key, kind in (("source_tables", "source_tables"), ("upstream_datasets", "datasets")):
        values = metadata.get(key)
        if isinstance(values, list):
            refs = [v for v in values if isinstance(v, str) and v.strip()]
            if refs:
                upstream[kind] = refs
    return upstream


def list_item(registration: Registration) -> dict[str, Any]:
    """A registration as a list page carries it: metadata larger than LIST_METADATA_MAX_BYTES is replaced
    by {"truncated": true, "size_bytes": n} and the item gets "metadata_truncated": true."""
    item = registration_item(registration)
    metadata = registration.payload.get("metadata") or {}
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > LIST_METADATA_MAX_BYTES:
        item["payload"] = {**registration.payload, "metadata": {"truncated": True, "size_bytes": size}}
        item["metadata_truncated"] = True
    return item


@dataclass(frozen=True)
class Registered:
    """The outcome of a registration; `replayed` when it is the stored answer to an Idempotency-Key."""

    item: dict[str, Any]
    deliveries: int
    replayed: bool = False


class IdempotencyConflict(Exception):
    """An Idempotency-Key reused, within its 24 hours, with another request body."""


class _Replay(Exception):
    """Leaves the registration's transaction (rolling back the seq it took) with a stored answer."""

    def __init__(self, result: Registered) -> None:
        super().__init__("replay")
        self.result = result


def request_hash(stored: dict[str, Any]) -> str:
    """SHA-256 of a payload's canonical JSON: equal for the same registration however it was spelled."""
    canonical = json.dumps(stored, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def register(
    engine: sa.Engine, payload: RegistrationPayload, idempotency_key: str | None = None
) -> Registered:
    """Store a registration as the next version of its dataset, with its tags, the lineage its metadata
    states and one webhook delivery per active subscriber, in one transaction.

    With `idempotency_key`, the answer is kept for IDEMPOTENCY_TTL: the same key with the same payload gets
    that answer again (nothing is registered), the same key with another payload raises
    IdempotencyConflict. The key is looked up after the seq counter's row lock is taken, so two concurrent
    requests with one key register once."""
    stored = payload.stored()
    digest = request_hash(stored)

    def attempt() -> Registered:
        try:
            return store()
        except _Replay as replay:
            return replay.result

    def store() -> Registered:
        with write_session(engine) as session:
            seq = session.execute(
                sa.update(Counter)
                .where(Counter.name == REGISTRATION_SEQ)
                .values(value=Counter.value + 1)
                .returning(Counter.value)
            ).scalar_one()
            if idempotency_key is not None:
                session.execute(
                    sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - IDEMPOTENCY_TTL)
                )
                previous = session.get(IdempotencyKey, idempotency_key)
                if previous is not None:
                    if previous.request_hash != digest:
                        raise IdempotencyConflict(
                            f"Idempotency-Key {idempotency_key!r} was used in the last 24 hours for another "
                            "registration (a different body); use a new key for a new registration"
                        )
                    answer = previous.response
                    raise _Replay(Registered(answer["item"], answer["deliveries"], replayed=True))
            latest = session.scalar(
                sa.select(sa.func.max(Registration.version)).where(
                    Registration.dataset_id == payload.dataset_id
                )
            )
            registration = Registration(
                seq=seq,
                dataset_id=payload.dataset_id,
                version=(latest or 0) + 1,
                name=payload.name,
                storage_path=payload.storage_path,
                format=payload.format,
                size_bytes=payload.size_bytes,
                row_count=payload.row_count,
                payload=stored,
                registered_at=utcnow(),
            )
            session.add(registration)
            session.flush()
            _insert_ignore(
                session, RegistrationTag, [{"seq": seq, "tag": t} for t in payload.tags], ["seq", "tag"]
            )
            _upsert_entity(session, payload.dataset_id, "dataset")
            _add_edges(session, payload.dataset_id, "upstream", _upstream_from_metadata(payload.metadata))
            item = registration_item(registration)
            body = json.dumps(
                {"type": EVENT_REGISTERED, "timestamp": item["registered_at"], "data": item},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            subscribers = session.execute(
                sa.select(WebhookSubscriber.id, WebhookSubscriber.url).where(
                    WebhookSubscriber.active.is_(True)
                )
            ).all()
            now = utcnow()
            for subscriber_id, url in subscribers:
                session.add(
                    WebhookDelivery(
                        webhook_id=new_message_id(),
                        subscriber_id=subscriber_id,
                        url=url,
                        event_type=EVENT_REGISTERED,
                        seq=seq,
                        body=body,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
            if idempotency_key is not None:
                session.add(
                    IdempotencyKey(
                        key=idempotency_key,
                        request_hash=digest,
                        seq=seq,
                        response={"item": item, "deliveries": len(subscribers)},
                        created_at=now,
                    )
                )
            return Registered(item=item, deliveries=len(subscribers))

    return with_retry(attempt)


def list_registrations(
    engine: sa.Engine,
    after: int = 0,
    limit: int = 100,
    tags: Sequence[str] = (),
    latest_only: bool = False,
) -> tuple[list[dict[str, Any]], bool]:
    """Registrations with seq > `after`, in seq order, at most `limit`; and whether more follow.

    `tags`: only registrations carrying every tag; `latest_only`: only each dataset's newest version.
    """
    query = sa.select(Registration).where(Registration.seq > after)
    for tag in tags:
        query = query.where(
            Registration.seq.in_(sa.select(RegistrationTag.seq).where(RegistrationTag.tag == tag))
        )
    if latest_only:
        newer = aliased(Registration)
        query = query.where(
            Registration.version
            == sa.select(sa.func.max(newer.version))
            .where(newer.dataset_id == Registration.dataset_id)
            .scalar_subquery()
        )
    query = query.order_by(Registration.seq).limit(limit + 1)
    with read_session(engine) as session:
        rows = list(session.scalars(query))
    return [list_item(r) for r in rows[:limit]], len(rows) > limit


def get_registration(
    engine: sa.Engine, dataset_id: str, version: int | None = None
) -> tuple[Registration, list[int]] | None:
    """A dataset's registration (the latest, or `version`) and all its version numbers; None if unknown."""
    with read_session(engine) as session:
        versions = list(
            session.scalars(
                sa.select(Registration.version)
                .where(Registration.dataset_id == dataset_id)
                .order_by(Registration.version)
            )
        )
        if not versions:
            return None
        wanted = versions[-1] if version is None else version
        registration = session.scalar(
            sa.select(Registration).where(
                Registration.dataset_id == dataset_id, Registration.version == wanted
            )
        )
    return (registration, versions) if registration is not None else None


def get_lineage(engine: sa.Engine, entity_id: str) -> dict[str, Any] | None:
    """The lineage record of an entity; None when nothing is known about it."""
    with read_session(engine) as session:
        entity = session.get(LineageEntity, entity_id)
        if entity is None:
            return None
        edges = session.execute(
            sa.select(LineageEdge.direction, LineageEdge.kind, LineageEdge.ref)
            .where(LineageEdge.entity_id == entity_id)
            .order_by(LineageEdge.id)
        ).all()
    sides: dict[str, dict[str, list[str]]] = {
        "upstream": {kind: [] for kind in UPSTREAM_KINDS},
        "downstream": {kind: [] for kind in DOWNSTREAM_KINDS},
    }
    for direction, kind, ref in edges:
        sides[direction].setdefault(kind, []).append(ref)
    return {
        "entity_type": entity.entity_type,
        "entity_id": entity.entity_id,
        "lineage": sides,
        "updated_at": iso(entity.updated_at),
    }


def put_lineage(
    engine: sa.Engine, entity_id: str, record: LineageRecord, replace: bool = False
) -> dict[str, Any]:
    """Merge `record` into the entity's lineage (every id in it is added, nothing removed); with
    `replace`, the record becomes the whole lineage."""

    def attempt() -> None:
        with write_session(engine) as session:
            _upsert_entity(session, entity_id, record.entity_type)
            if replace:
                session.execute(sa.delete(LineageEdge).where(LineageEdge.entity_id == entity_id))
            _add_edges(session, entity_id, "upstream", record.lineage.upstream)
            _add_edges(session, entity_id, "downstream", record.lineage.downstream)

    with_retry(attempt)
    result = get_lineage(engine, entity_id)
    assert result is not None
    return result


def sync_env_subscribers(engine: sa.Engine, urls: Sequence[str]) -> None:
    """Make exactly `urls` the active subscribers that come from METADATA_CENTER_WEBHOOK_URLS."""
    with write_session(engine) as session:
        session.execute(
            sa.update(WebhookSubscriber)
            .where(WebhookSubscriber.source == "env", WebhookSubscriber.url.not_in(list(urls) or [""]))
            .values(active=False)
        )
        for url in dict.fromkeys(urls):
            existing = session.scalar(sa.select(WebhookSubscriber).where(WebhookSubscriber.url == url))
            if existing is None:
                session.add(WebhookSubscriber(url=url, source="env", active=True, created_at=utcnow()))
            else:
                existing.active = True


def subscriber_item(subscriber: WebhookSubscriber) -> dict[str, Any]:
    """A subscriber as the admin endpoints return it."""
    return {
        "id": subscriber.id,
        "url": subscriber.url,
        "source": subscriber.source,
        "active": subscriber.active,
        "created_at": iso(subscriber.created_at),
    }


def add_subscriber(engine: sa.Engine, url: str) -> dict[str, Any]:
    """Subscribe `url` to every future registration (re-activates a removed one)."""

    def attempt() -> dict[str, Any]:
        with write_session(engine) as session:
            existing = session.scalar(sa.select(WebhookSubscriber).where(WebhookSubscriber.url == url))
            if existing is None:
                existing = WebhookSubscriber(url=url, source="api", active=True, created_at=utcnow())
                session.add(existing)
            else:
                existing.active = True
            session.flush()
            return subscriber_item(existing)

    return with_retry(attempt)


def remove_subscriber(engine: sa.Engine, subscriber_id: int) -> bool:
    """Stop notifying a subscriber (its delivery log is kept); False when unknown."""
    with write_session(engine) as session:
        subscriber = session.get(WebhookSubscriber, subscriber_id)
        if subscriber is None:
            return False
        subscriber.active = False
        session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.subscriber_id == subscriber_id, WebhookDelivery.status == "pending")
            .values(status="cancelled", last_error="subscriber removed")
        )
        return True


def list_subscribers(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every subscriber, active or not."""
    with read_session(engine) as session:
        return [
            subscriber_item(s)
            for s in session.scalars(sa.select(WebhookSubscriber).order_by(WebhookSubscriber.id))
        ]


def delivery_item(delivery: WebhookDelivery) -> dict[str, Any]:
    """A delivery log entry."""
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "subscriber_id": delivery.subscriber_id,
        "url": delivery.url,
        "event_type": delivery.event_type,
        "seq": delivery.seq,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "last_attempt_at": iso(delivery.last_attempt_at),
        "created_at": iso(delivery.created_at),
        "delivered_at": iso(delivery.delivered_at),
    }


def list_deliveries(
    engine: sa.Engine,
    status: str | None = None,
    seq: int | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The delivery log, oldest first."""
    query = sa.select(WebhookDelivery).where(WebhookDelivery.id > after_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if seq is not None:
        query = query.where(WebhookDelivery.seq == seq)
    with read_session(engine) as session:
        return [delivery_item(d) for d in session.scalars(query.order_by(WebhookDelivery.id).limit(limit))]


def retry_delivery(engine: sa.Engine, delivery_id: int) -> dict[str, Any] | None:
    """Queue a failed or cancelled delivery again (attempts restart from zero); None when unknown."""
    with write_session(engine) as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return None
        if delivery.status != "delivered":
            delivery.status = "pending"
            delivery.attempts = 0
            delivery.next_attempt_at = utcnow()
        session.flush()
        return delivery_item(delivery)
