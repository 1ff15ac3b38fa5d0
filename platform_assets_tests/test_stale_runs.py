"""A main run killed mid-run (SIGKILL) leaves its run STARTED; the next main run marks it failed.

The killed main run is a real `run_main` in a subprocess on a persistent instance, over a one-asset domain whose
asset waits on a file; the next one is `run_main` on the same instance in this process. Clearing such a run
through a `dagster dev` (`platform runs cancel --force`) is tested in test_runs_cli.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.main_run import HOST_TAG, PID_START_TAG, PID_TAG, fail_stale_runs, process_tags, run_main
from platform_assets.metadata_center.embedded import EmbeddedMetadataCenter
from platform_assets_tests.conftest import PROJECT_ROOT, point_platform_at
from platform_assets_tests.fixtures.dagster_dev import isolated_environment

# One asset that says it started, then waits until the test releases it (at most five minutes).
HELD_DOMAIN = """
import os
import time

import dagster as dg

from platform_assets.lib.config import get_settings


@dg.asset(key=["held", "value"], group_name="held")
def held_value() -> None:
    data_dir = get_settings().data_dir
    (data_dir / "started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 300
    while not (data_dir / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


defs = dg.Definitions(assets=[held_value])
"""
MAIN_RUN_SCRIPT = """
import sys

import dagster as dg

from platform_assets.main_run import run_main

with dg.DagsterInstance.get() as instance:
    run_main(instance, size=None, package=sys.argv[1])
"""


@pytest.fixture
def held_package(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A domain package holding only the held asset: its name and the directory to put on the path."""
    package = f"held_domains_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "pkgs"
    (root / package / "held").mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "held" / "__init__.py").write_text(textwrap.dedent(HELD_DOMAIN).lstrip())
    sys.path.insert(0, str(root))
    try:
        yield package, root
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def _wait_for(path: Path, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the main run exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} not written after {timeout:g} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


@pytest.mark.slow
def test_a_killed_main_run_is_marked_failed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_package: tuple[str, Path]
) -> None:
    package, package_root = held_package
    settings = point_platform_at(monkeypatch, tmp_path / "platform")
    dagster_home = settings.dagster_home
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with EmbeddedMetadataCenter(settings.data_dir) as service:
        # Both main runs use this metadata center, so the killed one leaves no service of its own behind.
        monkeypatch.setenv("METADATA_CENTER_URL", service.url)
        env = isolated_environment(settings.data_dir, dagster_home) | {
            "METADATA_CENTER_URL": service.url,
            "PYTHONPATH": os.pathsep.join([str(package_root), str(PROJECT_ROOT)]),
        }
        log = tmp_path / "main-run.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", MAIN_RUN_SCRIPT, package],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for(settings.data_dir / "started", process, log)
            with dg.DagsterInstance.get() as instance:
                [stale] = instance.get_runs(filters=dg.RunsFilter(tags={PID_TAG: str(process.pid)}))
                assert stale.status == dg.DagsterRunStatus.STARTED
                assert stale.tags[HOST_TAG] == socket.gethostname()
                # While its process lives, the run is left alone.
                assert fail_stale_runs(instance, echo=lambda _: None) == []
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                assert instance.get_run_by_id(stale.run_id).status == dg.DagsterRunStatus.STARTED

                (settings.data_dir / "release").write_text("")
                messages: list[str] = []
                summary = run_main(instance, size=None, echo=messages.append, package=package)
                assert summary.ok, summary.render()

                gone = (
                    f"process {process.pid} on {socket.gethostname()} is gone; marked failed by platform run"
                )
                assert instance.get_run_by_id(stale.run_id).status == dg.DagsterRunStatus.FAILURE
                [failure] = instance.all_logs(stale.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
                assert failure.message.startswith(gone), failure.message
                assert any(stale.run_id in message and gone in message for message in messages), messages
                [fresh] = [run for run in instance.get_runs() if run.run_id != stale.run_id]
                assert fresh.status == dg.DagsterRunStatus.SUCCESS
                assert fresh.tags[PID_TAG] == str(os.getpid())
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def test_only_runs_of_this_host_whose_process_is_gone_are_cleared(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = finished.stdout.decode().strip()
    here = socket.gethostname()
    mine = process_tags()
    alive_parent = {HOST_TAG: here, PID_TAG: str(os.getppid())}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        runs = {
            "dead": ({HOST_TAG: here, PID_TAG: dead_pid}, dg.DagsterRunStatus.STARTED),
            "canceling": ({HOST_TAG: here, PID_TAG: dead_pid}, dg.DagsterRunStatus.CANCELING),
            "other_host": ({HOST_TAG: f"not-{here}", PID_TAG: dead_pid}, dg.DagsterRunStatus.STARTED),
            "alive": (alive_parent, dg.DagsterRunStatus.STARTED),
            # The live parent's pid, but another start time: the pid was reused, the run's process is gone.
            "reused_pid": ({**alive_parent, PID_START_TAG: "1"}, dg.DagsterRunStatus.STARTED),
            # A run of this very process before its main run starts is left over from an earlier process.
            "same_pid": (mine, dg.DagsterRunStatus.STARTING),
            "finished": ({HOST_TAG: here, PID_TAG: dead_pid}, dg.DagsterRunStatus.SUCCESS),
            "not_main_run": ({}, dg.DagsterRunStatus.STARTED),
        }
        for run_id, (tags, status) in runs.items():
            instance.add_run(dg.DagsterRun(job_name="held", run_id=run_id, tags=tags, status=status))

        cleared = fail_stale_runs(instance, echo=lambda _: None)

        assert sorted(cleared) == ["canceling", "dead", "reused_pid", "same_pid"]
        status = {run_id: instance.get_run_by_id(run_id).status for run_id in runs}
        assert status == {
            "dead": dg.DagsterRunStatus.FAILURE,
            "canceling": dg.DagsterRunStatus.CANCELED,
            "other_host": dg.DagsterRunStatus.STARTED,
            "alive": dg.DagsterRunStatus.STARTED,
            "reused_pid": dg.DagsterRunStatus.FAILURE,
            "same_pid": dg.DagsterRunStatus.FAILURE,
            "finished": dg.DagsterRunStatus.SUCCESS,
            "not_main_run": dg.DagsterRunStatus.STARTED,
        }


def test_the_default_instance_monitors_runs() -> None:
    """dagster.yaml turns on run monitoring (the daemon `dagster dev` starts): runs left CANCELING end."""
    settings = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides=settings) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_cancel_timeout_seconds == 120
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert "MONITORING" in instance.get_required_daemon_types()
