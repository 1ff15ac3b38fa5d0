"""Standard Webhooks signing and verification for metadata center notifications.

Signing and the HMAC itself are the `standardwebhooks` package's (the spec's reference library): a message
carries `webhook-id`, `webhook-timestamp` and `webhook-signature` = `v1,` + base64(HMAC-SHA256(secret,
"id.timestamp.body")). A receiver calls `verify_webhook(headers, body, secret)`, which rejects a bad or
missing signature, a timestamp more than 5 minutes old (or ahead), and a replay of a message it already
accepted.

Replays are recognised by (webhook-id, webhook-timestamp): the spec keeps webhook-id the same when a failed
delivery is retried, but every attempt is signed with a fresh timestamp, so a legitimate retry passes and
a byte-for-byte replay of a captured request does not. A receiver that must process each event once
deduplicates on `webhook-id` (or on the event's `seq`) after processing it.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import standardwebhooks

TOLERANCE_S = 5 * 60
SECRET_PREFIX = "whsec_"
EVENT_REGISTERED = "dataset.registered"


class WebhookVerificationError(standardwebhooks.WebhookVerificationError):
    """A webhook was rejected; the message says why (signature, timestamp, replay, headers)."""


def generate_secret() -> str:
    """A new signing secret in the Standard Webhooks format: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> None:
    """ValueError unless `secret` is a usable Standard Webhooks secret (`whsec_` + base64)."""
    try:
        standardwebhooks.Webhook(secret)
    except Exception as err:
        raise ValueError(f"not a Standard Webhooks secret (whsec_ + base64): {err}") from None


def new_message_id() -> str:
    """A webhook-id: unique per message, kept when a delivery is retried."""
    return f"msg_{uuid.uuid4().hex}"


def sign_headers(
    secret: str, message_id: str, body: str, timestamp: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt of `body`."""
    when = (timestamp or datetime.now(UTC)).astimezone(UTC)
    signature = standardwebhooks.Webhook(secret).sign(message_id, when, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


class ReplayGuard:
    """Remembers accepted (webhook-id, timestamp) pairs until their timestamp is too old to verify anyway.

    In memory and thread-safe: enough for one receiver process. Receivers behind several processes share
    a store with the same `check_and_remember(key, expires_at) -> bool` method (Redis SET NX EX, a unique
    database row).
    """

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def check_and_remember(self, key: str, expires_at: float) -> bool:
        """True the first time `key` is seen (and remembers it until `expires_at`), False afterwards."""
        now = time.time()
        with self._lock:
            for stale in [k for k, until in self._seen.items() if until < now]:
                del self._seen[stale]
            if key in self._seen:
                return False
            self._seen[key] = expires_at
            return True


_DEFAULT_GUARD = ReplayGuard()


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    *,
    replay_guard: ReplayGuard | None = _DEFAULT_GUARD,
) -> Any:
    """Verify one received webhook and return its parsed JSON body.

    Raises WebhookVerificationError for missing headers, a signature that does not match (wrong secret,
    tampered body, id or timestamp), a timestamp more than 5 minutes away from now, or a replay.
    `replay_guard=None` skips the replay check; by default one guard per process is used.
    """
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    data = body.decode("utf-8", errors="strict") if isinstance(body, bytes) else body
    try:
        parsed = standardwebhooks.Webhook(secret).verify(data, lowered)
    except standardwebhooks.WebhookVerificationError as err:
        raise WebhookVerificationError(str(err)) from None
    except Exception as err:
        # The library raises plain ValueErrors for malformed signatures or bodies.
        raise WebhookVerificationError(f"malformed webhook: {err}") from None
    if replay_guard is not None:
        timestamp = lowered["webhook-timestamp"]
        key = f"{lowered['webhook-id']}:{timestamp}"
        if not replay_guard.check_and_remember(key, float(timestamp) + TOLERANCE_S + 60):
            raise WebhookVerificationError(f"replayed message {lowered['webhook-id']}")
    return parsed


# -- where webhooks may go --------------------------------------------------------------------------------

ALLOWED_HOSTS_VARIABLE = "METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*$")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookTargetError(ValueError):
    """A subscriber URL the service refuses to send to (not http(s), or a non-public address not allowed)."""


@dataclass(frozen=True)
class TargetPolicy:
    """Which webhook targets are allowed: public addresses always; loopback, private, link-local and other
    non-public addresses only when METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS names the host or a network holding
    the address. Without it a subscriber could make the service probe its own network (server-side request
    forgery)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> TargetPolicy:
        """A policy from the variable's entries (host names, IP addresses, CIDRs); ValueError names a bad one."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            entry = entry.strip().lower()
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.rstrip(".")
            if not _HOSTNAME.match(name):
                raise ValueError(
                    f"{ALLOWED_HOSTS_VARIABLE}: {entry!r} is not a host name, IP address or CIDR"
                )
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks))

    def _allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_global or any(address in network for network in self.networks)

    def check(self, url: str) -> None:
        """Raise WebhookTargetError unless `url` is http(s) and its host is allowed.

        A host name is resolved and every address it has must be allowed (a name that does not resolve
        passes: sending to it fails anyway). Names listed in the variable are allowed as they are.
        """
        parts = urlsplit(url)
        try:
            host = parts.hostname
            port = parts.port
        except ValueError as err:
            raise WebhookTargetError(f"webhook URL {url!r} is malformed: {err}") from None
        if parts.scheme not in ("http", "https") or not host:
            raise WebhookTargetError(f"webhook URL {url!r} is not an http(s) URL")
        if host.rstrip(".") in self.hosts:
            return
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                return
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        for address in addresses:
            if not self._allowed(address):
                raise WebhookTargetError(
                    f"webhook URL {url!r}: {host} is or resolves to {address}, a loopback, private or otherwise "
                    f"non-public address; an operator can allow it with {ALLOWED_HOSTS_VARIABLE}"
                )
