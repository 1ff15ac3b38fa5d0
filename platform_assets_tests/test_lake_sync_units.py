"""Lake sync parts that need no SSH server: profiles and their validation, dates in paths, retention safety,
rsync output parsing, checkpoints and locks, stats rendering, CSV conversion, and the Dagster definitions."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from platform_assets.lake_sync.checkpoint import Checkpoint, CheckpointStore, SyncBusyError
from platform_assets.lake_sync.cli import lake_cli
from platform_assets.lake_sync.config import (
    CONFIG_ENV,
    LakeSyncConfigError,
    compile_date_format,
    default_config_path,
    load_config,
    parse_config,
)
from platform_assets.lake_sync.convert import convert_landed
from platform_assets.lake_sync.retention import RetentionSafetyError, apply_retention, path_date
from platform_assets.lake_sync.rsync import classify_failure, parse_listing, parse_stats
from platform_assets.lake_sync.stats import ProfileStats, relative_time, render_table
from platform_assets.lake_sync.sync import sync_profile
from platform_assets.lib.config import PlatformSettings
from platform_assets_tests.conftest import PROJECT_ROOT

TODAY = dt.date(2026, 3, 15)
MINIMAL = {"host": "node1.internal", "remote_path": "/data", "target": "landing/user_events"}


@pytest.fixture
def lake_env(platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch) -> PlatformSettings:
    """An isolated data dir; no profiles file path inherited from the caller's environment."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    platform_env.data_dir.mkdir(parents=True, exist_ok=True)
    return platform_env


def dump(data: dict) -> str:
    """YAML text of a config."""
    return yaml.safe_dump(data, sort_keys=False)


# -- configuration ------------------------------------------------------------------------------------------


def test_errors_name_the_file_line_profile_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    text = """\
defaults:
  port: 70000
profiles:
  good:
    host: node1
    port: 22
    remote_path: /data
    target: landing/events
  broken:
    host: "-oProxyCommand=evil"
    port: 22
    remote_path: /data
    target: ../../etc
    retention_days: 0
    bwlimit: fast
    date_formats: ["%Y-%m"]
    ssh_key: $NO_SUCH_VARIABLE/id_ed25519
    colour: red
  inherits:
    host: node2
    remote_path: /data
"""
    with pytest.raises(LakeSyncConfigError) as caught:
        parse_config(text, "/etc/lake_sync.yaml")
    problems = caught.value.problems
    expected = [
        "/etc/lake_sync.yaml:10: profile 'broken': field 'host': '-oProxyCommand=evil' is not a host name",
        "/etc/lake_sync.yaml:13: profile 'broken': field 'target': target '../../etc' must not contain '..'",
        "/etc/lake_sync.yaml:14: profile 'broken': field 'retention_days': Input should be greater than or equal to 1",
        "/etc/lake_sync.yaml:15: profile 'broken': field 'bwlimit': 'fast' is not a bandwidth",
        "/etc/lake_sync.yaml:16: profile 'broken': field 'date_formats': date format '%Y-%m' must contain",
        "/etc/lake_sync.yaml:17: profile 'broken': field 'ssh_key': environment variable(s) NO_SUCH_VARIABLE not set",
        "/etc/lake_sync.yaml:18: profile 'broken': field 'colour': unknown field",
        "/etc/lake_sync.yaml:2: profile 'inherits': field 'port' (from defaults): Input should be less than or equal to 65535 (got 70000)",
        "/etc/lake_sync.yaml:19: profile 'inherits': field 'target': required field is missing",
    ]
    for start in expected:
        assert any(problem.startswith(start) for problem in problems), (start, problems)
    assert not any("'good'" in problem for problem in problems)
    # The exception's own text is one line: the first problem and a count.
    assert "\n" not in str(caught.value) and "more problem(s)" in str(caught.value)


