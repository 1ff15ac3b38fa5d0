"""`platform runs …` and `platform instance status` against a real `dagster dev` (webserver + daemon) on loopback.

The code location is platform_assets_tests/fixtures/runs_location.py: tiny assets that finish in well under a
second, so every command is driven through real runs (queued by the daemon, executed by run workers) quickly.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import tenacity
from click.testing import CliRunner, Result

from platform_assets.lib.processes import stop_session
from platform_assets.ops.graphql import documents
from platform_assets.ops.graphql.transport import GraphQLTransport
from platform_assets.ops.graphql_client import DagsterWebserver, PlatformGraphQLError, RunNotFound
from platform_assets.ops.runs_cli import URL_ENV, instance_cli, runs_cli
from platform_assets.ops.selection import AssetNodeInfo, SelectionError, resolve_selection
from platform_assets_tests.conftest import PROJECT_ROOT, free_port
from platform_assets_tests.fixtures.dagster_dev import DagsterDev, dagster_dev, isolated_environment
from platform_assets_tests.fixtures.runs_location import FAILURE_MESSAGE

LOCATION = "platform_assets_tests.fixtures.runs_location"
# SQLite instance with the production queue's shape: a global limit and at most one run tagged
# platform/compute=embedding at a time (the queue test relies on that limit to hold a run back).
INSTANCE_YAML = """
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 3
    dequeue_interval_seconds: 1
    tag_concurrency_limits:
      - key: platform/compute
        value: embedding
        limit: 1
"""

# Runs executed in process (as `platform run` does) on the webserver's instance, each in a process of its own
# (forked once dagster is imported), tagged like an embedding run; each writes its run id to a file, then waits
# to be killed.
IN_PROCESS_RUNS_SCRIPT = """
import os
import sys
import time
from pathlib import Path

import dagster as dg


@dg.asset
def held(context: dg.AssetExecutionContext) -> None:
    (Path(sys.argv[1]) / context.run_id).write_text("")
    time.sleep(600)


for _ in range(int(sys.argv[2]) - 1):
    if os.fork() == 0:
        break
dg.materialize([held], instance=dg.DagsterInstance.get(), tags={"platform/compute": "embedding"})
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    """One `dagster dev` for the module: starting one costs about 15 s and 750 MB."""
    root = tmp_path_factory.mktemp("runs-cli")
    with dagster_dev(root, LOCATION, LOCATION, free_port(), INSTANCE_YAML, cwd=PROJECT_ROOT) as running:
        yield running


def invoke(group: click.Group, *args: str, url: str | None) -> Result:
    """Run a command of `group` as `platform` would, with DAGSTER_WEBSERVER_URL pointing at `url`."""
    env = {URL_ENV: url} if url else {URL_ENV: None}
    return CliRunner().invoke(group, list(args), env=env, catch_exceptions=False)


