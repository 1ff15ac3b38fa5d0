"""API keys (stored as SHA-256 digests, compared in constant time) and the generated secret files."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from platform_assets.metadata_center.db import read_session, write_session
from platform_assets.metadata_center.models import ApiKey, utcnow

log = logging.getLogger(__name__)

# Keys installed at start-up from the environment or the generated file; only one of each is active.
BOOTSTRAP_SOURCES = ("env", "file")


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key. Keys are 256-bit random tokens, so a fast hash is enough: there
    is nothing to brute-force that a slow KDF would protect."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_api_key() -> str:
    """A new API key."""
    return "mck_" + secrets.token_urlsafe(32)


def read_or_create_secret(path: Path, generate: Callable[[], str]) -> str:
    """The secret stored in `path`, created (mode 0600) on first use.

    Creation is atomic (write a private temp file, then hard-link it into place), so two processes starting
    at once agree on one secret.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
                log.info("generated %s (mode 0600)", path)
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
        path.chmod(0o600)
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: delete it to generate a new secret")
    return value


def install_bootstrap_key(engine: sa.Engine, key: str, source: str) -> None:
    """Make `key` the active key of `source` (env or file), deactivating earlier bootstrap keys: a rotated
    METADATA_CENTER_API_KEY stops the old one from working."""
    digest = hash_key(key)
    with write_session(engine) as session:
        session.execute(
            sa.update(ApiKey)
            .where(ApiKey.source.in_(BOOTSTRAP_SOURCES), ApiKey.key_hash != digest)
            .values(active=False)
        )
        existing = session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == digest))
        if existing is None:
            session.add(ApiKey(key_hash=digest, source=source, active=True, created_at=utcnow()))
        else:
            existing.active = True
            existing.source = source


class KeyVerifier:
    """Checks presented keys against the active digests in the database (cached for `ttl_s`)."""

    def __init__(self, engine: sa.Engine, ttl_s: float = 30.0) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._digests: tuple[str, ...] = ()
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Reload the active digests now."""
        with read_session(self._engine) as session:
            digests = tuple(session.scalars(sa.select(ApiKey.key_hash).where(ApiKey.active.is_(True))))
        with self._lock:
            self._digests = digests
            self._loaded_at = time.monotonic()

    def needs_refresh(self) -> bool:
        """True when the cached digests are older than the TTL."""
        return time.monotonic() - self._loaded_at > self._ttl_s

    def is_valid(self, presented: str | None) -> bool:
        """True when `presented` is an active key. Compares against every digest without stopping early."""
        if not presented:
            return False
        digest = hash_key(presented)
        with self._lock:
            digests = self._digests
        matched = False
        for candidate in digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched
