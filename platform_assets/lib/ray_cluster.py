"""A real two-node Ray cluster on loopback, for tests and benchmarks.

`local_ray_cluster()` starts a head (`ray start --head --block`, no CPUs, so every task with a CPU goes
elsewhere) on 127.0.0.2 and one worker node on 127.0.0.3, each in a session of its own. Why these addresses
(see /work/shared/STACK.md, "Multi-node Ray on loopback"): a second node needs
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`, and with it Ray rewrites 127.0.0.1 and `localhost` to the machine's
external address; other addresses of 127.0.0.0/8 are kept, so every connection between the nodes, jobs and
the caller goes to a loopback address. The job API (the dashboard) listens on 127.0.0.1.

Not every *listening* socket is on loopback, though: Ray binds its gRPC servers (GCS, raylets' node and
object managers, dashboard agents, core workers) and its Prometheus exporters to 127.0.0.1 only when a
node's IP is exactly 127.0.0.1 (or localhost), and to the wildcard address otherwise; no flag names another
bind address (Ray 2.60). With auth disabled, those ports answer whoever can reach this machine: use this
cluster on machines whose network is closed, as CI and dev sandboxes are.

Every port with a fixed default is given a free one, so that the cluster coexists with any other Ray on the
machine (including a local one held by the calling process) and with other services: GCS 6379 (a Redis may
hold it), dashboard 8265, Ray Client 10001, dashboard agent 52365, worker processes 10002-19999 (0/0: the
kernel picks), and the head's autoscaler and dashboard metrics 44217 and 44227, which only environment
variables move. The other ports a `ray start` flag names (agent gRPC, runtime-env agent, metrics export)
get free ones too, so that every port of the cluster is known before it starts; the raylets' node and
object manager ports and the metrics agent's are picked by Ray.

On exit the worker, then the head, are stopped by signalling their own sessions
(`platform_assets.lib.processes.stop_session`): never `ray stop`, which stops every Ray on the machine.

    with local_ray_cluster(worker_cpus=2, worker_resources={"w": 1}) as cluster:
        JobSubmissionClient(cluster.dashboard_url).submit_job(entrypoint="python job.py")
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from platform_assets.lib.config import child_env
from platform_assets.lib.processes import stop_session

HEAD_IP = "127.0.0.2"
WORKER_IP = "127.0.0.3"
# The dashboard (job API) stays on 127.0.0.1: Ray keeps `--dashboard-host` as given.
DASHBOARD_HOST = "127.0.0.1"
# A throwaway cluster: a short graceful shutdown, then SIGKILL (some Ray processes sit out SIGTERM).
STOP_GRACE_SECONDS = 5.0
HEAD_LOG = "ray-head.log"
WORKER_LOG = "ray-worker.log"


@dataclass(frozen=True)
class LocalRayCluster:
    """A running two-node Ray cluster on loopback.

    `gcs_address` is what `ray.init(address=…)` / `RAY_ADDRESS` take (a process on this machine attaches
    through one of the nodes' raylets); `dashboard_url` is the job API (`JobSubmissionClient`,
    `ray.util.state.list_*(address=…)`, dagster-ray's `PipesRayJobClient`).

    Trap: `JobSubmissionClient(address)` and `ray.util.state.list_*(address=…)` use RAY_ADDRESS (or
    RAY_API_SERVER_ADDRESS) from the calling process's environment instead of `address` when it is set:
    unset it in a caller that has it.
    """

    gcs_address: str
    dashboard_url: str
    head_ip: str
    worker_ip: str
    temp_dir: Path
    log_dir: Path

    def log_tail(self, chars: int = 4000) -> str:
        """The last `chars` characters of each node's `ray start` output, labelled, for error messages."""
        return _log_tails(self.log_dir, chars)


def _log_tails(log_dir: Path, chars: int) -> str:
    parts = []
    for name in (HEAD_LOG, WORKER_LOG):
        path = log_dir / name
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = "(no output)"
        parts.append(f"--- {path} (last {chars} chars) ---\n{text[-chars:]}")
    return "\n".join(parts)


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that are free on every address right now.

    All sockets stay bound until all are picked, so no port is handed out twice (`processes.free_port`
    releases each at once). Binding the wildcard address (no `listen`, so nothing is reachable) makes the
    kernel pick a port that no specific address uses either, whichever loopback address a Ray process binds.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("0.0.0.0", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _node_environment(env: Mapping[str, str] | None, metric_ports: tuple[int, int]) -> dict[str, str]:
    """The caller's environment for both `ray start`s, without RAY_ADDRESS (it would redirect `ray start`)."""
    environment = {key: value for key, value in child_env().items() if key != "RAY_ADDRESS"}
    environment.update(env or {})
    autoscaler_metrics_port, dashboard_metrics_port = metric_ports
    environment.update(
        {
            # Without it `ray start --address` refuses a second node on this machine.
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
            # No token auth on a throwaway loopback cluster (and no warning about it).
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # The head's autoscaler monitor and dashboard serve Prometheus metrics on fixed ports (44217,
            # 44227) that no `ray start` flag changes, only these variables: another Ray already holds them.
            "AUTOSCALER_METRIC_PORT": str(autoscaler_metrics_port),
            "DASHBOARD_METRIC_PORT": str(dashboard_metrics_port),
        }
    )
    # A job's entrypoint `python` (and `ray`) are whatever the nodes' PATH finds first: make it this venv's.
    bin_dir = str(Path(sys.executable).parent)
    path = [entry for entry in environment.get("PATH", "").split(os.pathsep) if entry and entry != bin_dir]
    environment["PATH"] = os.pathsep.join([bin_dir, *path])
    return environment


def _head_command(
    ray: str, temp_dir: Path, gcs_port: int, dashboard_port: int, ports: list[int]
) -> list[str]:
    client_port, agent_http_port, agent_grpc_port, runtime_env_port, metrics_port = ports
    return [
        ray,
        "start",
        "--head",
        "--block",  # stays in the foreground as the session leader, so the whole node is one session
        f"--node-ip-address={HEAD_IP}",
        f"--port={gcs_port}",
        "--include-dashboard=true",  # the job API: fail loudly if the dashboard cannot start
        f"--dashboard-host={DASHBOARD_HOST}",
        f"--dashboard-port={dashboard_port}",
        "--num-cpus=0",  # the head only drives: tasks and actors that need a CPU run on the worker
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        f"--ray-client-server-port={client_port}",
        f"--dashboard-agent-listen-port={agent_http_port}",
        f"--dashboard-agent-grpc-port={agent_grpc_port}",
        f"--runtime-env-agent-port={runtime_env_port}",
        f"--metrics-export-port={metrics_port}",
        # 0/0: each worker process binds a port the kernel picks (the default range is fixed, 10002-19999).
        "--min-worker-port=0",
        "--max-worker-port=0",
    ]


def _worker_command(
    ray: str,
    temp_dir: Path,
    gcs_address: str,
    cpus: int,
    resources: Mapping[str, float],
    ports: list[int],
) -> list[str]:
    agent_http_port, agent_grpc_port, runtime_env_port, metrics_port = ports
    return [
        ray,
        "start",
        "--block",
        f"--address={gcs_address}",
        f"--node-ip-address={WORKER_IP}",
        f"--num-cpus={cpus}",
        f"--resources={json.dumps(dict(resources))}",
        # The worker's own directory: the two raylets and object stores must not share sockets or sessions.
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        # A worker node runs its own dashboard agent, runtime-env agent and metrics agent: 52365 is fixed by
        # default and the others would be allocated per node, so hand each of them a free port too.
        f"--dashboard-agent-listen-port={agent_http_port}",
        f"--dashboard-agent-grpc-port={agent_grpc_port}",
        f"--runtime-env-agent-port={runtime_env_port}",
        f"--metrics-export-port={metrics_port}",
        "--min-worker-port=0",
        "--max-worker-port=0",
    ]


def _start(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    with log.open("w") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own session: stop_session signals this node and nothing else
            cwd=cwd,
        )


def _get_json(url: str) -> dict | None:
    """GET `url` and decode its JSON body; None while the server does not answer (yet) or answers an error.

    Plain HTTP on purpose, not `JobSubmissionClient` / `ray.util.state`: those let RAY_ADDRESS (and
    RAY_API_SERVER_ADDRESS) in the caller's environment override the address they are given, and the caller
    may have either set, or hold a local Ray of its own.
    """
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):  # refused, 5xx, timeout, half-started server
        return None


def _alive_node_ips(dashboard_url: str) -> set[str]:
    """Addresses of the ALIVE nodes, from the dashboard's state API (what `ray.util.state.list_nodes` asks)."""
    body = _get_json(f"{dashboard_url}/api/v0/nodes?limit=100&detail=false")
    try:
        nodes = body["data"]["result"]["result"]  # type: ignore[index]
        return {node["node_ip"] for node in nodes if node.get("state") == "ALIVE"}
    except (KeyError, TypeError):  # not up yet, or a body of another shape: ask again
        return set()


def _wait_until_ready(
    processes: dict[str, subprocess.Popen], dashboard_url: str, log_dir: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    api_up = False
    alive: set[str] = set()
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"Ray {name} (`ray start --block`) exited with {process.returncode} before the cluster "
                    f"was up.\n{_log_tails(log_dir, 4000)}"
                )
        # What `JobSubmissionClient.list_jobs()` asks: the job module answers, not only the dashboard.
        api_up = api_up or _get_json(f"{dashboard_url}/api/jobs/") is not None
        if api_up:
            alive = _alive_node_ips(dashboard_url)
            if {HEAD_IP, WORKER_IP} <= alive:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Ray cluster not ready after {timeout:.0f} s (job API at {dashboard_url} answers: {api_up}; "
                f"alive nodes: {sorted(alive)}; expected {HEAD_IP} and {WORKER_IP}).\n"
                f"{_log_tails(log_dir, 4000)}"
            )
        time.sleep(0.5)


@contextmanager
def local_ray_cluster(
    *,
    worker_cpus: int = 2,
    worker_resources: dict[str, float] | None = None,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    ready_timeout: float = 180,
) -> Iterator[LocalRayCluster]:
    """Start a head (127.0.0.2, 0 CPUs, job API on 127.0.0.1) and a worker node (127.0.0.3); stop both on exit.

    Args:
        worker_cpus: `--num-cpus` of the worker node (the head has none).
        worker_resources: custom resources of the worker node (`--resources`), e.g. `{"w": 1}` to pin
            tasks or actors to it.
        env: extra environment for both nodes, and hence for the jobs, tasks and actors they run; laid over
            the caller's `os.environ` (less RAY_ADDRESS). The loopback/auth/usage-stats settings and the PATH
            that puts this interpreter's bin directory first are applied on top.
        log_dir: where the two `ray start` outputs go (`ray-head.log`, `ray-worker.log`); kept after exit.
            Without it they go to a temporary directory removed on exit (errors quote their tails).
        ready_timeout: seconds to wait until the job API answers and both nodes are ALIVE.

    Yields the running cluster. Raises RuntimeError if a node exits during start-up or if any process of the
    cluster survives the shutdown, TimeoutError if it is not ready within `ready_timeout`.
    """
    # Short, under /tmp: Ray puts unix sockets under its temp dir, and socket paths are limited to 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="raycl-", dir="/tmp"))
    own_log_dir = log_dir is None
    logs = Path(tempfile.mkdtemp(prefix="raycl-logs-")) if log_dir is None else Path(log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    (temp_dir / "head").mkdir()
    (temp_dir / "worker").mkdir()

    # All at once, before anything starts: no two of them alike, none taken by the head before the worker.
    ports = _free_ports(13)
    gcs_port, dashboard_port, autoscaler_metrics_port, dashboard_metrics_port = ports[:4]
    head_ports, worker_ports = ports[4:9], ports[9:]
    environment = _node_environment(env, (autoscaler_metrics_port, dashboard_metrics_port))
    ray = str(Path(sys.executable).parent / "ray")
    gcs_address = f"{HEAD_IP}:{gcs_port}"
    dashboard_url = f"http://{DASHBOARD_HOST}:{dashboard_port}"
    cluster = LocalRayCluster(
        gcs_address=gcs_address,
        dashboard_url=dashboard_url,
        head_ip=HEAD_IP,
        worker_ip=WORKER_IP,
        temp_dir=temp_dir,
        log_dir=logs,
    )

    started: list[tuple[str, subprocess.Popen]] = []
    error: BaseException | None = None
    try:
        head = _start(
            _head_command(ray, temp_dir / "head", gcs_port, dashboard_port, head_ports),
            logs / HEAD_LOG,
            environment,
            temp_dir,
        )
        started.append(("head", head))
        # Started right away: `ray start --address` itself waits (and retries) until the GCS answers.
        worker = _start(
            _worker_command(
                ray, temp_dir / "worker", gcs_address, worker_cpus, worker_resources or {}, worker_ports
            ),
            logs / WORKER_LOG,
            environment,
            temp_dir,
        )
        started.append(("worker", worker))
        _wait_until_ready(dict(started), dashboard_url, logs, ready_timeout)
        yield cluster
    except BaseException as raised:
        error = raised
        raise
    finally:
        survivors: dict[str, list[int]] = {}
        # Worker first: a head that goes first leaves the worker's raylet retrying a GCS that is gone.
        for name, process in reversed(started):
            left = stop_session(process, grace_seconds=STOP_GRACE_SECONDS)
            if left:
                survivors[name] = left
        shutil.rmtree(temp_dir, ignore_errors=True)
        if survivors:
            message = f"Ray cluster processes left running (node: pids): {survivors}"
            if error is None:
                raise RuntimeError(message)
            # Do not mask the error already on its way out; attach this one to it.
            error.add_note(message)
        if own_log_dir:
            shutil.rmtree(logs, ignore_errors=True)