def ok_json(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line_error(result: Result) -> str:
    """The command failed with exit status 1 and a single `Error: …` line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def launch(server: DagsterDev, *args: str) -> str:
    data = ok_json(invoke(runs_cli, "launch", *args, "--json", url=server.url))
    assert isinstance(data, dict)
    return data["run_id"]


def wait(server: DagsterDev, run_id: str) -> Result:
    return invoke(runs_cli, "wait", run_id, "--interval", "0.5", "--timeout", "300", url=server.url)


def status(server: DagsterDev, run_id: str) -> dict:
    data = ok_json(invoke(runs_cli, "status", run_id, "--json", url=server.url))
    assert isinstance(data, dict)
    return data


def wait_for_status(server: DagsterDev, run_id: str, wanted: set[str], timeout: float = 180) -> str:
    """Poll until the run is in one of `wanted` (the daemon dequeues and a worker starts in the background)."""

    def never_reached(state: tenacity.RetryCallState) -> str:
        current = state.outcome.result() if state.outcome is not None else ""
        raise AssertionError(f"run {run_id} still {current}, never reached {wanted}:\n{server.log_tail()}")

    poll = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda current: current not in wanted),
        wait=tenacity.wait_fixed(0.5),
        stop=tenacity.stop_after_delay(timeout),
        retry_error_callback=never_reached,
    )
    return poll(lambda: status(server, run_id)["status"])


@pytest.mark.slow
def test_a_launched_job_is_followed_to_its_outputs(server: DagsterDev) -> None:
    launched = ok_json(
        invoke(runs_cli, "launch", "--job", "tiny_job", "--tag", "team=qa", "--json", url=server.url)
    )
    assert isinstance(launched, dict) and launched["job"] == "tiny_job"
    run_id = launched["run_id"]
    assert launched["status"] in {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "SUCCESS"}

    finished = wait(server, run_id)
    assert finished.exit_code == 0, finished.output
    assert finished.stdout.strip() == f"{run_id} SUCCESS"

    run = status(server, run_id)
    assert run["status"] == "SUCCESS" and run["job"] == "tiny_job" and run["tags"]["team"] == "qa"
    steps = {step["step_key"]: step for step in run["steps"]}
    assert set(steps) == {"numbers", "doubled", "doubled_doubled_values_are_even"}
    assert all(step["status"] == "SUCCESS" and step["duration_s"] is not None for step in steps.values())
    # Timings are reported per step: the upstream step ended before the downstream one started.
    assert steps["numbers"]["ended"] <= steps["doubled"]["started"]
    assert [step["step_key"] for step in run["steps"]][0] == "numbers"
    text = invoke(runs_cli, "status", run_id, url=server.url)
    assert text.exit_code == 0 and "numbers" in text.stdout and "SUCCESS" in text.stdout

    outputs = ok_json(invoke(runs_cli, "outputs", run_id, "--json", url=server.url))
    assert isinstance(outputs, dict)
    materialized = {m["asset_key"]: m for m in outputs["materializations"]}
    assert set(materialized) == {"numbers", "doubled"}
    for key, materialization in materialized.items():
        assert materialization["row_count"] == 5
        assert materialization["uri"] == f"file://{server.data_dir / 'lake' / 'default' / key}"
        assert Path(materialization["uri"].removeprefix("file://"), "data").is_dir()
    [check] = outputs["checks"]
    assert (check["asset_key"], check["check_name"], check["passed"]) == (
        "doubled",
        "doubled_values_are_even",
        True,
    )
    assert check["metadata"] == {"odd_values": 0}

    events = ok_json(invoke(runs_cli, "logs", run_id, "--json", url=server.url))
    assert isinstance(events, list)
    assert any(e["step_key"] == "doubled" and e["message"] == "doubling 5 numbers" for e in events)
    numbers_only = ok_json(invoke(runs_cli, "logs", run_id, "--step", "numbers", "--json", url=server.url))
    assert isinstance(numbers_only, list) and numbers_only
    assert {e["step_key"] for e in numbers_only} == {"numbers"}
    assert ok_json(invoke(runs_cli, "logs", run_id, "--level", "ERROR", "--json", url=server.url)) == []


@pytest.mark.slow
def test_single_steps_are_launched_by_asset_selection(server: DagsterDev) -> None:
    first = launch(server, "--select", "numbers")
    assert wait(server, first).exit_code == 0
    run = status(server, first)
    assert run["asset_selection"] == ["numbers"]
    assert [step["step_key"] for step in run["steps"]] == ["numbers"]

    # One step that reads its input from the lake, written by the run before.
    second = launch(server, "--select", "doubled")
    assert wait(server, second).exit_code == 0
    run = status(server, second)
    assert run["asset_selection"] == ["doubled"]
    assert {step["step_key"] for step in run["steps"]} == {"doubled", "doubled_doubled_values_are_even"}
    outputs = ok_json(invoke(runs_cli, "outputs", second, "--json", url=server.url))
    assert isinstance(outputs, dict)
    assert [m["asset_key"] for m in outputs["materializations"]] == ["doubled"]

    # The same through Dagster's asset selection syntax (the UI's): the graph is the webserver's.
    third = launch(server, "--select", 'group:tiny and not key:"numbers"')
    assert wait(server, third).exit_code == 0
    assert status(server, third)["asset_selection"] == ["doubled"]


@pytest.mark.slow
def test_a_partition_is_launched_and_reported(server: DagsterDev) -> None:
    run_id = launch(server, "--job", "letters_job", "--partition", "b")
    assert wait(server, run_id).exit_code == 0
    assert status(server, run_id)["tags"]["dagster/partition"] == "b"
    outputs = ok_json(invoke(runs_cli, "outputs", run_id, "--json", url=server.url))
    assert isinstance(outputs, dict)
    [materialization] = outputs["materializations"]
    assert materialization["asset_key"] == "letters" and materialization["partition"] == "b"
    assert materialization["row_count"] == 3
    assert materialization["uri"] == f"file://{server.data_dir / 'lake' / 'default' / 'letters'}"

    # The same partitioned asset through a selection instead of a job.
    by_selection = launch(server, "--select", "letters", "--partition", "c")
    assert wait(server, by_selection).exit_code == 0
    outputs = ok_json(invoke(runs_cli, "outputs", by_selection, "--json", url=server.url))
    assert isinstance(outputs, dict)
    assert [(m["asset_key"], m["partition"]) for m in outputs["materializations"]] == [("letters", "c")]


@pytest.mark.slow
def test_a_failed_run_exits_non_zero_and_its_errors_are_found_by_level_and_step(server: DagsterDev) -> None:
    run_id = launch(server, "--job", "broken_job")
    finished = wait(server, run_id)
    assert finished.exit_code == 1 and finished.stdout.strip() == f"{run_id} FAILURE"

    steps = {step["step_key"]: step["status"] for step in status(server, run_id)["steps"]}
    assert steps == {"broken": "FAILURE"}

    errors = ok_json(invoke(runs_cli, "logs", run_id, "--level", "ERROR", "--json", url=server.url))
    assert isinstance(errors, list) and errors
    assert {e["level"] for e in errors} <= {"ERROR", "CRITICAL"}
    step_failures = [e for e in errors if e["event_type"] == "STEP_FAILURE"]
    assert len(step_failures) == 1 and step_failures[0]["step_key"] == "broken"
    # The user's exception, not Dagster's wrapper around it.
    assert step_failures[0]["error"] == f"ValueError: {FAILURE_MESSAGE}"

    of_step = ok_json(
        invoke(runs_cli, "logs", run_id, "--level", "error", "--step", "broken", "--json", url=server.url)
    )
    assert isinstance(of_step, list) and of_step and {e["step_key"] for e in of_step} == {"broken"}
    everything = ok_json(invoke(runs_cli, "logs", run_id, "--json", url=server.url))
    assert isinstance(everything, list) and len(everything) > len(errors)
    text = invoke(runs_cli, "logs", run_id, "--level", "ERROR", url=server.url)
    assert text.exit_code == 0 and FAILURE_MESSAGE in text.stdout


@pytest.mark.slow
def test_the_queue_holds_a_run_back_and_cancel_stops_both(server: DagsterDev) -> None:
    # Both runs carry the tag that the instance allows once at a time.
    first = launch(server, "--job", "slow_job", "--tag", "platform/compute=embedding")
    second = launch(server, "--job", "slow_job", "--tag", "platform/compute=embedding")
    wait_for_status(server, first, {"STARTED"})
    held = status(server, second)
    assert held["status"] == "QUEUED"
    assert held["steps"] == [
        {
            "step_key": "slow",
            "status": "NOT_STARTED",
            "started": None,
            "ended": None,
            "duration_s": None,
            "attempts": 0,
        }
    ]

    report = ok_json(invoke(instance_cli, "status", "--json", url=server.url))
    assert isinstance(report, dict)
    assert (report["queued_runs"], report["in_progress_runs"]) == (1, 1)
    assert report["run_launcher"] == "DefaultRunLauncher" and report["max_concurrent_runs"] == 3
    assert "embedding" in report["tag_concurrency_limits"]
    assert {d["daemon"] for d in report["daemons"]} >= {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"}
    assert report["code_locations"] == [{"name": LOCATION, "load_status": "LOADED", "error": None}]
    text = invoke(instance_cli, "status", url=server.url)
    assert text.exit_code == 0 and "1 queued, 1 in progress" in text.stdout

    cancelled = ok_json(invoke(runs_cli, "cancel", second, "--json", url=server.url))
    assert cancelled == {"run_id": second, "status": "CANCELED"}
    stopping = invoke(runs_cli, "cancel", first, url=server.url)
    assert stopping.exit_code == 0 and stopping.stdout.split()[-1] in {"CANCELING", "CANCELED"}
    finished = wait(server, first)
    assert finished.exit_code == 1 and finished.stdout.strip() == f"{first} CANCELED"

    canceled = ok_json(invoke(runs_cli, "list", "--status", "CANCELED", "--json", url=server.url))
    assert isinstance(canceled, list)
    assert {first, second} <= {r["run_id"] for r in canceled} and {r["status"] for r in canceled} == {
        "CANCELED"
    }
    latest = ok_json(invoke(runs_cli, "list", "--limit", "1", "--json", url=server.url))
    assert isinstance(latest, list) and [r["run_id"] for r in latest] == [second]
    # A finished run cannot be cancelled again: a clear error, not a silent success.
    assert "could not be terminated" in one_line_error(invoke(runs_cli, "cancel", first, url=server.url))


def killed_in_process_runs(server: DagsterDev, started: Path, count: int) -> list[str]:
    """`count` runs STARTED on the server's instance by a process that is then killed with SIGKILL."""
    started.mkdir()
    log = started.parent / "in-process-runs.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", IN_PROCESS_RUNS_SCRIPT, str(started), str(count)],
            cwd=PROJECT_ROOT,
            env=isolated_environment(server.data_dir, server.dagster_home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while len(list(started.iterdir())) < count:
            assert process.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, (
                f"no {count} runs started in 120 s:\n{log.read_text()[-4000:]}"
            )
            time.sleep(0.2)
    finally:
        # SIGKILL to the script and its forks: nothing gets to report its run's end.
        stop_session(process, grace_seconds=0, first_signal=signal.SIGKILL)
    return sorted(path.name for path in started.iterdir())


@pytest.mark.slow
def test_a_run_whose_process_is_gone_is_cleared_by_cancel_force_and_the_queue_moves(
    server: DagsterDev, tmp_path: Path
) -> None:
    first, second = killed_in_process_runs(server, tmp_path / "started", 2)
    assert {status(server, first)["status"], status(server, second)["status"]} == {"STARTED"}
    # The dead runs hold the one slot of platform/compute=embedding: the next such run stays queued.
    queued = launch(server, "--job", "tiny_job", "--tag", "platform/compute=embedding")
    time.sleep(3)  # the daemon dequeues every second
    assert status(server, queued)["status"] == "QUEUED"

    # Nothing can stop a worker that is gone: without --force the error says what to do.
    refused = one_line_error(invoke(runs_cli, "cancel", first, url=server.url))
    assert "TerminateRunFailure" in refused and "it is CANCELING now" in refused
    assert f"`platform runs cancel --force {first}` marks it CANCELED" in refused
    assert status(server, first)["status"] == "CANCELING"

    # --force on the run left CANCELING, and on a STARTED one (whose terminate fails first).
    forced = invoke(runs_cli, "cancel", "--force", first, "--json", url=server.url)
    assert ok_json(forced) == {"run_id": first, "status": "CANCELED", "forced": True}
    assert f"run {first} is still CANCELING: marked it CANCELED" in forced.stderr
    forced = invoke(runs_cli, "cancel", "--force", second, url=server.url)
    assert forced.exit_code == 0 and forced.stdout.strip() == f"{second} CANCELED", forced.output
    assert "TerminateRunFailure" in forced.stderr and "marked it CANCELED" in forced.stderr

    # The slot is free: the queued run launches and finishes.
    assert wait(server, queued).stdout.strip() == f"{queued} SUCCESS"
    # --force does not touch a run that has ended.
    assert "could not be terminated" in one_line_error(
        invoke(runs_cli, "cancel", "--force", queued, url=server.url)
    )


@pytest.mark.slow
def test_daemons_report_healthy_and_check_passes(server: DagsterDev) -> None:
    # The daemons' first heartbeats arrive a few seconds after dagster dev serves; poll, then assert.
    def instance_report() -> dict:
        data = ok_json(invoke(instance_cli, "status", "--json", url=server.url))
        assert isinstance(data, dict)
        return data

    poll = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda report: not report["healthy"]),
        wait=tenacity.wait_fixed(2),
        stop=tenacity.stop_after_delay(120),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else {},
    )
    report = poll(instance_report)
    assert report["healthy"], report
    assert all(d["healthy"] and d["last_heartbeat"] for d in report["daemons"] if d["required"])
    assert invoke(instance_cli, "status", "--check", url=server.url).exit_code == 0


