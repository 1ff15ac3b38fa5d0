"""The background worker that delivers webhook messages from the outbox table, retrying with backoff."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import sqlalchemy as sa

from platform_assets.metadata_center.db import read_session, write_session
from platform_assets.metadata_center.models import WebhookDelivery, utcnow
from platform_assets.metadata_center.webhooks import TargetPolicy, WebhookTargetError, sign_headers

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 600.0
# A claimed delivery is invisible to other workers (other replicas) this long; covers the send timeout.
CLAIM_LEASE_S = 120.0
SEND_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 1.0
ERROR_PAUSE_S = 5.0
BATCH = 20


def backoff_s(attempts: int, base_s: float) -> float:
    """Delay before the next attempt after `attempts` failures: base, 2×base, 4×base … capped."""
    return min(base_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)


class DeliveryWorker:
    """Sends due deliveries, one at a time, signed with the webhook secret; wakes up on `notify()`."""

    def __init__(
        self,
        engine: sa.Engine,
        secret: str,
        max_attempts: int,
        backoff_base_s: float,
        targets: TargetPolicy | None = None,
    ) -> None:
        self._engine = engine
        # Checked again at every attempt: a subscriber stored earlier, or a name that now resolves to a
        # private address, is refused too.
        self._targets = targets or TargetPolicy()
        self._secret = secret
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="webhook-delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop after the delivery in flight (pending ones stay in the table for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def notify(self) -> None:
        """New deliveries were queued: look now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.deliver_due()
            except Exception as err:  # a database outage must not kill the worker
                log.error("webhook delivery loop failed (%s); retrying in %.0fs", err, ERROR_PAUSE_S)
                self._stop.wait(ERROR_PAUSE_S)
                continue
            if sent == 0:
                self._wake.wait(POLL_INTERVAL_S)
                self._wake.clear()

    def deliver_due(self) -> int:
        """Attempt every delivery that is due now; returns how many were attempted."""
        now = utcnow()
        with read_session(self._engine) as session:
            due = list(
                session.scalars(
                    sa.select(WebhookDelivery.id)
                    .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                    .order_by(WebhookDelivery.id)
                    .limit(BATCH)
                )
            )
        attempted = 0
        for delivery_id in due:
            if self._stop.is_set():
                break
            claimed = self._claim(delivery_id)
            if claimed is not None:
                self._attempt(claimed)
                attempted += 1
        return attempted

    def _claim(self, delivery_id: int) -> WebhookDelivery | None:
        """Take a due delivery by pushing its next attempt past the lease; None if another worker has it."""
        now = utcnow()
        with write_session(self._engine) as session:
            result = session.execute(
                sa.update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + timedelta(seconds=CLAIM_LEASE_S))
            )
            if result.rowcount != 1:
                return None
            return session.get(WebhookDelivery, delivery_id)

    def _attempt(self, delivery: WebhookDelivery) -> None:
        import requests

        status_code: int | None = None
        error: str | None = None
        refused = False
        headers = {
            "content-type": "application/json",
            "user-agent": "platform-metadata-center",
            # Signed per attempt: the id stays, the timestamp is the time of this attempt.
            **sign_headers(self._secret, delivery.webhook_id, delivery.body),
        }
        try:
            self._targets.check(delivery.url)
            # stream=True and no read: the reply's body is never downloaded nor stored (the log keeps the
            # status code only), so a subscriber URL cannot be used to read another service's answers.
            with requests.post(
                delivery.url,
                data=delivery.body.encode("utf-8"),
                headers=headers,
                timeout=SEND_TIMEOUT_S,
                allow_redirects=False,  # a redirect is not a delivery, and must not leak the body elsewhere
                stream=True,
            ) as response:
                status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except WebhookTargetError as err:
            error, refused = f"refused: {err}"[:1000], True
        except requests.RequestException as err:
            error = f"{type(err).__name__}: {err}"[:1000]
        now = utcnow()
        attempts = delivery.attempts + 1
        values: dict[str, object] = {
            "attempts": attempts,
            "last_attempt_at": now,
            "last_status_code": status_code,
            "last_error": error,
        }
        if error is None:
            values.update(status="delivered", delivered_at=now)
        elif attempts >= self._max_attempts or refused:
            values.update(status="failed")
            log.warning(
                "webhook %s to %s failed after %d attempts: %s",
                delivery.webhook_id,
                delivery.url,
                attempts,
                error,
            )
        else:
            delay = backoff_s(attempts, self._backoff_base_s)
            values.update(next_attempt_at=now + timedelta(seconds=delay))
            log.info(
                "webhook %s to %s failed (%s); retry %d in %.1fs",
                delivery.webhook_id,
                delivery.url,
                error,
                attempts + 1,
                delay,
            )
        with write_session(self._engine) as session:
            session.execute(
                sa.update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values)
            )
