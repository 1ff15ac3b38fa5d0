"""Lake sync end to end against a real sshd on a loopback port: sync, resume, verify, retention, CLI, Dagster.

The "collection node" is a temporary directory served by an OpenSSH server started for this session on
127.0.0.1 with generated keys (platform_assets_tests/sshd_fixture.py). Nothing is mocked: rsync and ssh run for
real, and the failures are real ones (a killed rsync, a corrupted file, a closed port).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from platform_assets.lake_sync.checkpoint import CheckpointStore
from platform_assets.lake_sync.cli import lake_cli
from platform_assets.lake_sync.config import CONFIG_ENV, LakeSyncConfig, load_config
from platform_assets.lake_sync.rsync import PARTIAL_DIR
from platform_assets.lake_sync.sync import SyncResult, sync_profile
from platform_assets.lib.config import PlatformSettings
from platform_assets_tests import sshd_fixture
from platform_assets_tests.conftest import PROJECT_ROOT, free_port, in_ci

TODAY = dt.datetime.now(dt.UTC).date()
OLD = TODAY - dt.timedelta(days=400)
RECENT = TODAY - dt.timedelta(days=1)
BIG_FILE_BYTES = 24 * 1024 * 1024
# Slow enough that the test can kill rsync mid-file, fast enough to reach a few MiB in about a second.
SLOW_BWLIMIT = "3000"
PARTIAL_AT_LEAST = 3 * 1024 * 1024
WAIT_GUARD_S = 60.0


# -- fixtures and helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd_fixture.SshServer]:
    """A real sshd on 127.0.0.1 for the session; under CI a setup failure fails, elsewhere it skips."""
    generator = sshd_fixture.serve(tmp_path_factory.mktemp("sshd"))
    try:
        server = next(generator)
    except Exception as err:
        message = f"cannot run a test sshd on 127.0.0.1: {err}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    yield server
    generator.close()


@pytest.fixture
def lake_env(platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch) -> PlatformSettings:
    """An isolated data dir whose default profiles file is $PLATFORM_DATA_DIR/lake_sync.yaml."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    platform_env.data_dir.mkdir(parents=True, exist_ok=True)
    return platform_env


def write_config(settings: PlatformSettings, profiles: dict[str, dict[str, Any]]) -> LakeSyncConfig:
    """Write the default profiles file and load it back."""
    path = settings.data_dir / "lake_sync.yaml"
    path.write_text(yaml.safe_dump({"profiles": profiles}, sort_keys=False))
    return load_config(path)


def write_files(root: Path, files: dict[str, bytes]) -> None:
    """Create files (relative path → content) under root."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def sha256(path: Path) -> str:
    """Hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def profile_for(server: sshd_fixture.SshServer, remote: Path, target: str, **extra: Any) -> dict[str, Any]:
    """Profile fields reaching the test sshd."""
    return {**server.profile_fields(), "remote_path": str(remote), "target": target, **extra}


def remote_tree() -> dict[str, bytes]:
    """A collection node's directory: the three date layouts, an undated file, a name with spaces, noise."""
    return {
        f"{RECENT:%Y-%m-%d}/events.csv": b"user_id,amount\n1,10\n2,20\n",
        f"{RECENT:%Y/%m/%d}/clicks.csv": b"user_id,clicks\n1,3\n",
        f"daily/events_{RECENT:%Y%m%d}.csv": b"user_id,amount\n3,30\n",
        "reference/users with space.csv": b"user_id,name\n1,\xc3\xa9mile\n",
        f"{OLD:%Y-%m-%d}/events.csv": b"user_id,amount\n9,90\n",  # past retention: never fetched
        ".in-progress.csv": b"partial",  # a collection node's temp file: never fetched
        "upload.tmp": b"partial",
    }