@pytest.mark.slow
def test_unknown_runs_and_jobs_are_one_line_errors(server: DagsterDev) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for command in ("status", "logs", "outputs", "cancel", "wait"):
        line = one_line_error(invoke(runs_cli, command, missing, url=server.url))
        assert line == f"Error: run {missing} not found on {server.url}", command
    assert "JobNotFoundError" in one_line_error(
        invoke(runs_cli, "launch", "--job", "no_such_job", url=server.url)
    )
    assert "unknown asset 'nope'" in one_line_error(
        invoke(runs_cli, "launch", "--select", "nope", url=server.url)
    )
    assert "no asset in group 'nope'" in one_line_error(
        invoke(runs_cli, "launch", "--select", "group:nope", url=server.url)
    )
    # --url wins over the environment variable.
    result = CliRunner().invoke(
        runs_cli, ["list", "--json", "--url", server.url], env={URL_ENV: f"http://127.0.0.1:{free_port()}"}
    )
    assert result.exit_code == 0 and isinstance(json.loads(result.stdout), list)


def test_an_unreachable_webserver_is_a_one_line_error() -> None:
    port = free_port()  # nothing listens there
    for args in (["status", "some-run"], ["list"], ["launch", "--job", "tiny_job"], ["wait", "some-run"]):
        line = one_line_error(invoke(runs_cli, *args, url=f"http://127.0.0.1:{port}"))
        assert line.startswith(
            f"Error: cannot reach the Dagster webserver at http://127.0.0.1:{port} (connection refused)"
        )
    line = one_line_error(invoke(instance_cli, "status", url=f"http://127.0.0.1:{port}"))
    assert "cannot reach the Dagster webserver" in line


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A plain static file server (not Dagster); quiet, so stderr holds only the command's error."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_that_is_not_dagster_is_named_as_such(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _QuietHandler(*a, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        line = one_line_error(invoke(runs_cli, "list", url=url))
        assert line == f"Error: {url}/graphql answered HTTP 501 without GraphQL: is this a Dagster webserver?"
    finally:
        server.shutdown()
        server.server_close()


