"""The production instance (deploy/dagster.production.yaml) against a real PostgreSQL on 127.0.0.1:5432.

Each test run gets a database of its own (dagster_test_<random>), dropped afterwards. Without a reachable
PostgreSQL the tests are skipped with the reason, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from platform_assets_tests.conftest import PROJECT_ROOT, in_ci

PRODUCTION_YAML = PROJECT_ROOT / "deploy" / "dagster.production.yaml"
PG_HOST = "127.0.0.1"
PG_PORT = 5432
ADMIN_DATABASE = "test"
PG_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


def _admin_users() -> list[str]:
    """Roles to try, in order: an explicit one, then the two that trust auth usually has."""
    explicit = os.environ.get("PLATFORM_TEST_PG_USER")
    return [explicit] if explicit else ["postgres", "root"]


def _find_admin_user() -> tuple[str | None, str]:
    import psycopg2

    error = ""
    for user in _admin_users():
        try:
            psycopg2.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname=ADMIN_DATABASE, connect_timeout=5
            ).close()
            return user, ""
        except psycopg2.OperationalError as err:
            error = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None, error


def _start_local_cluster() -> str:
    """Try to start this machine's PostgreSQL cluster (Debian's pg_ctlcluster); return what happened."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        return "no local PostgreSQL cluster to start (no /etc/postgresql or pg_ctlcluster)"
    outcome = []
    for version in versions:
        completed = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        outcome.append(
            f"pg_ctlcluster {version} main start: exit {completed.returncode} {completed.stderr.strip()}"
        )
    return "; ".join(outcome)


@pytest.fixture(scope="module")
def postgres_user() -> str:
    """A role that may create databases on the loopback PostgreSQL, starting the local cluster if needed."""
    user, error = _find_admin_user()
    if user is None:
        started = _start_local_cluster()
        deadline = time.monotonic() + 30
        while user is None and time.monotonic() < deadline:
            time.sleep(1)
            user, error = _find_admin_user()
        error = f"{error} (after trying to start it: {started})"
    if user is None:
        reason = f"PostgreSQL on {PG_HOST}:{PG_PORT} (database {ADMIN_DATABASE!r}) is not reachable: {error}"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return user


@dataclass
class ProductionInstance:
    """An instance loaded from deploy/dagster.production.yaml, pointed at a fresh database."""

    instance: dg.DagsterInstance
    home: Path
    database: str
    user: str

    def sql(self, query: str, *params: object) -> list[tuple]:
        """Rows of a query run straight against the instance's database (not through Dagster)."""
        import psycopg2

        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=self.user, dbname=self.database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall()
        finally:
            conn.close()


def _admin_execute(user: str, statement: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=user, dbname=ADMIN_DATABASE)
    try:
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


@pytest.fixture
def production_instance(
    postgres_user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ProductionInstance]:
    database = f"dagster_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(postgres_user, f'CREATE DATABASE "{database}"')
    monkeypatch.setenv("DAGSTER_PG_HOST", PG_HOST)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(PG_PORT))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", postgres_user)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")  # trust auth on loopback
    monkeypatch.setenv("DAGSTER_PG_DB", database)
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(PRODUCTION_YAML, home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield ProductionInstance(instance=instance, home=home, database=database, user=postgres_user)
    finally:
        instance.dispose()
        # FORCE: connection pools of instances the test opened may still hold sessions.
        _admin_execute(postgres_user, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@dg.asset(group_name="production_check")
def readings() -> dg.MaterializeResult:
    """Small and fast: the point is where its events land, not what it computes."""
    return dg.MaterializeResult(metadata={"dagster/row_count": 3, "dagster/uri": "memory://readings"})


@dg.asset(group_name="production_check", deps=[readings])
def reading_total() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 1})


@dg.asset_check(asset=reading_total, blocking=True)
def reading_total_is_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"total": 6})


def test_the_production_instance_is_configured_as_documented(production_instance: ProductionInstance) -> None:
    instance = production_instance.instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    queue = instance.run_coordinator.get_run_queue_config()  # type: ignore[attr-defined]
    assert queue.max_concurrent_runs == 10
    assert {"key": "platform/compute", "value": "embedding", "limit": 2} in queue.tag_concurrency_limits
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds == 300
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    assert not instance.telemetry_enabled
    sensor_retention = instance.get_tick_retention_settings(InstigatorType.SENSOR)
    assert sensor_retention[TickStatus.SKIPPED] == 7 and sensor_retention[TickStatus.FAILURE] == 30


def test_materializations_and_checks_are_stored_in_postgres_and_read_back(
    production_instance: ProductionInstance, tmp_path: Path
) -> None:
    result = dg.materialize(
        [readings, reading_total, reading_total_is_positive],
        instance=production_instance.instance,
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))},
        tags={"platform/compute": "embedding"},
    )
    assert result.success
    run_id = result.run_id

    # Read back through a second instance: nothing comes from the first one's memory.
    with dg.DagsterInstance.from_config(str(production_instance.home)) as reader:
        run = reader.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["platform/compute"] == "embedding"
        for key, rows in ((dg.AssetKey("readings"), 3), (dg.AssetKey("reading_total"), 1)):
            [record] = reader.fetch_materializations(key, limit=10).records
            assert record.run_id == run_id
            materialization = record.asset_materialization
            assert materialization is not None and materialization.metadata["dagster/row_count"].value == rows
        check_key = dg.AssetCheckKey(dg.AssetKey("reading_total"), "reading_total_is_positive")
        [execution] = reader.event_log_storage.get_asset_check_execution_history(check_key, limit=10)
        assert execution.run_id == run_id and execution.status.value == "SUCCEEDED"
        event_types = [event.dagster_event_type for event in reader.all_logs(run_id) if event.dagster_event]
        assert event_types.count(dg.DagsterEventType.STEP_SUCCESS) == 3
        assert event_types[-1] == dg.DagsterEventType.RUN_SUCCESS

    # And straight from the database, so the events are really in PostgreSQL.
    assert production_instance.sql("SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    [(materializations,)] = production_instance.sql(
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run_id,
    )
    assert materializations == 2


def test_the_production_instance_names_a_missing_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No database settings in the environment: loading fails and names the variable (no Postgres needed)."""
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(PRODUCTION_YAML, home / "dagster.yaml")
    with pytest.raises(Exception, match="DAGSTER_PG_HOST"):
        dg.DagsterInstance.from_config(str(home))
