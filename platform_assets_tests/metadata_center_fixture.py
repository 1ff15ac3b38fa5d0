"""The real metadata center as a subprocess on a free loopback port, for tests (and the Dagster e2e test),
started by the same code as `make run` and `make dev` (`platform_assets.metadata_center.embedded`).

    with metadata_center(tmp_path / "platform") as service:
        url, api_key, webhook_secret = service         # or service.url, service.client(), service.restart()

`metadata_center(...)` is a plain context manager; `metadata_center_service` is the same as a pytest fixture
(a fresh SQLite database per test). For the production backend, `postgres_database()` creates a fresh
database on the local PostgreSQL (127.0.0.1:5432, user postgres, trust auth; started with pg_ctlcluster when
it is not running) and drops it afterwards; pass its URL as `db_url`. `postgres_url` is the same as a
session-scoped fixture. Without a reachable Postgres, tests fail under CI=true and are skipped elsewhere. The service runs with a generated API key and webhook secret and is stopped on exit. Its log is `service.log_path`; failures to start raise MetadataCenterStartError with the log's tail.
"""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from platform_assets.metadata_center.embedded import EmbeddedMetadataCenter
from platform_assets.metadata_center.webhooks import generate_secret
from platform_assets_tests.conftest import in_ci

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# Variables the service reads; the child gets exactly what the caller passes, nothing inherited.
SERVICE_VARIABLES = (
    "METADATA_CENTER_URL",
    "METADATA_CENTER_API_KEY",
    "METADATA_CENTER_WEBHOOK_SECRET",
    "METADATA_CENTER_DB_URL",
    "METADATA_CENTER_WEBHOOK_URLS",
    "METADATA_CENTER_REQUIRE_KEY_FOR_READS",
    "METADATA_CENTER_WEBHOOK_MAX_ATTEMPTS",
    "METADATA_CENTER_WEBHOOK_BACKOFF_S",
    "METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS",
    "METADATA_CENTER_MAX_BODY_BYTES",
    "PLATFORM_STORAGE_ROOTS",
)
# The bucket of the seed registration below: allowed by default, with the service's own lake and shared dir.
SEED_BUCKET_ROOT = "s3://etl-output"


# A registration as Alldata sends it (the example of docs/metadata_center.md).
SEED_PAYLOAD: dict[str, Any] = {
    "dataset_id": "sales_training_2024_01",
    "name": "销售数据训练集 v1.0",
    "storage_path": "s3://etl-output/sales/2024-01/",
    "format": "parquet",
    "size_bytes": 5368709120,
    "row_count": 10000000,
    "schema": {
        "columns": [
            {"name": "order_id", "type": "bigint"},
            {"name": "amount", "type": "decimal(10,2)"},
            {"name": "created_at", "type": "timestamp"},
        ]
    },
    "tags": ["sales", "cleansed", "training-ready"],
    "metadata": {
        "etl_job_id": "etl_sales_001",
        "completed_at": "2024-01-15T10:30:00Z",
        "data_quality_score": 0.98,
    },
}