def test_usage_errors_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    both = invoke(runs_cli, "launch", "--job", "a", "--select", "b", url=url)
    assert both.exit_code == 2 and "exactly one of --job NAME or --select SELECTION" in both.stderr
    neither = invoke(runs_cli, "launch", url=url)
    assert neither.exit_code == 2
    bad_tag = invoke(runs_cli, "launch", "--job", "a", "--tag", "no-equals-sign", url=url)
    assert bad_tag.exit_code == 2 and "KEY=VALUE" in bad_tag.stderr
    bad_level = invoke(runs_cli, "logs", "r", "--level", "LOUD", url=url)
    assert bad_level.exit_code == 2


NODES = [
    AssetNodeInfo(
        "raw/reviews",
        (),
        ("cleaned/reviews", "quarantine/reviews"),
        "reviews",
        "loc",
        "__repository__",
        False,
        True,
    ),
    AssetNodeInfo(
        "cleaned/reviews",
        ("raw/reviews",),
        ("embedded/reviews",),
        "reviews",
        "loc",
        "__repository__",
        False,
        True,
    ),
    AssetNodeInfo(
        "quarantine/reviews", ("raw/reviews",), (), "reviews", "loc", "__repository__", False, True
    ),
    AssetNodeInfo(
        "embedded/reviews",
        ("cleaned/reviews",),
        (),
        "reviews",
        "loc",
        "__repository__",
        False,
        True,
        kinds=("lancedb",),
        tags=(("tier", "gold"),),
    ),
    AssetNodeInfo("landing/files", (), ("raw/reviews",), "sources", "loc", "__repository__", False, False),
]
ALL_REVIEWS = ["cleaned/reviews", "embedded/reviews", "quarantine/reviews", "raw/reviews"]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        # The classic `--select` form: each `+` one level, `*` the whole way.
        ("cleaned/reviews", ["cleaned/reviews"]),
        ("raw/reviews+", ["cleaned/reviews", "quarantine/reviews", "raw/reviews"]),
        ("raw/reviews++", ALL_REVIEWS),
        ("raw/reviews*", ALL_REVIEWS),
        ("+embedded/reviews", ["cleaned/reviews", "embedded/reviews"]),
        # Upstream of raw is an external (non-materializable) asset: never launched.
        ("*embedded/reviews", ["cleaned/reviews", "embedded/reviews", "raw/reviews"]),
        ("group:reviews", ALL_REVIEWS),
        ("embedded/reviews, quarantine/reviews", ["embedded/reviews", "quarantine/reviews"]),
        # Dagster's asset selection syntax (the UI's): a bare `+` is the whole way, `N+` N levels.
        ('key:"raw/reviews"', ["raw/reviews"]),
        ('key:"raw/reviews"+', ALL_REVIEWS),
        ('key:"raw/reviews"+1', ["cleaned/reviews", "quarantine/reviews", "raw/reviews"]),
        ('+key:"embedded/reviews"', ["cleaned/reviews", "embedded/reviews", "raw/reviews"]),
        ('1+key:"embedded/reviews"', ["cleaned/reviews", "embedded/reviews"]),
        ('key:"*reviews"', ALL_REVIEWS),
        (
            'group:reviews and not key:"raw/reviews"',
            ["cleaned/reviews", "embedded/reviews", "quarantine/reviews"],
        ),
        ('key:"cleaned/reviews" or kind:lancedb', ["cleaned/reviews", "embedded/reviews"]),
        ("tag:tier=gold", ["embedded/reviews"]),
        (
            'sinks(group:reviews), key:"raw/reviews"',
            ["embedded/reviews", "quarantine/reviews", "raw/reviews"],
        ),
    ],
)
def test_asset_selections_resolve_like_dagster_select(selection: str, expected: list[str]) -> None:
    assert resolve_selection(selection, NODES) == expected


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("nope", "unknown asset 'nope'"),
        ("nope+", "unknown asset 'nope'"),
        ('key:"nope"', "unknown asset 'nope'"),
        ("group:none", "no asset in group 'none'"),
        ("", "empty asset selection"),
        ("raw/reviews,", "empty clause"),
        ("landing/files", "no materializable asset"),
        ('key:"zzz*"', "no materializable asset"),
        ("raw/reviews+ or", "cannot parse asset selection clause"),
        # Run status lives in the instance, not in the asset graph the webserver describes.
        ("status:FAILURE", "cannot resolve 'status:FAILURE'"),
    ],
)
def test_bad_asset_selections_are_named(selection: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        resolve_selection(selection, NODES)


def test_every_graphql_document_is_valid_for_the_installed_dagster() -> None:
    """A field renamed in a Dagster upgrade fails here, not in a user's terminal."""
    import graphql
    from dagster_graphql.schema import create_schema

    schema = create_schema().graphql_schema
    for document in documents.ALL:
        assert graphql.validate(schema, graphql.parse(document)) == [], document


def test_typed_graphql_errors_become_one_line_errors() -> None:
    transport = GraphQLTransport("127.0.0.1:3000")
    assert transport.url == "http://127.0.0.1:3000"
    assert transport.expect({"__typename": "Run", "status": "QUEUED"}, "Run") == {
        "__typename": "Run",
        "status": "QUEUED",
    }
    with pytest.raises(RunNotFound, match=r"^run r1 not found on http://127.0.0.1:3000$"):
        transport.expect({"__typename": "RunNotFoundError", "message": "x"}, "Run", run_id="r1")
    invalid = {"__typename": "RunConfigValidationInvalid", "errors": [{"message": "a\nb"}, {"message": "c"}]}
    with pytest.raises(PlatformGraphQLError, match=r"^RunConfigValidationInvalid: a; c$"):
        transport.expect(invalid, "LaunchRunSuccess")
    with pytest.raises(PlatformGraphQLError, match=r"^PythonError: boom$"):
        transport.expect({"__typename": "PythonError", "message": "boom\n  traceback"}, "Runs")
    with pytest.raises(PlatformGraphQLError, match="not a webserver URL"):
        GraphQLTransport("ftp://host")


def test_wait_polls_until_the_run_ends_and_gives_up_after_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statuses = iter(["QUEUED", "STARTED", "SUCCESS"])
    webserver = DagsterWebserver("http://127.0.0.1:1")
    monkeypatch.setattr(webserver, "status", lambda run_id: next(statuses))
    assert webserver.wait("r1", interval=0.01) == "SUCCESS"

    monkeypatch.setattr(webserver, "status", lambda run_id: "STARTED")
    with pytest.raises(PlatformGraphQLError, match=r"run r1 is still STARTED after 0.05 s"):
        webserver.wait("r1", interval=0.01, timeout=0.05)

    def missing(run_id: str) -> str:
        raise RunNotFound(f"run {run_id} not found")

    monkeypatch.setattr(webserver, "status", missing)
    with pytest.raises(RunNotFound):
        webserver.wait("r1", interval=0.01, timeout=5)


def test_the_cli_module_imports_neither_dagster_nor_dagster_graphql() -> None:
    """`platform --help` must stay fast: the client is imported only when a command talks to a webserver."""
    script = (
        "import sys, platform_assets.ops.runs_cli\n"
        "heavy = sorted(m for m in ('dagster', 'dagster_graphql', 'gql', 'ray', 'torch') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == ""
