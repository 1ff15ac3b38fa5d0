"""rsync over SSH: list a remote directory, transfer a list of files resumably, verify checksums, test a connection.

Everything runs the real `rsync` and `ssh` binaries. Partial transfers are kept in a dotted directory
(`.rsync-partial/` next to the file) so that the landing reader never sees a half-written file and the next run
resumes from it (rsync uses the partial file as the basis of a delta transfer). A failure becomes an
`RsyncError` whose `reason` is one line naming the profile, the endpoint and what went wrong.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from platform_assets.lake_sync.config import ProfileConfig

PARTIAL_DIR = ".rsync-partial"
# In-progress files on the remote side (dotted temp files, *.tmp …) are never taken; landing.py ignores them too.
ALWAYS_EXCLUDE = (".*", "*.tmp", "*.part", "*.partial")
_OUT_PREFIX = "LSYNC\t"
_LIST_RE = re.compile(
    r"^(?P<mode>[-dlcbps][-rwxsStTl]{9}\S*)\s+(?P<size>[\d,.]+)\s+(?P<date>\d{4}/\d{2}/\d{2}) (?P<time>\d{2}:\d{2}:\d{2}) (?P<name>.*)$"
)
_KILL_GRACE_S = 5.0


class RsyncError(RuntimeError):
    """rsync or ssh failed. `kind` is a stable code, `reason` one line for humans, `exit_code` rsync's status.

    Kinds: unreachable, auth_failed, host_key, remote_path_missing, remote_rsync_missing, timeout,
    interrupted, connection_lost, local_tools_missing, ssh_key_missing, rsync_failed.
    """

    def __init__(self, kind: str, reason: str, exit_code: int | None = None, stderr: str = "") -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.exit_code = exit_code
        self.stderr = stderr


@dataclass(frozen=True)
class RemoteFile:
    """One regular file in the remote listing, relative to the profile's remote_path."""

    path: str
    size: int
    mtime: datetime


@dataclass
class TransferStats:
    """rsync's --stats figures for one run (byte counts are plain integers)."""

    files_considered: int = 0
    files_transferred: int = 0
    total_size: int = 0
    transferred_size: int = 0
    literal_bytes: int = 0
    matched_bytes: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    speed_bytes_per_s: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        """The figures as a plain dict (for checkpoints and metadata)."""
        return asdict(self)


@dataclass
class TransferResult:
    """What one transfer moved: the stats, the files rsync reported, and how long it took."""

    stats: TransferStats
    transferred: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    exit_code: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def throughput_bytes_per_s(self) -> float:
        """File bytes landed per second of wall time (what a user calls the transfer speed)."""
        return self.stats.transferred_size / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class ConnectionResult:
    """A successful connection test: how long it took and how many entries the remote directory has."""

    endpoint: str
    latency_s: float
    entries: int


# -- command lines ------------------------------------------------------------------------------------------


def ssh_command(profile: ProfileConfig) -> list[str]:
    """The ssh command line rsync uses as its transport (-e), non-interactive and with bounded waits."""
    command = [
        "ssh",
        "-p",
        str(profile.port),
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={profile.connect_timeout_s}",
        "-o",
        f"StrictHostKeyChecking={profile.strict_host_key_checking}",
        # Keep stderr to real problems: its last line becomes the reason a user reads.
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ServerAliveInterval=30",
    ]
    if profile.ssh_key:
        command += ["-i", profile.ssh_key, "-o", "IdentitiesOnly=yes"]
    if profile.known_hosts_file:
        command += ["-o", f"UserKnownHostsFile={profile.known_hosts_file}"]
    for key, value in profile.ssh_options.items():
        command += ["-o", f"{key}={value}"]
    return command


def remote_source(profile: ProfileConfig) -> str:
    """`user@host:path/` (IPv6 literals in brackets)."""
    host = f"[{profile.host}]" if ":" in profile.host else profile.host
    user = f"{profile.user}@" if profile.user else ""
    return f"{user}{host}:{profile.remote_path}"


def _filter_args(profile: ProfileConfig) -> list[str]:
    # Excludes first: rsync applies the first matching rule, so they win over includes.
    args = [f"--exclude={pattern}" for pattern in (*ALWAYS_EXCLUDE, *profile.exclude)]
    if profile.include:
        args += [f"--include={pattern}" for pattern in profile.include]
        # Descend into every directory, take nothing else, and do not create directories left empty.
        args += ["--include=*/", "--exclude=*", "--prune-empty-dirs"]
    return args