def test_paths_expand_home_and_environment_variables(
    monkeypatch: pytest.MonkeyPatch, lake_env: PlatformSettings
) -> None:
    monkeypatch.setenv("LAKE_KEYS", "/secrets/keys")
    monkeypatch.setenv("HOME", "/home/collector")
    config = parse_config(
        dump(
            {
                "profiles": {
                    "a": {**MINIMAL, "ssh_key": "$LAKE_KEYS/id_ed25519", "known_hosts_file": "~/.ssh/known"},
                    "b": {**MINIMAL, "ssh_key": "~/.ssh/id_ed25519", "target": "${LAKE_KEYS}/../landing"},
                }
            }
        )
    )
    assert config.profile("a").ssh_key == "/secrets/keys/id_ed25519"
    assert config.profile("a").known_hosts_file == "/home/collector/.ssh/known"
    assert config.profile("b").ssh_key == "/home/collector/.ssh/id_ed25519"
    assert config.profile("b").target_dir() == Path("/secrets/landing")
    assert config.profile("a").target_dir() == lake_env.data_dir / "landing" / "user_events"
    assert config.profile("a").domain == "user_events"
    assert config.profile("a").remote_path == "/data/"  # a directory's content, never the directory itself


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles: [oops\n", "/x.yaml:2: invalid YAML"),
        ("- a\n- b\n", "expected a mapping with a 'profiles:' section"),
        ("profile:\n  a: {}\n", "unknown top-level key(s) ['profile']"),
        ("version: 2\nprofiles: {}\n", "version 2 is not supported"),
        ("profiles:\n  a: 3\n", "profile 'a': expected a mapping of fields, got int"),
        ("profiles:\n  'bad name': {host: h, remote_path: /d, target: landing/x}\n", "field 'name': must be"),
        (
            "profiles:\n  a: {host: h, remote_path: /d, target: /}\n",
            "field 'target': target '/' resolves to the",
        ),
        (
            "profiles:\n  a: {host: h, remote_path: /d, target: lake/x}\n",
            "must be a domain's landing directory",
        ),
    ],
)
def test_more_validation_errors(text: str, message: str) -> None:
    with pytest.raises(LakeSyncConfigError) as caught:
        parse_config(text, "/x.yaml")
    assert any(message in problem for problem in caught.value.problems), caught.value.problems


