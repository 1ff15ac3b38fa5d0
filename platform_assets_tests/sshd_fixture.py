"""A real OpenSSH server on a loopback port with generated keys, for the lake sync tests.

`serve(workdir)` installs openssh-server and rsync with apt-get when they are missing (as root, with a
policy-rc.d that stops the package from starting a system-wide sshd), generates a host key and a client key,
writes an sshd_config that listens on 127.0.0.1 only, starts `sshd -D -e` as a child process and waits until a
real `ssh` login succeeds. The caller decides what a setup failure means (a failure under CI, a skip elsewhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from platform_assets_tests.conftest import free_port

SSHD = "/usr/sbin/sshd"
PACKAGES = ("openssh-server", "openssh-client", "rsync")
POLICY_RC = Path("/usr/sbin/policy-rc.d")
READY_TIMEOUT_S = 20.0


class SshdSetupError(RuntimeError):
    """The test sshd could not be installed or started; the message says which step failed and why."""


@dataclass
class SshServer:
    """A running test sshd: where it listens, who may log in, with which key."""

    host: str
    port: int
    user: str
    key_path: Path
    workdir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    restricted_key_path: Path | None = None
    restricted_root: Path | None = None

    def ssh_base(self) -> list[str]:
        """ssh with the options the tests use (no host key prompts, no known_hosts writes, no passwords)."""
        return [
            "ssh",
            "-p",
            str(self.port),
            "-i",
            str(self.key_path),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]

    def profile_fields(self) -> dict[str, object]:
        """Profile fields that reach this server (for a lake sync YAML)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "ssh_key": str(self.key_path),
            "strict_host_key_checking": "no",
            "known_hosts_file": "/dev/null",
            "connect_timeout_s": 5,
            "io_timeout_s": 60,
        }

    def log(self) -> str:
        """sshd's own log so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _missing_tools() -> list[str]:
    missing = [] if os.access(SSHD, os.X_OK) else [SSHD]
    return missing + [tool for tool in ("rsync", "ssh", "ssh-keygen") if shutil.which(tool) is None]


def ensure_installed() -> None:
    """Install openssh-server, openssh-client and rsync with apt-get when any of their tools is missing."""
    missing = _missing_tools()
    if not missing:
        return
    if os.geteuid() != 0:
        raise SshdSetupError(f"{', '.join(missing)} missing and not root: install {' '.join(PACKAGES)}")
    if shutil.which("apt-get") is None:
        raise SshdSetupError(f"{', '.join(missing)} missing and no apt-get to install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Without this, the package's postinst may start a system sshd on 0.0.0.0:22; the tests want loopback only.
    created_policy = False
    if not POLICY_RC.exists():
        POLICY_RC.write_text(
            "#!/bin/sh\n# written by platform_assets_tests: no services during install\nexit 101\n"
        )
        POLICY_RC.chmod(0o755)
        created_policy = True
    try:
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise SshdSetupError(f"{' '.join(command)} failed ({done.returncode}): {' | '.join(tail)}")
    finally:
        if created_policy:
            POLICY_RC.unlink(missing_ok=True)
    still = _missing_tools()
    if still:
        raise SshdSetupError(f"installed {' '.join(PACKAGES)} but {', '.join(still)} still missing")


def _keygen(path: Path) -> None:
    done = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lake-sync-test", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SshdSetupError(f"ssh-keygen {path} failed: {done.stderr.strip()}")


def _write_config(workdir: Path, host_key: Path, authorized: Path, extra: list[str]) -> Path:
    config = workdir / "sshd_config"
    lines = [
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}",
        f"PidFile {workdir / 'sshd.pid'}",
        "StrictModes no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "PrintMotd no",
        # Tests open many connections in a row; the default 10:30:100 could drop some under load.
        "MaxStartups 100",
        "LogLevel INFO",
        *extra,
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def _config_ok(config: Path, port: int) -> str | None:
    done = subprocess.run([SSHD, "-t", "-f", str(config), "-p", str(port)], capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def start(workdir: Path, user: str = "root") -> SshServer:
    """Generate keys and config under `workdir`, start sshd on a free 127.0.0.1 port, wait for a login."""
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    client_key = workdir / "client_ed25519"
    for key in (host_key, client_key):
        if not key.exists():
            _keygen(key)
    authorized = workdir / "authorized_keys"
    lines = [client_key.with_suffix(".pub").read_text().strip()]
    # A second key that may only run a read-only rsync below one directory, as a careful node would set it up.
    restricted_key = restricted_root = None
    rrsync = shutil.which("rrsync")
    if rrsync:
        restricted_key = workdir / "restricted_ed25519"
        restricted_root = workdir / "rrsync_root"
        restricted_root.mkdir(exist_ok=True)
        if not restricted_key.exists():
            _keygen(restricted_key)
        public = restricted_key.with_suffix(".pub").read_text().strip()
        lines.append(f'command="{rrsync} -ro {restricted_root}",restrict {public}')
    authorized.write_text("\n".join(lines) + "\n")
    client_key.chmod(0o600)
    # sshd refuses to start without its privilege separation directory (normally made by the init system).
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)

    last_error = "not started"
    for _attempt in range(3):
        port = free_port()
        # OpenSSH >= 9.8 penalises sources with failed logins; the tests fail logins on purpose.
        config = _write_config(workdir, host_key, authorized, ["PerSourcePenalties no"])
        if _config_ok(config, port):
            config = _write_config(workdir, host_key, authorized, [])
        problem = _config_ok(config, port)
        if problem:
            raise SshdSetupError(f"sshd rejected its generated config {config}: {problem}")
        log_path = workdir / f"sshd-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = SshServer(
            "127.0.0.1", port, user, client_key, workdir, log_path, process, restricted_key, restricted_root
        )
        last_error = _wait_ready(server)
        if last_error is None:
            return server
        stop(server)
    raise SshdSetupError(f"sshd did not accept a login on 127.0.0.1: {last_error}")


def _wait_ready(server: SshServer) -> str | None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    problem = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return f"sshd exited with {server.process.returncode}: {server.log().strip()[-500:]}"
        done = subprocess.run(
            [*server.ssh_base(), "-o", "ConnectTimeout=3", f"{server.user}@{server.host}", "true"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return None
        problem = done.stderr.strip() or f"ssh exit {done.returncode}"
        time.sleep(0.2)
    return f"{problem}; sshd log: {server.log().strip()[-500:]}"


def stop(server: SshServer) -> None:
    """Stop sshd (and any session it still serves)."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


def serve(workdir: Path) -> Iterator[SshServer]:
    """Install if needed, start, yield the server, stop it afterwards (a generator for a pytest fixture)."""
    ensure_installed()
    server = start(workdir)
    try:
        yield server
    finally:
        stop(server)