def _base_args(profile: ProfileConfig) -> list[str]:
    # --no-h: plain numbers; -8: names unescaped. No -s (--protect-args): rsync >= 3.2.4 protects the remote
    # path by default, file names travel inside the protocol (--files-from), and rrsync-restricted keys reject -s.
    args = [
        "rsync",
        "--no-h",
        "-8",
        f"--timeout={profile.io_timeout_s}",
        "-e",
        shlex.join(ssh_command(profile)),
    ]
    if profile.rsync_path:
        args.append(f"--rsync-path={profile.rsync_path}")
    return args


def preflight(profile: ProfileConfig) -> None:
    """Fail early, with a clear reason, when local tools or the key file are missing."""
    for tool in ("rsync", "ssh"):
        if shutil.which(tool) is None:
            raise RsyncError(
                "local_tools_missing",
                f"profile {profile.name!r}: {tool} is not installed on this machine (apt-get install "
                f"{'rsync' if tool == 'rsync' else 'openssh-client'})",
            )
    if profile.ssh_key and not os.access(profile.ssh_key, os.R_OK):
        state = "not readable" if os.path.exists(profile.ssh_key) else "not found"
        raise RsyncError(
            "ssh_key_missing", f"profile {profile.name!r}: field 'ssh_key': {profile.ssh_key} is {state}"
        )


# -- running ------------------------------------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    # surrogateescape round-trips file names that are not valid UTF-8 back to the same bytes.
    return raw.decode("utf-8", "surrogateescape").rstrip("\r\n")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop rsync: SIGTERM to rsync itself, which stops its receiver and ssh and saves the partial file; then
    SIGKILL to the whole group if it does not exit in time (the next run recovers the temp file)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_KILL_GRACE_S)


