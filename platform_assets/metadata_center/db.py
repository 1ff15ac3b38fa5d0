"""Engine, transactions and schema migrations of the registry database (SQLite or Postgres)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.orm import Session
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Serialises `upgrade head` across replicas starting at once against one Postgres.
_MIGRATION_LOCK_ID = 0x6D63_6D69  # "mcmi"


def normalize_db_url(url: str) -> str:
    """Use psycopg (3) for plain postgresql:// URLs; SQLAlchemy would otherwise pick psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_db_engine(url: str) -> sa.Engine:
    """An engine for the registry: WAL, a busy timeout and IMMEDIATE write transactions on SQLite."""
    url = normalize_db_url(url)
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30}, pool_size=10, max_overflow=20)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control from the sqlite3 module so that BEGIN below is the real one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A deferred transaction that reads and then writes cannot wait for the lock in WAL mode (it fails
        # at once with SQLITE_BUSY); write transactions take the lock up front and wait for it instead.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def write_engine(engine: sa.Engine) -> sa.Engine:
    """The same engine with write transactions (BEGIN IMMEDIATE on SQLite; a no-op elsewhere)."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


@contextmanager
def write_session(engine: sa.Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with Session(write_engine(engine), expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def read_session(engine: sa.Engine) -> Iterator[Session]:
    """A short read-only session."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def is_transient(error: exc.DBAPIError) -> bool:
    """A failure worth retrying: SQLite busy/locked, a Postgres serialization failure or deadlock, or a
    uniqueness conflict between concurrent writers."""
    if isinstance(error, exc.IntegrityError):
        return True
    text = str(error.orig).lower()
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code in ("40001", "40P01") or "database is locked" in text or "database is busy" in text


def _is_transient_error(error: BaseException) -> bool:
    return isinstance(error, exc.DBAPIError) and is_transient(error)


def with_retry(operation: Callable[[], T], attempts: int = 5) -> T:
    """Run a whole transaction again after a transient failure (see `is_transient`): up to `attempts` tries,
    0.1 s before the second and doubling; any other error, or the last try's, is raised as is."""

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "transient database error (attempt %d/%d): %s",
            state.attempt_number,
            attempts,
            getattr(error, "orig", error),
        )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.1, exp_base=2),
        retry=retry_if_exception(_is_transient_error),
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(operation)


def alembic_config(url: str):  # type: ignore[no-untyped-def] - alembic.config.Config, imported lazily
    """An Alembic configuration for the migrations shipped in this package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", normalize_db_url(url).replace("%", "%%"))
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> str | None:
    """Apply the migrations up to `revision` (head); returns the revision the database is at afterwards."""
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with write_engine(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return current_revision(engine)


def current_revision(engine: sa.Engine) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped in migrations/."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
