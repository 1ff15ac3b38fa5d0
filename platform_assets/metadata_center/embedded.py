"""The metadata center as a child process: started, health-checked and stopped by one piece of code.

`make run` (when nothing answers at METADATA_CENTER_URL), `make dev` (`platform dev`) and the tests all start
the service through `EmbeddedMetadataCenter`:

    with EmbeddedMetadataCenter(data_dir) as service:   # a free loopback port unless `port` is given
        client = service.client()

The child runs `python -m platform_assets.metadata_center serve` in a session of its own and is stopped by
signalling exactly that session. Its output goes to `log_path`; a start that fails raises
`MetadataCenterStartError` with the end of that log.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from platform_assets.lib.config import child_env, env_overrides
from platform_assets.lib.processes import free_port, stop_session
from platform_assets.metadata_center.client import MetadataCenterClient, MetadataCenterUnavailable

READY_TIMEOUT_S = 60.0


class MetadataCenterStartError(RuntimeError):
    """The service did not become healthy; the message carries the end of its log."""


@dataclass
class EmbeddedMetadataCenter:
    """One metadata center process with its data (SQLite database, generated key and secret) in `data_dir`."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    db_url: str | None = None
    env: Mapping[str, str] | None = None
    api_key: str | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if not self.port:
            self.port = free_port(self.host)
        if self.log_path is None:
            self.log_path = self.data_dir / "metadata_center.log"

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://{self.host}:{self.port}"

    def client(self, api_key: str | None = None) -> MetadataCenterClient:
        """A client with the service's key (or `api_key`; pass "" for none)."""
        return MetadataCenterClient(self.url, self.api_key if api_key is None else api_key)

    def log(self) -> str:
        """The service's output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        """Start the process and wait until /healthz answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "platform_assets.metadata_center", "serve"]
        command += ["--host", self.host, "--port", str(self.port)]
        if self.db_url:
            command += ["--db", self.db_url]
        env = dict(self.env) if self.env is not None else child_env()
        env.setdefault("PLATFORM_DATA_DIR", str(self.data_dir))
        env.setdefault("PYTHONUNBUFFERED", "1")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        probe = MetadataCenterClient(self.url, self.api_key, timeout_s=2.0)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise MetadataCenterStartError(
                    f"metadata center exited with {self.process.returncode}; {self.log_path}:\n{self.log()[-3000:]}"
                )
            try:
                probe.health()
                return
            except MetadataCenterUnavailable:
                if time.monotonic() > deadline:
                    self.stop()
                    raise MetadataCenterStartError(
                        f"metadata center not healthy after {READY_TIMEOUT_S:.0f}s; {self.log_path}:\n"
                        f"{self.log()[-3000:]}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the service's session (a graceful shutdown), SIGKILL what is left."""
        if self.process is not None and self.process.poll() is None:
            stop_session(self.process, grace_seconds=15.0)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port, database and data directory."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedMetadataCenter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def metadata_center_for_run(data_dir: Path, echo: Callable[[str], None] = print) -> Iterator[str]:
    """The configured metadata center when it answers; otherwise an embedded one for the duration.

    Yields the URL to use; while an embedded service runs, METADATA_CENTER_URL points at it (the sensors,
    resources and SDK of this process read that variable), and is restored afterwards.
    """
    client = MetadataCenterClient()
    try:
        client.health()
        yield client.url
        return
    except MetadataCenterUnavailable:
        pass
    with EmbeddedMetadataCenter(data_dir) as service, env_overrides({"METADATA_CENTER_URL": service.url}):
        echo(f"  started the embedded metadata center at {service.url} (make dev keeps one running)")
        yield service.url
