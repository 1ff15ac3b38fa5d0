"""RAY_ADDRESS set → the embedding runs on that cluster, not on a local Ray.

A separate Ray head on loopback (`ray start --head`, in a session and temp dir of its own) stands in for a
Ray cluster whose node the Dagster process runs on (a driver attaches through its node's raylet); the real
`embedded/reviews` asset is materialized in a subprocess with RAY_ADDRESS=<head>:<port> (a pytest process may
already hold a local Ray, and a process attaches to one Ray only). The head is stopped by signalling its own
session: `ray stop` would kill every Ray on the machine. Ray Client addresses (ray://) are not tested because
Ray Data does not run over Ray Client (deploy/README.md, "Ray").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from platform_assets.lib.processes import stop_session
from platform_assets_tests.conftest import PROJECT_ROOT, free_port
from platform_assets_tests.fixtures.dagster_dev import isolated_environment

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
SCRIPT = PROJECT_ROOT / "platform_assets_tests" / "fixtures" / "remote_ray_embed.py"
# Ray binds the machine's external address unless told otherwise; no usage stats, no token-auth warning.
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@dataclass(frozen=True)
class RayHead:
    """A running Ray head: its GCS address and the temp dir that holds its sessions."""

    address: str
    temp_dir: Path
    log: Path


def _head_is_up(address: str, env: dict[str, str]) -> bool:
    # `ray status` only asks the GCS at that address; it starts nothing.
    completed = subprocess.run(
        [str(BIN / "ray"), "status", "--address", address],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return completed.returncode == 0


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    # A short temp dir: Ray puts unix sockets under it, and socket paths are limited to 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="rayhead-", dir="/tmp"))
    log = tmp_path_factory.mktemp("ray-head") / "ray-head.log"
    port = free_port()
    env = {**os.environ, **RAY_ENV}
    env.pop("RAY_ADDRESS", None)
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",  # stays in the foreground as the session leader, so the whole head is one session
        "--port",
        str(port),
        "--node-ip-address",
        "127.0.0.1",
        "--num-cpus",
        "1",
        "--include-dashboard",
        "false",
        "--temp-dir",
        str(temp_dir),
        "--disable-usage-stats",
        # Fixed default ports would collide with any other Ray on the machine: pick free ones.
        "--ray-client-server-port",
        str(free_port()),
        "--dashboard-agent-listen-port",
        str(free_port()),
        "--min-worker-port",
        "0",
        "--max-worker-port",
        "0",
    ]
    address = f"127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd=temp_dir
        )
        try:
            deadline = time.monotonic() + 120
            while not _head_is_up(address, env):
                assert process.poll() is None, (
                    f"ray start exited with {process.returncode}:\n{log.read_text()}"
                )
                assert time.monotonic() < deadline, f"Ray head not up after 120 s:\n{log.read_text()}"
                time.sleep(1)
            yield RayHead(address=address, temp_dir=temp_dir, log=log)
        finally:
            # A throwaway head: a short grace, then SIGKILL (some Ray processes sit out SIGTERM).
            survivors = stop_session(process, grace_seconds=3)
            shutil.rmtree(temp_dir, ignore_errors=True)
            assert not survivors, f"Ray head processes left running: {survivors}"


def test_the_embedding_asset_runs_on_the_cluster_named_by_ray_address(
    ray_head: RayHead, tmp_path: Path
) -> None:
    data_dir = tmp_path / "platform"
    env = isolated_environment(data_dir, data_dir / "dagster") | RAY_ENV | {"RAY_ADDRESS": ray_head.address}
    completed = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["success"], completed.stderr[-4000:]

    # Attached to that head, through the platform's setting, and to no other Ray.
    assert report["ray_address_setting"] == ray_head.address
    assert report["gcs_address"] == ray_head.address
    assert report["node_sockets"] and all(
        s.startswith(str(ray_head.temp_dir)) for s in report["node_sockets"]
    )

    # The real asset wrote its vectors to LanceDB: 384-d, unit length, semantically sensible.
    assert report["rows"] == 4 and report["embedded_rows"] == 4
    assert report["dims"] == [384]
    assert all(abs(norm - 1.0) < 1e-4 for norm in report["norms"])
    assert report["similarity"]["paraphrase"] > report["similarity"]["unrelated"]
    assert (data_dir / "lancedb" / "reviews.lance").is_dir()