def test_default_path_and_missing_file(lake_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_config_path() == lake_env.data_dir / "lake_sync.yaml"
    with pytest.raises(LakeSyncConfigError, match="profiles file not found .*PLATFORM_LAKE_SYNC_CONFIG"):
        load_config()
    custom = lake_env.data_dir / "elsewhere.yaml"
    custom.write_text(dump({"profiles": {"a": MINIMAL}}))
    monkeypatch.setenv(CONFIG_ENV, str(custom))
    assert default_config_path() == custom
    assert list(load_config().profiles) == ["a"]
    with pytest.raises(LakeSyncConfigError, match=r"no profile 'zzz' \(profiles: a\)"):
        load_config().profile("zzz")


def test_validate_command(lake_env: PlatformSettings, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("not really a key")
    path = lake_env.data_dir / "lake_sync.yaml"
    runner = CliRunner()

    path.write_text(dump({"profiles": {"a": {**MINIMAL, "ssh_key": str(key), "retention_days": 7}}}))
    ok = runner.invoke(lake_cli, ["validate"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"ok: 1 profile(s) in {path}")

    path.write_text(dump({"profiles": {"a": {**MINIMAL, "ssh_key": str(tmp_path / "missing")}}}))
    missing = runner.invoke(lake_cli, ["validate"])
    assert missing.exit_code == 3
    assert f"profile 'a': field 'ssh_key': {tmp_path / 'missing'} is not found" in missing.output

    path.write_text(dump({"profiles": {"a": {**MINIMAL, "port": "ssh"}}}))
    invalid = runner.invoke(lake_cli, ["--config", str(path), "validate"])
    assert invalid.exit_code == 3
    lines = invalid.output.strip().splitlines()
    assert lines[0].startswith(f"error: {path}:") and "profile 'a': field 'port'" in lines[0]
    assert lines[-1] == f"Error: {path}: 1 problem(s); see the lines above"


def test_cli_usage_and_unknown_profile(lake_env: PlatformSettings) -> None:
    (lake_env.data_dir / "lake_sync.yaml").write_text(dump({"profiles": {"a": MINIMAL}}))
    runner = CliRunner()
    assert runner.invoke(lake_cli, ["sync"]).exit_code == 2
    assert runner.invoke(lake_cli, ["sync", "a", "--all"]).exit_code == 2
    unknown = runner.invoke(lake_cli, ["sync", "zzz"])
    assert unknown.exit_code == 3
    assert unknown.output.strip().endswith("no profile 'zzz' (profiles: a)")
    no_file = runner.invoke(lake_cli, ["--config", str(lake_env.data_dir / "none.yaml"), "stats"])
    assert no_file.exit_code == 3 and "profiles file not found" in no_file.output


# -- dates and retention ------------------------------------------------------------------------------------


def test_dates_in_paths() -> None:
    defaults = [compile_date_format(f) for f in ("YYYY-MM-DD", "YYYYMMDD", "YYYY/MM/DD")]
    assert path_date("2026-03-01/events.csv", defaults) == dt.date(2026, 3, 1)
    assert path_date("daily/events_20260301.csv", defaults) == dt.date(2026, 3, 1)
    assert path_date("2026/03/01/clicks.csv", defaults) == dt.date(2026, 3, 1)
    # The newest date in a path wins, so a re-delivery of old data under today's folder is kept.
    assert path_date("2026/03/10/backfill_20250101.csv", defaults) == dt.date(2026, 3, 10)
    assert path_date("ids/12345678.csv", defaults) is None  # year 1234: not a date
    assert path_date("batch_20261399.csv", defaults) is None  # month 13
    assert path_date("run_2026030112.csv", defaults) is None  # ten digits: not an 8-digit date
    assert path_date("reference/users.csv", defaults) is None
    hive = [compile_date_format("year=%Y/month=%m/day=%d")]
    assert path_date("year=2026/month=02/day=28/part-0.parquet", hive) == dt.date(2026, 2, 28)
    assert path_date("2026-02-28/x.csv", hive) is None


def _retention_profile(settings: PlatformSettings, target: str = "landing/user_events", days: int = 30):
    config = parse_config(dump({"profiles": {"p": {**MINIMAL, "target": target, "retention_days": days}}}))
    return config.profile("p")


def test_retention_never_leaves_the_target(lake_env: PlatformSettings, tmp_path: Path) -> None:
    profile = _retention_profile(lake_env)
    target = profile.target_dir()
    outside = tmp_path / "outside"
    for relative in ("2020-01-01/a.csv", "2020/01/01/b.csv", "c_20200101.csv"):
        for root in (target, outside):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text("old\n")
    neighbour = lake_env.landing_dir_for("other") / "2020-01-01" / "a.csv"
    neighbour.parent.mkdir(parents=True)
    neighbour.write_text("another domain\n")
    # Links inside the target to old-dated data outside it: neither the links nor what they point to go.
    (target / "linked_2020-01-01").symlink_to(outside / "2020-01-01", target_is_directory=True)
    (target / "link_20200101.csv").symlink_to(outside / "c_20200101.csv")
    old = ["2020-01-01/a.csv", "2020/01/01/b.csv", "c_20200101.csv"]

    dry = apply_retention(profile, dry_run=True, today=TODAY)
    assert sorted(item.relative for item in dry.expired) == old
    assert all(item.path.exists() for item in dry.expired)  # nothing deleted

    real = apply_retention(profile, dry_run=False, today=TODAY)
    assert sorted(item.relative for item in real.expired) == old and not real.errors
    assert sorted(p.name for p in target.iterdir()) == ["link_20200101.csv", "linked_2020-01-01"]
    assert target.is_dir()  # never the root itself; emptied date directories are gone
    assert all((outside / r).read_text() == "old\n" for r in old)
    assert neighbour.exists()


def test_retention_refuses_a_root_that_is_not_dedicated(lake_env: PlatformSettings) -> None:
    profile = _retention_profile(lake_env, target=str(lake_env.data_dir))
    (lake_env.data_dir / "2020-01-01.csv").write_text("x")
    with pytest.raises(RetentionSafetyError, match="refusing to clean"):
        apply_retention(profile, today=TODAY)
    assert (lake_env.data_dir / "2020-01-01.csv").exists()


def test_retention_cleanup_speed_is_not_a_test_but_many_files_work(lake_env: PlatformSettings) -> None:
    profile = _retention_profile(lake_env, days=10)
    target = profile.target_dir()
    for day in range(30):
        folder = target / (TODAY - dt.timedelta(days=day)).strftime("%Y/%m/%d")
        folder.mkdir(parents=True)
        for index in range(20):
            (folder / f"part-{index}.csv").write_text("x\n")
    report = apply_retention(profile, today=TODAY)
    assert len(report.expired) == 19 * 20  # days 11..29 are older than 10 days
    assert report.kept == 11 * 20
    assert "deleted 380 file(s)" in report.summary()


# -- rsync output -------------------------------------------------------------------------------------------


def test_parse_stats_with_and_without_separators() -> None:
    text = """
Number of files: 1,234 (reg: 1,200, dir: 34)
Number of created files: 10 (reg: 10)
Number of regular files transferred: 12
Total file size: 98,765,432 bytes
Total transferred file size: 1,048,576 bytes
Literal data: 524,288 bytes
Matched data: 524,288 bytes
File list size: 4,321
Total bytes sent: 1,234
Total bytes received: 530,000

sent 1,234 bytes  received 530,000 bytes  354,156.00 bytes/sec
total size is 98,765,432  speedup is 185.93
""".splitlines()
    stats = parse_stats(text)
    assert (stats.files_considered, stats.files_transferred) == (1234, 12)
    assert (stats.total_size, stats.transferred_size) == (98765432, 1048576)
    assert (stats.literal_bytes, stats.matched_bytes) == (524288, 524288)
    assert (stats.bytes_sent, stats.bytes_received) == (1234, 530000)
    assert stats.speed_bytes_per_s == 354156.0
    assert parse_stats([line.replace(",", "") for line in text]).total_size == 98765432


def test_parse_listing() -> None:
    lines = [
        "drwxr-xr-x          4,096 2026/03/01 10:00:00 .",
        "-rw-r--r--          1,234 2026/03/01 10:00:01 2026-03-01/a b.csv",
        "lrwxrwxrwx             12 2026/03/01 10:00:02 latest -> 2026-03-01",
        "-rw-r--r--              0 2026/03/01 10:00:03 empty.csv",
    ]
    files = parse_listing(lines)
    assert [(f.path, f.size) for f in files] == [("2026-03-01/a b.csv", 1234), ("empty.csv", 0)]


@pytest.mark.parametrize(
    ("code", "stderr", "kind", "fragment"),
    [
        (255, "root@h: Permission denied (publickey).\r\n", "auth_failed", "refused the login"),
        (255, "Host key verification failed.\n", "host_key", "host key of root@h port 22 rejected"),
        (
            255,
            "ssh: Could not resolve hostname h: Name or service not known\n",
            "unreachable",
            "cannot reach",
        ),
        (
            23,
            'rsync: [sender] change_dir "/data" failed: No such file or directory (2)\n',
            "remote_path_missing",
            "does not exist",
        ),
        (127, "bash: line 1: rsync: command not found\n", "remote_rsync_missing", "rsync is not installed"),
        (30, "[receiver] io timeout after 300 seconds -- exiting\n", "timeout", "no data moved for 300 s"),
        (-9, "", "interrupted", "killed by signal 9"),
        (255, "rsync: [generator] write error: Broken pipe (32)\n", "connection_lost", "lost mid-transfer"),
        (
            12,
            "rsync: connection unexpectedly closed\nrsync error: error in rsync protocol data stream (code 12)\n",
            "connection_lost",
            "lost mid-transfer",
        ),
        (
            23,
            'rsync: [sender] send_files failed to open "/data/x.csv": Permission denied (13)\n'
            "rsync error: some files/attrs were not transferred (see previous errors) (code 23)\n",
            "rsync_failed",
            "rsync exited 23 (rsync: [sender] send_files failed to open",
        ),
    ],
)
def test_failures_are_classified_with_one_line_reasons(
    code: int, stderr: str, kind: str, fragment: str
) -> None:
    profile = parse_config(dump({"profiles": {"p": {**MINIMAL, "host": "h", "user": "root"}}})).profile("p")
    error = classify_failure(profile, code, stderr, "transfer")
    assert error.kind == kind
    assert error.reason.startswith("profile 'p': transfer: ") and fragment in error.reason
    assert "\n" not in error.reason


# -- checkpoints, locks, stats ------------------------------------------------------------------------------


def test_checkpoint_roundtrip_and_corrupt_file(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state")
    store.save(Checkpoint(profile="p", status="success", last_outcome="success"))
    assert json.loads((tmp_path / "state" / "p.json").read_text())["status"] == "success"
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["p.json"]  # no temp file left behind
    loaded, warning = store.load("p")
    assert loaded.status == "success" and warning is None

    (tmp_path / "state" / "p.json").write_text('{"status": "succ')  # e.g. edited by hand
    recovered, warning = store.load("p")
    assert warning and "was unreadable" in warning
    assert recovered.was_interrupted and recovered.unverified_since.startswith("1970")  # verify everything
    assert any(p.name.startswith("p.json.corrupt-") for p in (tmp_path / "state").iterdir())


def test_a_held_lock_makes_sync_and_cleanup_report_busy(lake_env: PlatformSettings) -> None:
    (lake_env.data_dir / "lake_sync.yaml").write_text(
        dump({"profiles": {"p": {**MINIMAL, "retention_days": 3}}})
    )
    config = load_config()
    store = CheckpointStore(config.state_dir())
    with store.lock("p"):
        result = sync_profile(config.profile("p"), config)
        assert result.outcome == "busy" and "is busy" in (result.error or "")
        cleanup = CliRunner().invoke(lake_cli, ["cleanup", "p"])
        assert cleanup.exit_code == 1 and "profile 'p' is busy" in cleanup.output
        with pytest.raises(SyncBusyError), store.lock("p"):
            pass


def test_relative_times_and_table() -> None:
    now = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)
    assert relative_time(None, now) == "-"
    assert relative_time(now - dt.timedelta(seconds=10), now) == "just now"
    assert relative_time(now - dt.timedelta(minutes=5), now) == "5 minutes ago"
    assert relative_time(now - dt.timedelta(hours=1), now) == "1 hour ago"
    assert relative_time(now - dt.timedelta(days=3, hours=5), now) == "3 days ago"
    assert relative_time(now + dt.timedelta(hours=2), now) == "in 2 hours"
    assert relative_time(dt.date(2026, 3, 14), now) == "yesterday"
    assert relative_time(dt.date(2026, 3, 1), now) == "14 days ago"
    table = render_table(
        [
            ProfileStats(
                profile="events",
                target=Path("/x"),
                files=3,
                bytes=1536,
                oldest_data=dt.date(2026, 3, 1),
                newest_data=dt.date(2026, 3, 15),
                last_sync_at=now - dt.timedelta(minutes=5),
                last_outcome="success",
                last_success_at=now - dt.timedelta(minutes=5),
            ),
            ProfileStats(profile="new-node", target=Path("/y"), enabled=False),
        ],
        now,
    ).splitlines()
    assert table[0].split() == [
        "profile",
        "files",
        "size",
        "oldest",
        "data",
        "newest",
        "data",
        "last",
        "sync",
        "outcome",
        "last",
        "success",
    ]
    assert table[2].split() == [
        "events",
        "3",
        "1.5",
        "KiB",
        "14",
        "days",
        "ago",
        "today",
        "5",
        "minutes",
        "ago",
        "success",
        "5",
        "minutes",
        "ago",
    ]
    assert "never synced (disabled)" in table[3]


def test_csv_conversion_reports_a_malformed_file(tmp_path: Path) -> None:
    landing, parquet = tmp_path / "csv", tmp_path / "parquet"
    landing.mkdir()
    (landing / "good.csv").write_text("a,b\n1,x\n")
    (landing / "bad.csv").write_text("a,b\n1,2,3\n")
    report = convert_landed(["good.csv", "bad.csv", "notes.txt"], landing, parquet)
    assert report.converted == ["good.csv"]
    assert list(report.failed) == ["bad.csv"]
    assert (parquet / "good.parquet").exists() and not (parquet / "bad.parquet").exists()
    assert convert_landed(["good.csv"], landing, parquet).up_to_date == 1


# -- Dagster definitions ------------------------------------------------------------------------------------


def test_definitions_load_light_and_without_a_profiles_file(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from platform_assets.defs.lake_sync import defs, LAKE_SYNC\n"
        "heavy = sorted(m for m in ('ray', 'torch', 'pyspark', 'lancedb', 'daft', 'pyarrow', 'pandas') if m in sys.modules)\n"
        "node = defs.resolve_asset_graph().get(LAKE_SYNC)\n"
        "print(heavy, node.group_name, node.partitions_def.get_partition_keys())\n"
        "print('not found' in defs.resolve_assets_def(LAKE_SYNC).descriptions_by_key[LAKE_SYNC])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env["PLATFORM_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[] lake_sync []", "True"]


def test_definitions_from_a_profiles_file(lake_env: PlatformSettings) -> None:
    from platform_assets.defs.lake_sync import LAKE_SYNC, build_defs
    from platform_assets.defs.lake_sync.resources import LakeSyncResource

    path = lake_env.data_dir / "lake_sync.yaml"
    path.write_text(dump({"profiles": {"a": MINIMAL, "b": {**MINIMAL, "enabled": False}}}))
    defs = build_defs(str(path))
    assert defs.resolve_assets_def(LAKE_SYNC).partitions_def.get_partition_keys() == ["a", "b"]
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"lake_sync_job", "lake_retention_job"}
    assert defs.resolve_schedule_def("lake_retention_daily_schedule").cron_schedule == "30 3 * * *"

    # An edited, now invalid file makes the schedule skip with the reason instead of failing the tick.
    path.write_text("profiles:\n  a: {host: h}\n")
    schedule = defs.resolve_schedule_def("lake_sync_hourly_schedule")
    context = dg.build_schedule_context(
        resources={"lake_sync": LakeSyncResource(config_path=str(path))},
        repository_def=defs.get_repository_def(),
    )
    skip = schedule.evaluate_tick(context)
    assert not skip.run_requests
    assert "profile 'a': field 'remote_path': required field is missing" in skip.skip_message