def _run(
    command: list[str],
    on_start: Callable[[int], None] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> tuple[int, list[str], str]:
    """Run a command, streaming stdout lines; return (exit code, stdout lines, stderr).

    rsync runs in its own session, so a Ctrl-C meant for this process does not hit rsync and ssh half-way;
    instead any interrupt of this process (Ctrl-C, a terminated Dagster run) stops rsync cleanly from the
    `finally` below (`_stop`), and rsync is never left running orphaned.
    """
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    lines: list[str] = []
    try:
        if on_start is not None:
            on_start(process.pid)
        for raw in process.stdout:  # type: ignore[union-attr]
            line = _decode(raw)
            lines.append(line)
            if on_line is not None:
                on_line(line)
        exit_code = process.wait()
    finally:
        _stop(process)
        reader.join(timeout=_KILL_GRACE_S)
    return exit_code, lines, b"".join(stderr_chunks).decode("utf-8", "replace")


_SSH_AUTH_METHODS = ("publickey", "password", "keyboard-interactive", "gssapi", "hostbased")
_UNREACHABLE = (
    "connection refused",
    "connection timed out",
    "operation timed out",
    "no route to host",
    "network is unreachable",
    "could not resolve hostname",
    "name or service not known",
    "connection closed by",
    "connection reset by",
    "kex_exchange_identification",
)


def classify_failure(profile: ProfileConfig, exit_code: int, stderr: str, action: str) -> RsyncError:
    """Turn rsync's exit status and stderr into an RsyncError with a one-line reason."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lowered = [line.lower() for line in lines]
    endpoint = f"{profile.destination} port {profile.port}"
    prefix = f"profile {profile.name!r}: {action}"

    def first(*needles: str) -> str | None:
        for line, low in zip(lines, lowered, strict=True):
            if any(n in low for n in needles):
                return line
        return None

    # A stop signal to rsync's group also kills ssh, so rsync may exit 255; its own message says what happened.
    signalled = first("received sigint, sigterm, or sighup", "received sigusr1")
    if exit_code < 0 or exit_code == 20 or signalled:
        how = f"killed by signal {-exit_code}" if exit_code < 0 else "stopped by a signal"
        return RsyncError("interrupted", f"{prefix}: rsync {how}; the next sync resumes", exit_code, stderr)
    if line := first("host key verification failed", "remote host identification has changed"):
        return RsyncError(
            "host_key",
            f"{prefix}: host key of {endpoint} rejected ({line}); check known_hosts_file",
            exit_code,
            stderr,
        )
    # ssh's "Permission denied (publickey,…)", not rsync's "Permission denied (13)" on a file.
    if line := first(
        *(f"permission denied ({m}" for m in _SSH_AUTH_METHODS), "too many authentication failures"
    ):
        return RsyncError(
            "auth_failed", f"{prefix}: {endpoint} refused the login ({line})", exit_code, stderr
        )
    if line := first(*_UNREACHABLE):
        return RsyncError("unreachable", f"{prefix}: cannot reach {endpoint} ({line})", exit_code, stderr)
    if line := first("change_dir", "link_stat") if "no such file" in stderr.lower() else None:
        return RsyncError(
            "remote_path_missing",
            f"{prefix}: remote_path {profile.remote_path!r} does not exist on {profile.host} ({line})",
            exit_code,
            stderr,
        )
    if exit_code == 127 or first("rsync: command not found", "rsync: not found"):
        return RsyncError(
            "remote_rsync_missing",
            f"{prefix}: rsync is not installed on {profile.host} (or set rsync_path)",
            exit_code,
            stderr,
        )
    if exit_code in (30, 35) or first("timeout in data send/receive", "io timeout"):
        return RsyncError(
            "timeout",
            f"{prefix}: no data moved for {profile.io_timeout_s} s (io_timeout_s); the next sync resumes",
            exit_code,
            stderr,
        )
    if action == "transfer" and exit_code in (10, 12, 13, 14, 255):
        # Connected, then lost (network drop, remote sshd restarted, ssh killed): the partial file is kept.
        detail = lines[0] if lines else f"exit {exit_code}"
        return RsyncError(
            "connection_lost",
            f"{prefix}: connection to {endpoint} lost mid-transfer ({detail}); the next sync resumes",
            exit_code,
            stderr,
        )
    if exit_code == 255:
        detail = lines[-1] if lines else "ssh failed"
        return RsyncError("unreachable", f"{prefix}: ssh to {endpoint} failed ({detail})", exit_code, stderr)
    # rsync's own follow-up lines ("connection unexpectedly closed", "rsync error: … (code N)") hide the cause,
    # which is usually the remote side's message (e.g. rrsync refusing an option).
    generic = ("rsync: connection unexpectedly closed", "rsync error:", "rsync: [receiver] write error")
    causes = [line for line in lines if not line.lower().startswith(generic)]
    detail = causes[0] if causes else (lines[0] if lines else "no message")
    return RsyncError("rsync_failed", f"{prefix}: rsync exited {exit_code} ({detail})", exit_code, stderr)


def _number(text: str) -> int:
    return int(float(text.replace(",", "")))


_STATS_FIELDS = {
    "Number of files": "files_considered",
    "Number of regular files transferred": "files_transferred",
    "Total file size": "total_size",
    "Total transferred file size": "transferred_size",
    "Literal data": "literal_bytes",
    "Matched data": "matched_bytes",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}
_SPEED_RE = re.compile(r"^sent [\d,.]+ bytes\s+received [\d,.]+ bytes\s+([\d,.]+) bytes/sec")


def parse_stats(lines: Iterable[str]) -> TransferStats:
    """Parse the block `rsync --stats` prints (with or without thousands separators)."""
    stats = TransferStats()
    for line in lines:
        label, sep, rest = line.partition(":")
        if sep and label.strip() in _STATS_FIELDS:
            match = re.match(r"\s*([\d,.]+)", rest)
            if match:
                setattr(stats, _STATS_FIELDS[label.strip()], _number(match.group(1)))
            continue
        speed = _SPEED_RE.match(line.strip())
        if speed:
            stats.speed_bytes_per_s = float(speed.group(1).replace(",", ""))
    return stats


def parse_listing(lines: Iterable[str]) -> list[RemoteFile]:
    """Regular files from `rsync --list-only -r` output (directories and symlinks are left out)."""
    files: list[RemoteFile] = []
    for line in lines:
        match = _LIST_RE.match(line)
        if not match or not match.group("mode").startswith("-"):
            continue
        mtime = datetime.strptime(f"{match.group('date')} {match.group('time')}", "%Y/%m/%d %H:%M:%S")
        files.append(RemoteFile(path=match.group("name"), size=_number(match.group("size")), mtime=mtime))
    return files


# -- operations ---------------------------------------------------------------------------------------------


def list_remote(profile: ProfileConfig) -> list[RemoteFile]:
    """Every file under the profile's remote_path that its include/exclude rules take, with sizes."""
    preflight(profile)
    command = [*_base_args(profile), "--list-only", "-r", *_filter_args(profile), remote_source(profile)]
    exit_code, lines, stderr = _run(command)
    if exit_code not in (0, 24):
        raise classify_failure(profile, exit_code, stderr, "listing the remote directory")
    return parse_listing(lines)


def test_connection(profile: ProfileConfig) -> ConnectionResult:
    """Log in and list the top of remote_path: proves reachability, the key, rsync on the remote, the path."""
    preflight(profile)
    started = time.perf_counter()
    exit_code, lines, stderr = _run([*_base_args(profile), "--list-only", remote_source(profile)])
    latency = time.perf_counter() - started
    if exit_code != 0:
        raise classify_failure(profile, exit_code, stderr, "connection test")
    entries = sum(1 for line in lines if _LIST_RE.match(line) and not line.endswith(" ."))
    return ConnectionResult(endpoint=profile.display, latency_s=latency, entries=entries)


def _write_file_list(paths: Iterable[str], directory: Path) -> Path:
    # NUL-separated (--from0) so any file name survives; bytes exactly as rsync listed them.
    with tempfile.NamedTemporaryFile(
        "wb", dir=directory, prefix=".lake-sync-files-", suffix=".lst", delete=False
    ) as handle:
        for path in paths:
            handle.write(path.encode("utf-8", "surrogateescape") + b"\0")
    return Path(handle.name)


def transfer(
    profile: ProfileConfig,
    files: list[str],
    destination: Path,
    scratch_dir: Path,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[str, int], None] | None = None,
) -> TransferResult:
    """Copy `files` (relative to remote_path) into `destination`, resuming partial files; parse --stats.

    `on_start(pid)` is called once rsync runs; `on_file(path, size)` after each file has landed.
    """
    preflight(profile)
    destination.mkdir(parents=True, exist_ok=True)
    file_list = _write_file_list(files, scratch_dir)
    command = [
        *_base_args(profile),
        "-rt",
        "--from0",
        f"--files-from={file_list}",
        # A file deleted on the remote after the listing is not an error.
        "--ignore-missing-args",
        f"--partial-dir={PARTIAL_DIR}",
        "--stats",
        f"--out-format={_OUT_PREFIX}%i\t%l\t%b\t%n",
    ]
    if profile.bwlimit:
        command.append(f"--bwlimit={profile.bwlimit}")
    command += [remote_source(profile), f"{destination}/"]
    transferred: list[str] = []

    def handle(line: str) -> None:
        if not line.startswith(_OUT_PREFIX):
            return
        item, size, _, name = line[len(_OUT_PREFIX) :].split("\t", 3)
        # '>f' = a file received; directories and attribute-only changes do not count.
        if item.startswith(">f"):
            transferred.append(name)
            if on_file is not None:
                on_file(name, int(size) if size.isdigit() else 0)

    started = time.perf_counter()
    try:
        exit_code, lines, stderr = _run(command, on_start=on_start, on_line=handle)
    finally:
        file_list.unlink(missing_ok=True)
    duration = time.perf_counter() - started
    if exit_code not in (0, 24):
        raise classify_failure(profile, exit_code, stderr, "transfer")
    warnings = [line for line in stderr.splitlines() if line.strip()] if exit_code == 24 else []
    stats = parse_stats(line for line in lines if not line.startswith(_OUT_PREFIX))
    return TransferResult(
        stats=stats, transferred=transferred, duration_s=duration, exit_code=exit_code, warnings=warnings
    )


