"""Webhooks: Standard Webhooks signatures (good, tampered, expired, replayed) and real deliveries to a
receiver on loopback, with retries after failures, the delivery log, and a restart in between."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import standardwebhooks

from platform_assets.metadata_center.webhooks import (
    ReplayGuard,
    WebhookVerificationError,
    generate_secret,
    sign_headers,
    verify_webhook,
)
from platform_assets_tests.conftest import free_port
from platform_assets_tests.http_receiver import Receiver
from platform_assets_tests.metadata_center_fixture import (
    RunningMetadataCenter,
    metadata_center,
    postgres_database,
    seed_payload,
)

WAIT_S = 30.0
# The receivers here listen on loopback, which subscribers may only target when the operator allows it.
LOOPBACK = ["127.0.0.1"]


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll until `condition()` is truthy (generous deadline; nothing here asserts on time)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- verification -------------------------------------------------------------------------------------

BODY = json.dumps(
    {"type": "dataset.registered", "data": {"dataset_id": "d", "seq": 1}}, separators=(",", ":")
)


def test_verify_accepts_a_good_signature() -> None:
    secret = generate_secret()
    headers = sign_headers(secret, "msg_1", BODY)
    assert verify_webhook(headers, BODY.encode(), secret, replay_guard=ReplayGuard())["data"]["seq"] == 1
    # Header names are case-insensitive, as HTTP servers deliver them.
    upper = {k.upper(): v for k, v in sign_headers(secret, "msg_2", BODY).items()}
    assert verify_webhook(upper, BODY, secret, replay_guard=ReplayGuard())["type"] == "dataset.registered"


@pytest.mark.parametrize(
    ("case", "tamper"),
    [
        ("body changed", lambda h, b: (h, b.replace('"seq":1', '"seq":2'))),
        ("id changed", lambda h, b: ({**h, "webhook-id": "msg_other"}, b)),
        (
            "timestamp changed",
            lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 1)}, b),
        ),
        ("signature flipped", lambda h, b: ({**h, "webhook-signature": "v1," + "A" * 44}, b)),
        ("signature malformed", lambda h, b: ({**h, "webhook-signature": "garbage"}, b)),
        (
            "unknown version",
            lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
        ),
        ("headers missing", lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b)),
    ],
)
def test_verify_rejects_tampering(
    case: str, tamper: Callable[[dict[str, str], str], tuple[dict[str, str], str]]
) -> None:
    secret = generate_secret()
    headers, body = tamper(sign_headers(secret, "msg_1", BODY), BODY)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, secret, replay_guard=ReplayGuard())


def test_verify_rejects_another_secret() -> None:
    headers = sign_headers(generate_secret(), "msg_1", BODY)
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_webhook(headers, BODY, generate_secret(), replay_guard=ReplayGuard())


def test_verify_rejects_old_and_future_timestamps() -> None:
    secret = generate_secret()
    now = datetime.now(UTC)
    stale = sign_headers(secret, "msg_old", BODY, timestamp=now - timedelta(minutes=5, seconds=30))
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(stale, BODY, secret, replay_guard=ReplayGuard())
    future = sign_headers(secret, "msg_new", BODY, timestamp=now + timedelta(minutes=6))
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify_webhook(future, BODY, secret, replay_guard=ReplayGuard())
    recent = sign_headers(secret, "msg_recent", BODY, timestamp=now - timedelta(minutes=4))
    assert verify_webhook(recent, BODY, secret, replay_guard=ReplayGuard())


def test_verify_rejects_a_replay_but_accepts_a_retry() -> None:
    secret = generate_secret()
    guard = ReplayGuard()
    first = sign_headers(secret, "msg_1", BODY, timestamp=datetime.now(UTC) - timedelta(seconds=5))
    verify_webhook(first, BODY, secret, replay_guard=guard)
    with pytest.raises(WebhookVerificationError, match="replayed"):
        verify_webhook(first, BODY, secret, replay_guard=guard)
    # A retry of the same message is signed again with the time of that attempt.
    retry = sign_headers(secret, "msg_1", BODY)
    assert verify_webhook(retry, BODY, secret, replay_guard=guard)
    # The default guard is per process, on unless turned off.
    other = sign_headers(secret, f"msg_{uuid.uuid4().hex}", BODY)
    verify_webhook(other, BODY, secret)
    with pytest.raises(WebhookVerificationError, match="replayed"):
        verify_webhook(other, BODY, secret)
    assert verify_webhook(other, BODY, secret, replay_guard=None)


def test_signatures_follow_the_standard_webhooks_reference() -> None:
    # The reference library verifies what we sign (interoperability with any Standard Webhooks receiver).
    secret = generate_secret()
    assert secret.startswith("whsec_")
    headers = sign_headers(secret, "msg_ref", BODY)
    assert standardwebhooks.Webhook(secret).verify(BODY, headers)["data"]["dataset_id"] == "d"
    assert headers["webhook-signature"].startswith("v1,")


# -- delivery -----------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The outbox and its worker on both backends: SQLite (None: the default file) and a fresh Postgres."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_database("mc_webhooks") as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def deliveries(service: RunningMetadataCenter, **params: Any) -> list[dict[str, Any]]:
    return service.client().deliveries(**params)


def test_every_registration_is_delivered_signed(
    tmp_path: Path, receiver: Receiver, db_url: str | None
) -> None:
    with metadata_center(
        tmp_path / "platform", db_url=db_url, webhook_urls=[receiver.url], webhook_allowed_hosts=LOOPBACK
    ) as service:
        registered = service.client().register(seed_payload())
        assert registered["webhook_deliveries"] == 1
        headers, raw = wait_for(lambda: receiver.requests and receiver.requests[0], "the webhook")
        event = verify_webhook(headers, raw, service.webhook_secret, replay_guard=ReplayGuard())
        assert event["type"] == "dataset.registered"
        assert event["data"]["seq"] == registered["seq"]
        assert event["data"]["dataset_id"] == registered["dataset_id"] and event["data"]["version"] == 1
        assert event["data"]["payload"]["storage_path"] == "s3://etl-output/sales/2024-01/"
        assert headers["content-type"] == "application/json" and headers["webhook-id"].startswith("msg_")
        (entry,) = wait_for(lambda: deliveries(service, status="delivered", seq=registered["seq"]), "the log")
        assert entry["attempts"] == 1 and entry["last_status_code"] == 200 and entry["last_error"] is None
        assert entry["webhook_id"] == headers["webhook-id"] and entry["url"] == receiver.url
        with pytest.raises(WebhookVerificationError):
            verify_webhook(headers, raw, generate_secret(), replay_guard=ReplayGuard())


def test_failed_deliveries_are_retried_with_backoff(
    tmp_path: Path, receiver: Receiver, db_url: str | None
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: connection refused
    receiver.status = 500
    with metadata_center(
        tmp_path / "platform",
        webhook_urls=[receiver.url, dead_url],
        webhook_allowed_hosts=LOOPBACK,
        webhook_backoff_s=0.2,
        webhook_max_attempts=4,
    ) as service:
        registered = service.client().register(seed_payload())
        assert registered["webhook_deliveries"] == 2
        wait_for(lambda: len(receiver.requests) >= 2, "two failed attempts")
        (failing,) = [d for d in deliveries(service, seq=registered["seq"]) if d["url"] == receiver.url]
        assert failing["status"] == "pending" and failing["attempts"] >= 1
        assert failing["last_status_code"] == 500 and failing["last_error"].startswith("HTTP 500")

        receiver.status = 200
        wait_for(
            lambda: deliveries(service, status="delivered", seq=registered["seq"]), "the retry to succeed"
        )
        (delivered,) = deliveries(service, status="delivered", seq=registered["seq"])
        assert delivered["attempts"] == len(receiver.requests) >= 3
        assert delivered["last_error"] is None and delivered["delivered_at"]
        # One message: the same id on every attempt, each signed afresh and each verifiable.
        assert {h["webhook-id"] for h, _ in receiver.requests} == {delivered["webhook_id"]}
        guard = ReplayGuard()
        for headers, raw in receiver.requests:
            assert (
                verify_webhook(headers, raw, service.webhook_secret, replay_guard=guard)["data"]["seq"]
                == registered["seq"]
            )

        (dead,) = wait_for(lambda: deliveries(service, status="failed"), "the dead subscriber to give up")
        assert dead["url"] == dead_url and dead["attempts"] == 4
        assert "ConnectionError" in dead["last_error"] and dead["last_status_code"] is None

        # An operator re-queues it once the subscriber is back.
        response = requests.post(
            f"{service.url}/api/v1/webhooks/deliveries/{dead['id']}/retry",
            headers={"X-API-Key": service.api_key},
            timeout=10,
        )
        assert response.status_code == 200 and response.json()["status"] == "pending"


def test_subscribers_added_through_the_api(tmp_path: Path) -> None:
    with (
        Receiver() as receiver,
        metadata_center(tmp_path / "platform", webhook_allowed_hosts=LOOPBACK) as service,
    ):
        assert service.client().register(seed_payload())["webhook_deliveries"] == 0
        denied = requests.post(
            f"{service.url}/api/v1/webhooks/subscribers", json={"url": receiver.url}, timeout=10
        )
        assert denied.status_code == 401
        bad = requests.post(
            f"{service.url}/api/v1/webhooks/subscribers",
            json={"url": "ftp://nowhere"},
            headers={"X-API-Key": service.api_key},
            timeout=10,
        )
        assert bad.status_code == 422 and bad.json()["field"] == "url"
        subscriber = service.client().add_subscriber(receiver.url)
        assert subscriber["active"] and subscriber["source"] == "api"
        registered = service.client().register(seed_payload())
        assert registered["webhook_deliveries"] == 1
        body = wait_for(lambda: receiver.bodies and receiver.bodies[0], "the webhook")
        assert body["data"]["seq"] == registered["seq"]
        removed = requests.delete(
            f"{service.url}/api/v1/webhooks/subscribers/{subscriber['id']}",
            headers={"X-API-Key": service.api_key},
            timeout=10,
        )
        assert removed.status_code == 200
        assert service.client().register(seed_payload())["webhook_deliveries"] == 0


def test_pending_deliveries_survive_a_restart(tmp_path: Path, receiver: Receiver, db_url: str | None) -> None:
    receiver.status = 503
    with metadata_center(
        tmp_path / "platform",
        db_url=db_url,
        webhook_urls=[receiver.url],
        webhook_backoff_s=0.5,
        webhook_allowed_hosts=LOOPBACK,
    ) as service:
        registered = service.client().register(seed_payload())
        wait_for(lambda: receiver.requests, "a first, failed attempt")
        service.stop()
        receiver.status = 200
        service.restart()
        (delivered,) = wait_for(lambda: deliveries(service, status="delivered"), "delivery after the restart")
        assert delivered["seq"] == registered["seq"] and delivered["attempts"] >= 2
        headers, raw = receiver.requests[-1]
        assert (
            verify_webhook(headers, raw, service.webhook_secret, replay_guard=None)["data"]["seq"]
            == registered["seq"]
        )


# -- where webhooks may go: no server-side request forgery ----------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://2130706433:{port}/hook",  # 127.0.0.1 spelled as one number
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:{port}/hook",
    ],
)
def test_subscribers_on_loopback_or_private_addresses_are_refused(tmp_path: Path, url: str) -> None:
    target = url.format(port=free_port())
    with metadata_center(tmp_path / "platform") as service:
        response = requests.post(
            f"{service.url}/api/v1/webhooks/subscribers",
            json={"url": target},
            headers={"X-API-Key": service.api_key},
            timeout=30,
        )
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "url"
        assert "METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS" in response.json()["message"]
        assert service.client().register(seed_payload())["webhook_deliveries"] == 0


def test_a_loopback_subscriber_in_the_environment_stops_the_start(tmp_path: Path) -> None:
    from platform_assets.metadata_center.embedded import MetadataCenterStartError

    loopback = f"http://127.0.0.1:{free_port()}/hook"
    with (
        pytest.raises(MetadataCenterStartError) as error,
        metadata_center(tmp_path / "platform", webhook_urls=[loopback]),
    ):
        pass
    assert "METADATA_CENTER_WEBHOOK_URLS" in str(error.value)
    assert "METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS" in str(error.value)


def test_allowed_networks_admit_loopback_subscribers(tmp_path: Path, receiver: Receiver) -> None:
    with metadata_center(tmp_path / "platform", webhook_allowed_hosts=["127.0.0.0/8", "::1"]) as service:
        assert service.client().add_subscriber(receiver.url)["active"]
        registered = service.client().register(seed_payload())
        wait_for(lambda: deliveries(service, status="delivered", seq=registered["seq"]), "the delivery")


class TalkativeServer:
    """An HTTP service on loopback that answers every POST with `status` and a body that must stay private."""

    BODY = b"internal-only: db_password=hunter2 " + b"x" * 500

    def __init__(self, status: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        answer = (status, self.BODY)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(answer[0])
                self.send_header("Content-Length", str(len(answer[1])))
                self.end_headers()
                self.wfile.write(answer[1])

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/internal"
        self.thread = Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TalkativeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [200, 404, 500])
def test_the_delivery_log_keeps_no_reply_body(tmp_path: Path, status: int) -> None:
    with (
        TalkativeServer(status) as talkative,
        metadata_center(
            tmp_path / "platform",
            webhook_urls=[talkative.url],
            webhook_allowed_hosts=LOOPBACK,
            webhook_max_attempts=1,
        ) as service,
    ):
        registered = service.client().register(seed_payload())
        (entry,) = wait_for(
            lambda: [d for d in deliveries(service, seq=registered["seq"]) if d["status"] != "pending"],
            "the attempt",
        )
        assert entry["last_status_code"] == status
        assert entry["last_error"] == (None if status == 200 else f"HTTP {status}")
        log = requests.get(
            f"{service.url}/api/v1/webhooks/deliveries", headers={"X-API-Key": service.api_key}, timeout=10
        ).text
        assert "hunter2" not in log and "internal-only" not in log


def test_a_stored_subscriber_no_longer_allowed_is_refused_at_delivery(
    tmp_path: Path, receiver: Receiver
) -> None:
    with metadata_center(tmp_path / "platform", webhook_allowed_hosts=LOOPBACK) as service:
        service.client().add_subscriber(receiver.url)
        service.stop()
        assert service.env is not None
        service.env = {**service.env, "METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS": ""}
        service.restart()
        registered = service.client().register(seed_payload())
        assert registered["webhook_deliveries"] == 1
        (failed,) = wait_for(lambda: deliveries(service, status="failed", seq=registered["seq"]), "refusal")
        assert failed["attempts"] == 1 and failed["last_status_code"] is None
        assert (
            failed["last_error"].startswith("refused:")
            and "METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS" in (failed["last_error"])
        )
        assert receiver.requests == []