def wait_for(condition: Any, what: str) -> Any:
    """Poll until condition() is truthy (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + WAIT_GUARD_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def rsync_temp_file(target: Path, name: str) -> Path | None:
    """rsync's in-flight temp file of `name` (".name.XXXXXX") once it holds a few MiB, else None."""
    for path in target.glob(f".{name}.*"):
        try:
            if path.stat().st_size >= PARTIAL_AT_LEAST:
                return path
        except FileNotFoundError:
            continue
    return None


# -- sync ---------------------------------------------------------------------------------------------------


def test_first_sync_then_incremental_moves_only_new_files(
    ssh_server: sshd_fixture.SshServer, lake_env: PlatformSettings, tmp_path: Path
) -> None:
    remote = tmp_path / "node1"
    files = remote_tree()
    write_files(remote, files)
    config = write_config(
        lake_env, {"events": profile_for(ssh_server, remote, "landing/user_events", retention_days=30)}
    )
    target = lake_env.landing_dir_for("user_events")

    first = sync_profile(config.profile("events"), config)

    assert first.ok, first.error
    wanted = {p for p in files if not p.startswith(f"{OLD:%Y-%m-%d}") and not Path(p).name.startswith(".")}
    wanted.discard("upload.tmp")
    assert set(first.transferred) == wanted
    assert first.skipped_expired == 1
    assert first.stats is not None
    assert first.stats.files_transferred == len(wanted)
    assert first.stats.transferred_size == sum(len(files[p]) for p in wanted)
    assert first.verified == len(wanted) and first.mismatched == []
    for relative in wanted:
        assert sha256(target / relative) == sha256(remote / relative)
    assert not (target / f"{OLD:%Y-%m-%d}").exists()
    assert not (target / ".in-progress.csv").exists() and not (target / "upload.tmp").exists()
    checkpoint, _ = CheckpointStore(config.state_dir()).load("events")
    assert checkpoint.status == "success" and checkpoint.last_outcome == "success"
    assert checkpoint.rsync_pid is None
    # Verification began after the files landed: the next sync only checksums what changes after this.
    assert checkpoint.started_at < checkpoint.unverified_since < checkpoint.finished_at

    new_files = {
        f"{TODAY:%Y-%m-%d}/events.csv": b"user_id,amount\n4,40\n5,50\n",
        f"{TODAY:%Y/%m/%d}/clicks.csv": b"user_id,clicks\n4,1\n",
    }
    write_files(remote, new_files)
    runner = CliRunner()
    outcome = runner.invoke(lake_cli, ["sync", "events", "--json"], catch_exceptions=False)

    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output.strip().splitlines()[-1])
    assert set(report["transferred"]) == set(new_files)
    assert report["stats"]["files_transferred"] == 2
    assert report["stats"]["transferred_size"] == sum(len(c) for c in new_files.values())
    assert report["stats"]["files_considered"] >= len(wanted) + 2
    assert report["mismatched"] == []


def _big_profile(server: sshd_fixture.SshServer, remote: Path, bwlimit: str | None) -> dict[str, Any]:
    return {"big": profile_for(server, remote, "landing/bulk", bwlimit=bwlimit)}