def verify_checksums(
    profile: ProfileConfig, files: list[str], destination: Path, scratch_dir: Path
) -> list[str]:
    """Files whose landed content differs from the remote source (full-file checksums on both sides).

    A dry run of rsync with --checksum: rsync reads every listed file on both ends and reports the ones it
    would transfer. A landed file that is missing counts as a mismatch; a remote file that vanished does not.
    """
    if not files:
        return []
    preflight(profile)
    file_list = _write_file_list(files, scratch_dir)
    command = [
        *_base_args(profile),
        "-rt",
        "--dry-run",
        "--checksum",
        "--from0",
        f"--files-from={file_list}",
        "--ignore-missing-args",
        f"--out-format={_OUT_PREFIX}%i\t%n",
        remote_source(profile),
        f"{destination}/",
    ]
    try:
        exit_code, lines, stderr = _run(command)
    finally:
        file_list.unlink(missing_ok=True)
    if exit_code not in (0, 24):
        raise classify_failure(profile, exit_code, stderr, "checksum verification")
    mismatched = []
    for line in lines:
        if line.startswith(_OUT_PREFIX):
            item, name = line[len(_OUT_PREFIX) :].split("\t", 1)
            if item[:1] in "<>" and item[1:2] == "f":
                mismatched.append(name)
    return mismatched