def seed_payload(dataset_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """That registration with a unique dataset_id unless given, and `changes` applied."""
    payload = copy.deepcopy(SEED_PAYLOAD)
    payload["dataset_id"] = dataset_id or f"sales_{uuid.uuid4().hex[:10]}"
    payload.update(changes)
    return payload


@dataclass
class RunningMetadataCenter(EmbeddedMetadataCenter):
    """A running service (the package's `EmbeddedMetadataCenter`) that also knows its webhook secret.
    Unpacks as (url, api_key, webhook_secret)."""

    webhook_secret: str = ""

    def __iter__(self) -> Iterator[str]:
        return iter((self.url, self.api_key, self.webhook_secret))

    @property
    def shared_dir(self) -> Path:
        """$PLATFORM_DATA_DIR/shared of the service: inside its default storage roots."""
        return self.data_dir / "shared"


@contextmanager
def metadata_center(
    data_dir: Path,
    *,
    db_url: str | None = None,
    api_key: str | None = None,
    webhook_secret: str | None = None,
    webhook_urls: Sequence[str] = (),
    require_key_for_reads: bool = False,
    webhook_backoff_s: float = 0.2,
    webhook_max_attempts: int = 5,
    webhook_allowed_hosts: Sequence[str] = (),
    max_body_bytes: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    storage_roots: Sequence[str | Path] | None = None,
) -> Iterator[RunningMetadataCenter]:
    """Run the metadata center on a free loopback port with its data (and SQLite database) in `data_dir`.

    The API key and webhook secret are generated unless given. Retries are fast (0.2 s, doubling) so that
    tests see them. `webhook_allowed_hosts` is METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS (a loopback receiver
    needs "127.0.0.1"); `max_body_bytes` is METADATA_CENTER_MAX_BODY_BYTES (the default when None).
    `extra_env` adds variables (AWS_* for the storage view, for example). `storage_roots`
    is the service's PLATFORM_STORAGE_ROOTS; by default its own lake and shared directory under `data_dir`
    and the seed payload's bucket (never inherited from the calling process).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    api_key = api_key or "mck_test_" + secrets.token_urlsafe(24)
    webhook_secret = webhook_secret or generate_secret()
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(
        PLATFORM_DATA_DIR=str(data_dir),
        METADATA_CENTER_API_KEY=api_key,
        METADATA_CENTER_WEBHOOK_SECRET=webhook_secret,
        METADATA_CENTER_WEBHOOK_URLS=",".join(webhook_urls),
        METADATA_CENTER_REQUIRE_KEY_FOR_READS="true" if require_key_for_reads else "false",
        METADATA_CENTER_WEBHOOK_BACKOFF_S=str(webhook_backoff_s),
        METADATA_CENTER_WEBHOOK_MAX_ATTEMPTS=str(webhook_max_attempts),
        METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS=",".join(webhook_allowed_hosts),
        PLATFORM_STORAGE_ROOTS=",".join(
            str(root)
            for root in (
                storage_roots
                if storage_roots is not None
                else (data_dir / "lake", data_dir / "shared", SEED_BUCKET_ROOT)
            )
        ),
        PYTHONUNBUFFERED="1",
    )
    if max_body_bytes is not None:
        env["METADATA_CENTER_MAX_BODY_BYTES"] = str(max_body_bytes)
    env.update(extra_env or {})
    service = RunningMetadataCenter(
        data_dir=data_dir,
        api_key=api_key,
        webhook_secret=webhook_secret,
        db_url=db_url or f"sqlite:///{data_dir / 'metadata_center.db'}",
        env=env,
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def metadata_center_service(tmp_path: Path) -> Iterator[RunningMetadataCenter]:
    """A running metadata center with a fresh SQLite database (yields RunningMetadataCenter, which unpacks
    as (url, api_key, webhook_secret))."""
    with metadata_center(tmp_path / "metadata_center") as service:
        yield service


# -- PostgreSQL ---------------------------------------------------------------------------------------


def _postgres_problem(url: str) -> str | None:
    """None when `url` accepts a connection, else why not."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return None
    except sa.exc.OperationalError as err:
        return " ".join(str(err.orig).split())[:300]
    finally:
        engine.dispose()


def _start_postgres() -> str:
    """Start the local cluster(s) with pg_ctlcluster; returns what happened, for the skip/fail reason."""
    config = Path("/etc/postgresql")
    versions = sorted(p.name for p in config.iterdir()) if config.is_dir() else []
    if not versions:
        return "no cluster under /etc/postgresql (is PostgreSQL installed?)"
    outcomes = []
    for version in versions:
        try:
            done = subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            outcomes.append(
                f"pg_ctlcluster {version} main start: exit {done.returncode} {done.stderr.strip()[:200]}"
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            outcomes.append(f"pg_ctlcluster {version} main start: {err}")
    return "; ".join(outcomes)


def require_postgres() -> None:
    """Make sure the local PostgreSQL answers (starting it if needed); fail under CI, skip elsewhere."""
    problem = _postgres_problem(POSTGRES_ADMIN_URL)
    if problem is None:
        return
    started = _start_postgres()
    problem = _postgres_problem(POSTGRES_ADMIN_URL)
    if problem is not None:
        reason = f"PostgreSQL on 127.0.0.1:5432 unreachable ({problem}); tried: {started}"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def postgres_database(prefix: str = "mc_test") -> Iterator[str]:
    """A fresh, empty database on the local PostgreSQL (dropped on exit); yields its SQLAlchemy URL."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL for the test session."""
    with postgres_database() as url:
        yield url
