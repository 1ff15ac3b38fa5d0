"""Per-profile sync state in JSON, written atomically, plus a per-profile lock.

The checkpoint is what lets an interrupted sync resume safely: it records that a run started (with rsync's pid
and the last file landed) and `unverified_since`, the moment the last checksum verification began: a landed
file whose inode changed after it has not been verified. A run that dies (killed, machine rebooted) leaves
`status: running` and does not advance `unverified_since`; the next run sees that, says it resumes, lets rsync
continue from the partial files, and verifies everything changed since, including what the dead run landed.

Writes go to a temporary file in the same directory, are fsynced, then renamed over the old file: a reader
(or a crash) sees the old state or the new state, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHECKPOINT_VERSION = 1


class SyncBusyError(RuntimeError):
    """Another process holds the profile's lock (a sync or cleanup is running)."""


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def to_iso(value: datetime | None) -> str | None:
    """ISO-8601 text, or None."""
    return value.isoformat() if value is not None else None


def from_iso(value: str | None) -> datetime | None:
    """Parse ISO-8601 text (naive values are taken as UTC), or None."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Checkpoint:
    """The persisted state of one profile's syncs."""

    profile: str
    status: str = "never"  # never | running | success | failed | interrupted
    run_id: str | None = None
    pid: int | None = None
    rsync_pid: int | None = None
    started_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    last_landed_file: str | None = None
    files_planned: int = 0
    files_landed_this_run: int = 0
    bytes_landed_this_run: int = 0
    unverified_since: str | None = None
    resumed_from: str | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    last_success_at: str | None = None
    last_stats: dict[str, Any] = field(default_factory=dict)
    quarantined: list[str] = field(default_factory=list)
    last_cleanup_at: str | None = None
    last_cleanup_deleted: int | None = None
    version: int = CHECKPOINT_VERSION

    def to_json(self) -> str:
        """Stable, human-readable JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """Build from a parsed file, ignoring keys a newer version may have added."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def was_interrupted(self) -> bool:
        """The last run did not finish cleanly (killed, crashed or stopped by a signal)."""
        return self.status in ("running", "interrupted")


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically: temp file in the same directory, fsync, rename, fsync the dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    # The rename itself is only durable once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CheckpointStore:
    """Checkpoints and locks of every profile, one JSON file and one lock file each, in `state_dir`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)

    def path(self, profile: str) -> Path:
        """The checkpoint file of a profile."""
        return self.state_dir / f"{profile}.json"

    def load(self, profile: str, repair: bool = True) -> tuple[Checkpoint, str | None]:
        """The profile's checkpoint (a fresh one when none exists) and a warning when the file was unreadable.

        With `repair`, an unreadable file is moved aside (`<name>.corrupt-<timestamp>`) rather than failing every
        future sync; the caller then verifies everything it sees, since what was unverified is unknown. Readers
        that only report (stats) pass repair=False and change nothing.
        """
        path = self.path(profile)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return Checkpoint.from_dict(data), None
        except FileNotFoundError:
            return Checkpoint(profile=profile), None
        except (ValueError, TypeError, OSError) as err:
            aside = path.with_name(f"{path.name}.corrupt-{utc_now():%Y%m%dT%H%M%S}")
            if not repair:
                return Checkpoint(
                    profile=profile, status="unknown"
                ), f"checkpoint {path} is unreadable ({err})"
            with contextlib.suppress(OSError):
                path.rename(aside)
            return Checkpoint(
                profile=profile, status="interrupted", unverified_since="1970-01-01T00:00:00+00:00"
            ), (
                f"checkpoint {path} was unreadable ({err}); moved to {aside.name}, verifying every landed file"
            )

    def save(self, checkpoint: Checkpoint) -> None:
        """Write the checkpoint atomically."""
        checkpoint.updated_at = to_iso(utc_now())
        atomic_write_text(self.path(checkpoint.profile), checkpoint.to_json())

    @contextlib.contextmanager
    def lock(self, profile: str) -> Iterator[None]:
        """Hold the profile's lock (non-blocking); SyncBusyError names the holder when it is taken.

        flock is released by the kernel when the holder dies, so a crashed run never leaves a stale lock.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.state_dir / f"{profile}.lock"
        with open(lock_path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise SyncBusyError(
                    f"profile {profile!r} is busy: a sync or cleanup is running ({holder}); try again later"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} since {to_iso(utc_now())}\n")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