def test_crashed_sync_resumes_from_checkpoint_and_partial_file(
    ssh_server: sshd_fixture.SshServer, lake_env: PlatformSettings, tmp_path: Path
) -> None:
    """SIGKILL the sync process and rsync mid-file (a crash): the next sync resumes and the checksum matches."""
    remote = tmp_path / "node-big"
    write_files(remote, {"bulk.bin": os.urandom(BIG_FILE_BYTES)})
    config = write_config(lake_env, _big_profile(ssh_server, remote, SLOW_BWLIMIT))
    target = lake_env.landing_dir_for("bulk")
    store = CheckpointStore(config.state_dir())
    cli = subprocess.Popen(
        [sys.executable, "-m", "platform_assets.lake_sync.cli", "sync", "big"],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        temp = wait_for(lambda: rsync_temp_file(target, "bulk.bin"), "rsync to write a few MiB of bulk.bin")
        checkpoint, _ = store.load("big")
        assert checkpoint.status == "running" and checkpoint.rsync_pid
        cli.kill()  # the sync process dies first, so nothing records the end of the run
        cli.wait()
        os.killpg(checkpoint.rsync_pid, signal.SIGKILL)
        wait_for(lambda: not _alive(checkpoint.rsync_pid), "rsync to die")
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.communicate()
    partial_size = temp.stat().st_size
    assert PARTIAL_AT_LEAST <= partial_size < BIG_FILE_BYTES
    crashed, _ = store.load("big")
    assert crashed.status == "running"  # what a crash leaves behind

    config = write_config(lake_env, _big_profile(ssh_server, remote, None))
    resumed = sync_profile(config.profile("big"), config)

    assert resumed.ok, resumed.error
    assert resumed.resumed and resumed.resumed_from == crashed.run_id
    assert resumed.recovered_partials == ["bulk.bin"]
    assert resumed.stats is not None
    # The partial file was the basis of a delta transfer: most of it matched instead of crossing the wire.
    assert resumed.stats.matched_bytes >= partial_size // 2
    assert resumed.stats.literal_bytes <= BIG_FILE_BYTES - partial_size // 2
    assert sha256(target / "bulk.bin") == sha256(remote / "bulk.bin")
    assert resumed.verified == 1
    assert not [p for p in target.rglob("*") if p.is_file() and p.name != "bulk.bin"]
    final, _ = store.load("big")
    assert final.status == "success" and final.unverified_since > crashed.started_at


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_interrupted_rsync_keeps_partial_and_next_sync_resumes(
    ssh_server: sshd_fixture.SshServer, lake_env: PlatformSettings, tmp_path: Path
) -> None:
    """SIGTERM rsync mid-file (as `kill` or a stopping service does): rsync keeps the partial in .rsync-partial,
    the run says interrupted, the next one resumes."""
    remote = tmp_path / "node-big2"
    write_files(remote, {"bulk.bin": os.urandom(BIG_FILE_BYTES)})
    config = write_config(lake_env, _big_profile(ssh_server, remote, SLOW_BWLIMIT))
    target = lake_env.landing_dir_for("bulk")
    results: list[SyncResult] = []
    started = threading.Event()
    pids: list[int] = []

    def progress(event: str, details: dict[str, Any]) -> None:
        if event == "rsync_started":
            pids.append(details["pid"])
            started.set()

    worker = threading.Thread(
        target=lambda: results.append(sync_profile(config.profile("big"), config, progress=progress))
    )
    worker.start()
    wait_for(started.is_set, "rsync to start")
    wait_for(lambda: rsync_temp_file(target, "bulk.bin"), "rsync to write a few MiB of bulk.bin")
    os.kill(pids[0], signal.SIGTERM)
    worker.join(timeout=WAIT_GUARD_S)

    interrupted = results[0]
    assert interrupted.outcome == "interrupted", interrupted.error
    assert "resumes" in (interrupted.error or "")
    kept = target / PARTIAL_DIR / "bulk.bin"
    assert kept.is_file() and 0 < kept.stat().st_size < BIG_FILE_BYTES
    checkpoint, _ = CheckpointStore(config.state_dir()).load("big")
    assert checkpoint.status == "interrupted" and checkpoint.last_outcome == "interrupted"

    config = write_config(lake_env, _big_profile(ssh_server, remote, None))
    resumed = sync_profile(config.profile("big"), config)
    assert resumed.ok and resumed.resumed
    assert resumed.stats is not None and resumed.stats.matched_bytes > 0
    assert sha256(target / "bulk.bin") == sha256(remote / "bulk.bin")
    assert not kept.exists()


def test_checksum_mismatch_is_detected_moved_aside_and_refetched(
    ssh_server: sshd_fixture.SshServer, lake_env: PlatformSettings, tmp_path: Path
) -> None:
    remote = tmp_path / "node-verify"
    write_files(remote, {"a/one.csv": b"id,v\n1,aaaa\n", "b/two.csv": b"id,v\n2,bbbb\n"})
    config = write_config(lake_env, {"verify": profile_for(ssh_server, remote, "landing/verify")})
    target = lake_env.landing_dir_for("verify")

    def corrupt(path: Path) -> None:
        # Same size and modification time: rsync's quick check cannot see it, only a checksum can.
        info = path.stat()
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    def progress(event: str, details: dict[str, Any]) -> None:
        if event == "transferred":  # after rsync landed the file, before verification reads it
            corrupt(target / "a/one.csv")

    bad = sync_profile(config.profile("verify"), config, progress=progress)

    assert bad.outcome == "verify_failed"
    assert bad.mismatched == ["a/one.csv"]
    assert "a/one.csv" in (bad.error or "") and "checksum mismatch" in (bad.error or "")
    assert not (target / "a/one.csv").exists()  # out of the landing reader's sight
    assert (target / "a" / PARTIAL_DIR / "one.csv").exists()
    assert sha256(target / "b/two.csv") == sha256(remote / "b/two.csv")

    good = sync_profile(config.profile("verify"), config)
    assert good.ok, good.error
    assert good.transferred == ["a/one.csv"]
    assert sha256(target / "a/one.csv") == sha256(remote / "a/one.csv")

    # A landed file written over between syncs (same size and mtime, so rsync's quick check cannot see it) is
    # verified again by the next sync, because its inode changed after the last verification.
    corrupt(target / "b/two.csv")
    runner = CliRunner()
    outcome = runner.invoke(lake_cli, ["sync", "verify"])
    assert outcome.exit_code == 1
    last = outcome.output.strip().splitlines()[-1]
    assert last.startswith("Error: profile 'verify': checksum mismatch") and "b/two.csv" in last
    repaired = runner.invoke(lake_cli, ["sync", "verify", "--verify-all", "--json"])
    assert repaired.exit_code == 0, repaired.output
    report = json.loads(repaired.output.strip().splitlines()[-1])
    assert report["transferred"] == ["b/two.csv"] and report["verified"] == 2


def test_unreachable_host_is_reported_with_a_one_line_reason(
    ssh_server: sshd_fixture.SshServer, lake_env: PlatformSettings, tmp_path: Path
) -> None:
    remote = tmp_path / "node-up"
    write_files(remote, {"a.csv": b"id\n1\n"})
    closed_port = free_port()  # nothing listens there
    fields = {**profile_for(ssh_server, remote, "landing/down"), "port": closed_port}
    write_config(lake_env, {"down": fields, "up": profile_for(ssh_server, remote, "landing/up")})
    runner = CliRunner()

    sync = runner.invoke(lake_cli, ["sync", "down"])
    assert sync.exit_code == 1
    reason = sync.output.strip().splitlines()[-1]
    assert reason.startswith("Error: profile 'down'")
    assert f"cannot reach root@127.0.0.1 port {closed_port}" in reason and "Connection refused" in reason

    probe = runner.invoke(lake_cli, ["test-connection", "down"])
    assert probe.exit_code == 1
    assert "cannot reach" in probe.output and "\n" not in probe.output.strip()

    fine = runner.invoke(lake_cli, ["test-connection", "up"])
    assert fine.exit_code == 0 and fine.output.startswith("ok: profile 'up'")

    both = runner.invoke(lake_cli, ["sync", "--all"])
    assert both.exit_code == 1
    lines = both.output.strip().splitlines()
    assert any(line.startswith("up: success") for line in lines)  # one failure does not stop the others
    assert lines[-1].startswith("Error: profile 'down'") and "cannot reach" in lines[-1]

    stats = runner.invoke(lake_cli, ["stats"])
    assert stats.exit_code == 0
    down_row = next(line for line in stats.output.splitlines() if line.startswith("down"))
    assert "unreachable" in down_row and "just now" in down_row


def test_a_key_restricted_to_read_only_rsync_is_enough(
    ssh_server: sshd_fixture.SshServer, lake_env: PlatformSettings
) -> None:
    """Listing, transfer, verification and the connection test all run through rsync (rrsync -ro works)."""
    if ssh_server.restricted_key_path is None or ssh_server.restricted_root is None:
        pytest.skip("rrsync is not installed (it ships with Debian's rsync package)")
    write_files(ssh_server.restricted_root, {f"{RECENT:%Y%m%d}/only.csv": b"id\n1\n"})
    fields = {
        **profile_for(ssh_server, Path("/"), "landing/restricted"),
        "ssh_key": str(ssh_server.restricted_key_path),
    }
    config = write_config(lake_env, {"restricted": fields})
    assert CliRunner().invoke(lake_cli, ["test-connection", "restricted"]).exit_code == 0
    result = sync_profile(config.profile("restricted"), config, verify_all=True)
    assert result.ok, result.error
    assert result.transferred == [f"{RECENT:%Y%m%d}/only.csv"] and result.verified == 1


def test_csv_to_parquet_conversion(
    ssh_server: sshd_fixture.SshServer, lake_env: PlatformSettings, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    remote = tmp_path / "node-csv"
    write_files(remote, {f"{RECENT:%Y-%m-%d}/users.csv": b"user_id,zip,name\n007,01234,\n8,99999,Ann\n"})
    config = write_config(
        lake_env,
        {
            "csv": profile_for(
                ssh_server, remote, "landing/users_csv", parquet_target="landing/users", retention_days=30
            )
        },
    )
    result = sync_profile(config.profile("csv"), config)
    assert result.ok, result.error
    assert result.converted == [f"{RECENT:%Y-%m-%d}/users.csv"]
    table = pq.read_table(lake_env.landing_dir_for("users") / f"{RECENT:%Y-%m-%d}/users.parquet")
    # Kept as delivered: leading zeros survive, an empty field is null.
    assert table.to_pydict() == {"user_id": ["007", "8"], "zip": ["01234", "99999"], "name": [None, "Ann"]}
    again = sync_profile(config.profile("csv"), config)
    assert again.ok and again.converted == []


# -- retention through the CLI ------------------------------------------------------------------------------


def test_cleanup_dry_run_then_delete_through_the_cli(lake_env: PlatformSettings, tmp_path: Path) -> None:
    config = write_config(
        lake_env,
        {
            "events": {
                "host": "127.0.0.1",
                "remote_path": "/unused",
                "target": "landing/user_events",
                "retention_days": 30,
            }
        },
    )
    target = config.profile("events").target_dir()
    old = {f"{OLD:%Y-%m-%d}/a.csv", f"{OLD:%Y/%m/%d}/b.csv", f"daily/events_{OLD:%Y%m%d}.csv"}
    recent = {f"{RECENT:%Y-%m-%d}/a.csv", f"{RECENT:%Y/%m/%d}/b.csv", f"daily/events_{RECENT:%Y%m%d}.csv"}
    write_files(target, {p: b"x\n" for p in old | recent | {"reference/users.csv"}})
    runner = CliRunner()

    dry = runner.invoke(lake_cli, ["cleanup", "events", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    listed = {line.split()[2] for line in dry.output.splitlines() if line.startswith("would delete")}
    assert listed == {str(target / p) for p in old}
    assert "events: would delete 3 file(s)" in dry.output
    assert all((target / p).exists() for p in old)

    real = runner.invoke(lake_cli, ["cleanup"])
    assert real.exit_code == 0, real.output
    assert "events: deleted 3 file(s)" in real.output
    assert not any((target / p).exists() for p in old)
    assert all((target / p).exists() for p in recent | {"reference/users.csv"})
    assert not (target / f"{OLD:%Y}").exists()  # emptied date directories go too
    checkpoint, _ = CheckpointStore(config.state_dir()).load("events")
    assert checkpoint.last_cleanup_deleted == 3


# -- Dagster ------------------------------------------------------------------------------------------------


def test_dagster_asset_check_schedule_and_retention_job(
    ssh_server: sshd_fixture.SshServer, lake_env: PlatformSettings, tmp_path: Path
) -> None:
    from platform_assets.defs.lake_sync import LAKE_SYNC, build_defs
    from platform_assets.defs.lake_sync.assets import build_lake_sync_asset
    from platform_assets.defs.lake_sync.checks import build_connection_check
    from platform_assets.defs.lake_sync.resources import LakeSyncResource

    remote = tmp_path / "node-dagster"
    write_files(remote, {f"{RECENT:%Y-%m-%d}/e.csv": b"id\n1\n", f"{OLD:%Y-%m-%d}/e.csv": b"id\n0\n"})
    write_config(
        lake_env,
        {
            "events": profile_for(ssh_server, remote, "landing/user_events", retention_days=30),
            "down": {**profile_for(ssh_server, remote, "landing/down"), "port": free_port()},
            "paused": profile_for(ssh_server, remote, "landing/paused", enabled=False),
        },
    )
    config_path = str(lake_env.data_dir / "lake_sync.yaml")
    partitions = dg.StaticPartitionsDefinition(["events", "down", "paused"])
    asset = build_lake_sync_asset(partitions)
    check = build_connection_check()
    resources = {"lake_sync": LakeSyncResource(config_path=config_path)}
    instance = dg.DagsterInstance.ephemeral()

    result = dg.materialize([asset, check], partition_key="events", resources=resources, instance=instance)

    assert result.success
    [materialization] = result.asset_materializations_for_node(asset.node_def.name)
    metadata = {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
    assert materialization.partition == "events"
    assert metadata["outcome"] == "success"
    assert metadata["files_transferred"] == 1 and metadata["skipped_past_retention"] == 1
    assert metadata["landed_files"] == 1 and metadata["newest_data"] == RECENT.isoformat()
    assert "| events | 1 |" in metadata["stats"]
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "test_connection" and evaluation.passed

    failed = dg.materialize(
        [asset, check], partition_key="down", resources=resources, instance=instance, raise_on_error=False
    )
    assert not failed.success
    failure = next(event for event in failed.all_events if event.is_step_failure)
    assert "cannot reach root@127.0.0.1" in failure.step_failure_data.error.message
    # Run alone, the check tests every enabled profile and names the one it cannot reach.
    probe = dg.materialize(
        [asset, check], resources=resources, instance=instance, selection=dg.AssetSelection.checks(check)
    )
    [probe_check] = probe.get_asset_check_evaluations()
    assert not probe_check.passed
    assert probe_check.metadata["profiles_tested"].value == 2  # "paused" is disabled
    assert probe_check.metadata["reason"].value.startswith("profile 'down': connection test: cannot reach")

    defs = build_defs(config_path)
    assert defs.resolve_assets_def(LAKE_SYNC).partitions_def.get_partition_keys() == [
        "events",
        "down",
        "paused",
    ]
    schedule = defs.resolve_schedule_def("lake_sync_hourly_schedule")
    assert schedule.cron_schedule == "0 * * * *"
    context = dg.build_schedule_context(
        instance=instance,
        resources=resources,
        scheduled_execution_time=dt.datetime(2026, 1, 1, 5, tzinfo=dt.UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert {(r.partition_key, r.run_key) for r in requests} == {
        ("events", "events@2026-01-01T05:00"),
        ("down", "down@2026-01-01T05:00"),
    }

    write_files(lake_env.landing_dir_for("user_events"), {f"{OLD:%Y-%m-%d}/late.csv": b"id\n2\n"})
    retention = defs.resolve_job_def("lake_retention_job").execute_in_process(
        run_config={"ops": {"lake_retention": {"config": {"dry_run": False, "profiles": ["events"]}}}},
        instance=instance,
    )
    assert retention.success
    observations = [
        event.event_specific_data.asset_observation
        for event in retention.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    ]
    assert [(o.partition, o.metadata["expired_files"].value) for o in observations] == [("events", 1)]
    assert not (lake_env.landing_dir_for("user_events") / f"{OLD:%Y-%m-%d}").exists()
