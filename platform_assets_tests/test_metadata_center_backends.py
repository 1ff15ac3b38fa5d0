"""The same registry on SQLite and on a real PostgreSQL on loopback: concurrent registrations get unique,
gap-free seqs in commit order; a restart loses nothing; the migrations build exactly the models' schema.

PostgreSQL: see metadata_center_fixture (a fresh database for the session, dropped afterwards; a failure
under CI=true and a skip with the reason elsewhere when it cannot be reached or started).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from platform_assets.metadata_center import db
from platform_assets.metadata_center.client import MetadataCenterError, MetadataCenterUnavailable
from platform_assets.metadata_center.models import Base
from platform_assets_tests.metadata_center_fixture import (  # noqa: F401 - postgres_url is a fixture
    POSTGRES_ADMIN_URL,
    RunningMetadataCenter,
    metadata_center,
    postgres_database,
    postgres_url,
    seed_payload,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningMetadataCenter]:
    data_dir = tmp_path_factory.mktemp(f"mc_{request.param}") / "platform"
    db_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    with metadata_center(data_dir, db_url=db_url) as running:
        yield running


def registrations_after(service: RunningMetadataCenter, after: int) -> list[dict[str, Any]]:
    return list(service.client().iter_registrations(after=after, page_size=37))


def test_backend_is_the_one_asked_for(service: RunningMetadataCenter) -> None:
    expected = "postgresql" if service.db_url.startswith("postgresql") else "sqlite"
    assert service.client().health() == {"status": "ok", "database": expected, "schema_revision": "0002"}


def test_concurrent_registrations_get_unique_gap_free_seqs(service: RunningMetadataCenter) -> None:
    client = service.client()
    start = max((i["seq"] for i in client.iter_registrations()), default=0)
    shared = f"shared_{uuid.uuid4().hex[:8]}"
    payloads = [seed_payload() for _ in range(50)] + [seed_payload(shared, row_count=n) for n in range(12)]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(client.register, payloads))

    seqs = [r["seq"] for r in results]
    assert sorted(seqs) == list(range(start + 1, start + 1 + len(payloads)))
    # Re-registrations of one id raced each other: versions 1..12, each exactly once.
    assert sorted(r["version"] for r in results if r["dataset_id"] == shared) == list(range(1, 13))
    assert all(r["version"] == 1 for r in results if r["dataset_id"] != shared)
    # The log, read back page by page, has exactly these, in seq order; a version follows its seq order.
    log = registrations_after(service, start)
    assert [i["seq"] for i in log] == sorted(seqs)
    shared_versions = [i["version"] for i in log if i["dataset_id"] == shared]
    assert shared_versions == sorted(shared_versions)
    assert client.get(shared)["versions"] == list(range(1, 13))


def test_restart_loses_nothing(service: RunningMetadataCenter) -> None:
    client = service.client()
    payload = seed_payload(metadata={"etl_job_id": "etl_x"})
    client.register(payload)
    client.register({**payload, "row_count": 5})
    client.put_lineage(payload["dataset_id"], {"lineage": {"downstream": {"models": ["m1"]}}})
    before_log = registrations_after(service, 0)
    before_view = client.get(payload["dataset_id"])
    before_lineage = client.get_lineage(payload["dataset_id"])

    service.restart()

    after = service.client()  # the same key still works after the restart
    assert registrations_after(service, 0) == before_log
    assert after.get(payload["dataset_id"]) == before_view
    assert after.get_lineage(payload["dataset_id"]) == before_lineage
    nxt = after.register(payload)
    assert nxt["seq"] == before_log[-1]["seq"] + 1 and nxt["version"] == 3
    with pytest.raises(MetadataCenterError) as error:
        service.client(api_key="wrong").register(payload)
    assert error.value.status == 401


def test_migrations_match_the_models(service: RunningMetadataCenter) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = db.create_db_engine(service.db_url)
    try:
        assert db.current_revision(engine) == db.head_revision() == "0002"
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_a_database_outage_answers_503(tmp_path: Path) -> None:
    # Clients (the Dagster sensor) must see "unavailable, try later", not a 500 they would treat as a bug.
    with postgres_database("mc_outage") as url, metadata_center(tmp_path / "platform", db_url=url) as service:
        client = service.client()
        client.register(seed_payload())
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{sa.make_url(url).database}" WITH (FORCE)'))
        admin.dispose()
        for call in (client.health, lambda: client.register(seed_payload()), lambda: client.list()):
            with pytest.raises(MetadataCenterUnavailable) as error:
                call()
            assert error.value.status == 503
