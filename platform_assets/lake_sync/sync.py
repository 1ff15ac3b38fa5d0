"""The sync workflow of one profile (and of several): list, transfer, verify, convert, record.

1. Take the profile's lock and read its checkpoint; a run that died is noted and resumed.
2. List the remote directory (include/exclude applied) and leave out files already past retention, so that
   retention and sync do not fight (a deleted old file is never fetched again).
3. After a crash, move rsync's orphaned temp files into the partial directory so rsync resumes from them.
4. Transfer with rsync (`--partial-dir`), recording rsync's pid and progress in the checkpoint.
5. Verify checksums of every planned file whose inode changed since the last verification began (what this
   run landed, what an interrupted run landed, anything written over locally); a mismatched file is moved out
   of the landing reader's sight (into the partial directory, where it is the basis of the re-transfer).
6. Optionally convert landed CSVs to Parquet.
7. Record the outcome atomically in the checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from platform_assets.lake_sync.checkpoint import (
    Checkpoint,
    CheckpointStore,
    SyncBusyError,
    from_iso,
    to_iso,
    utc_now,
)
from platform_assets.lake_sync.config import LakeSyncConfig, ProfileConfig
from platform_assets.lake_sync.convert import convert_landed
from platform_assets.lake_sync.retention import RetentionReport, apply_retention, is_expired
from platform_assets.lake_sync.rsync import (
    PARTIAL_DIR,
    RsyncError,
    TransferStats,
    list_remote,
    transfer,
    verify_checksums,
)
from platform_assets.lake_sync.stats import human_bytes
from platform_assets.lib.config import PlatformSettings, get_settings

ProgressCallback = Callable[[str, dict[str, Any]], None]

# rsync's temp files: ".<name>.<6 random characters>" next to the final file.
_RSYNC_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9]{6}$")
# ctime has sub-second resolution, but clocks and filesystems vary; a small slack only verifies a bit more.
_CTIME_SLACK = timedelta(seconds=2)
_CHECKPOINT_EVERY_S = 1.0


@dataclass
class SyncResult:
    """The outcome of one profile's sync. `outcome` is 'success' or a failure code; `error` is one line."""

    profile: str
    run_id: str
    started_at: datetime
    outcome: str = "error"
    error: str | None = None
    finished_at: datetime | None = None
    resumed: bool = False
    resumed_from: str | None = None
    remote_files: int = 0
    remote_bytes: int = 0
    skipped_expired: int = 0
    planned: int = 0
    transferred: list[str] = field(default_factory=list)
    stats: TransferStats | None = None
    transfer_s: float = 0.0
    verified: int = 0
    mismatched: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    conversion_failed: dict[str, str] = field(default_factory=dict)
    recovered_partials: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when everything landed and verified (and converted, when asked)."""
        return self.outcome == "success"

    @property
    def duration_s(self) -> float:
        """Wall time of the whole sync."""
        end = self.finished_at or utc_now()
        return (end - self.started_at).total_seconds()

    @property
    def throughput_bytes_per_s(self) -> float:
        """File bytes landed per second of transfer."""
        if not self.stats or self.transfer_s <= 0:
            return 0.0
        return self.stats.transferred_size / self.transfer_s

    def summary(self) -> str:
        """One line for a terminal or a log."""
        if not self.ok and not self.stats:
            return f"{self.profile}: {self.outcome}: {self.error}"
        stats = self.stats or TransferStats()
        text = (
            f"{self.profile}: {self.outcome}: {len(self.transferred)} of {self.planned} file(s) transferred "
            f"({human_bytes(stats.transferred_size)} at {human_bytes(int(self.throughput_bytes_per_s))}/s), "
            f"{self.verified} verified, {len(self.mismatched)} mismatched"
        )
        if self.skipped_expired:
            text += f", {self.skipped_expired} past retention skipped"
        if self.converted:
            text += f", {len(self.converted)} converted to Parquet"
        if self.resumed:
            text += f", resumed after interrupted run {self.resumed_from}"
        if self.error:
            text += f" — {self.error}"
        return text


def checkpoint_store(config: LakeSyncConfig, settings: PlatformSettings | None = None) -> CheckpointStore:
    """The checkpoint store for a configuration."""
    return CheckpointStore(config.state_dir(settings or get_settings()))


def recover_stale_temp_files(target: Path, planned: list[str]) -> list[str]:
    """After a crash, move rsync's orphaned temp files to the partial directory so the next transfer reuses them.

    rsync only saves a partial file itself when it is stopped by a signal it can handle; a SIGKILL, an OOM kill
    or a reboot leaves `.<name>.XXXXXX` behind. Only temp files of planned files are touched.
    """
    by_dir: dict[str, set[str]] = {}
    for relative in planned:
        directory, _, name = relative.rpartition("/")
        by_dir.setdefault(directory, set()).add(name)
    recovered = []
    for directory, names in by_dir.items():
        folder = target / directory if directory else target
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _RSYNC_TEMP_RE.match(entry.name)
            if not match or match["name"] not in names or not entry.is_file(follow_symlinks=False):
                continue
            partial = folder / PARTIAL_DIR / match["name"]
            partial.parent.mkdir(exist_ok=True)
            try:
                existing = partial.stat().st_size
            except FileNotFoundError:
                existing = -1
            if entry.stat().st_size > existing:
                os.replace(entry.path, partial)
                recovered.append(f"{directory}/{match['name']}" if directory else match["name"])
            else:
                os.unlink(entry.path)
    return recovered


def _quarantine(target: Path, relative: str) -> bool:
    """Move a landed file that failed verification into the partial directory, out of the landing reader's view."""
    source = target / relative
    destination = source.parent / PARTIAL_DIR / source.name
    try:
        destination.parent.mkdir(exist_ok=True)
        os.replace(source, destination)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _landed_since(target: Path, planned: list[str], since: datetime | None) -> list[str]:
    """Planned files present in the target whose inode changed at or after `since` (all present when None)."""
    threshold = (since - _CTIME_SLACK).timestamp() if since is not None else None
    found = []
    for relative in planned:
        try:
            info = os.stat(target / relative)
        except FileNotFoundError:
            continue
        if threshold is None or info.st_ctime >= threshold:
            found.append(relative)
    return found


def sync_profile(
    profile: ProfileConfig,
    config: LakeSyncConfig,
    settings: PlatformSettings | None = None,
    verify_all: bool = False,
    progress: ProgressCallback | None = None,
    today: date | None = None,
) -> SyncResult:
    """Sync one profile; never raises for an operational failure (the result says what happened).

    `verify_all` checksums every landed file instead of only those changed since the last verification.
    `progress(event, details)` receives: listed, rsync_started, file_landed, transferred, verified, converted.
    """
    settings = settings or get_settings()
    store = checkpoint_store(config, settings)
    result = SyncResult(profile=profile.name, run_id=uuid.uuid4().hex[:12], started_at=utc_now())
    if not profile.enabled:
        result.outcome, result.error = "disabled", f"profile {profile.name!r} is disabled (enabled: false)"
        result.finished_at = utc_now()
        return result
    try:
        with store.lock(profile.name):
            _sync_locked(profile, store, settings, result, verify_all, progress or (lambda *_: None), today)
    except SyncBusyError as err:
        result.outcome, result.error = "busy", str(err)
    result.finished_at = result.finished_at or utc_now()
    return result


def _sync_locked(
    profile: ProfileConfig,
    store: CheckpointStore,
    settings: PlatformSettings,
    result: SyncResult,
    verify_all: bool,
    emit: ProgressCallback,
    today: date | None,
) -> None:
    checkpoint, warning = store.load(profile.name)
    if warning:
        result.warnings.append(warning)
    result.resumed = checkpoint.was_interrupted
    result.resumed_from = checkpoint.run_id if result.resumed else None
    # Kept from the last verification (None: never verified, so everything present is checked). An interrupted
    # run does not advance it, so what that run landed is verified now.
    unverified_since = from_iso(checkpoint.unverified_since)
    checkpoint.status = "running"
    checkpoint.run_id = result.run_id
    checkpoint.pid = os.getpid()
    checkpoint.rsync_pid = None
    checkpoint.started_at = to_iso(result.started_at)
    checkpoint.finished_at = None
    checkpoint.last_landed_file = None
    checkpoint.files_planned = checkpoint.files_landed_this_run = checkpoint.bytes_landed_this_run = 0
    checkpoint.unverified_since = to_iso(unverified_since)
    checkpoint.resumed_from = result.resumed_from
    store.save(checkpoint)
    try:
        _run_sync(profile, store, settings, result, checkpoint, unverified_since, verify_all, emit, today)
    except RsyncError as err:
        result.outcome, result.error = err.kind, err.reason
        resumable = err.kind in ("interrupted", "timeout", "connection_lost")
        checkpoint.status = "interrupted" if resumable else "failed"
    except BaseException as err:
        # Ctrl-C, a terminated Dagster run, or a bug: record it so that the next run knows to resume.
        checkpoint.status = "interrupted"
        checkpoint.last_outcome = "interrupted"
        checkpoint.last_error = f"sync stopped by {type(err).__name__}: {err}".strip().rstrip(":")
        checkpoint.finished_at = to_iso(utc_now())
        checkpoint.rsync_pid = None
        store.save(checkpoint)
        raise
    result.finished_at = utc_now()
    checkpoint.rsync_pid = None
    checkpoint.finished_at = to_iso(result.finished_at)
    checkpoint.last_outcome = result.outcome
    checkpoint.last_error = result.error
    if result.ok:
        checkpoint.status = "success"
        checkpoint.last_success_at = checkpoint.finished_at
    elif checkpoint.status == "running":
        checkpoint.status = "failed"
    if result.stats is not None:
        checkpoint.last_stats = {
            **result.stats.as_dict(),
            "transferred_files": len(result.transferred),
            "verified": result.verified,
            "mismatched": len(result.mismatched),
            "duration_s": round(result.duration_s, 3),
            "throughput_bytes_per_s": round(result.throughput_bytes_per_s, 1),
        }
    store.save(checkpoint)


def _run_sync(
    profile: ProfileConfig,
    store: CheckpointStore,
    settings: PlatformSettings,
    result: SyncResult,
    checkpoint: Checkpoint,
    unverified_since: datetime | None,
    verify_all: bool,
    emit: ProgressCallback,
    today: date | None,
) -> None:
    target = profile.target_dir(settings)
    listing = list_remote(profile)
    target.mkdir(parents=True, exist_ok=True)
    planned = [item.path for item in listing if not is_expired(item.path, profile, today)]
    result.remote_files = len(listing)
    result.remote_bytes = sum(item.size for item in listing)
    result.skipped_expired = len(listing) - len(planned)
    result.planned = len(planned)
    checkpoint.files_planned = len(planned)
    store.save(checkpoint)
    emit("listed", {"remote_files": len(listing), "planned": len(planned), "expired": result.skipped_expired})

    if result.resumed:
        result.recovered_partials = recover_stale_temp_files(target, planned)

    last_save = [time.monotonic()]

    def on_start(pid: int) -> None:
        checkpoint.rsync_pid = pid
        store.save(checkpoint)
        emit("rsync_started", {"pid": pid})

    def on_file(name: str, size: int) -> None:
        checkpoint.files_landed_this_run += 1
        checkpoint.bytes_landed_this_run += size
        checkpoint.last_landed_file = name
        # Throttled: the checkpoint is for humans and resume decisions, not a per-file journal (ctime is).
        if time.monotonic() - last_save[0] >= _CHECKPOINT_EVERY_S:
            store.save(checkpoint)
            last_save[0] = time.monotonic()
        emit("file_landed", {"path": name, "size": size})

    transferred = transfer(profile, planned, target, store.state_dir, on_start=on_start, on_file=on_file)
    checkpoint.rsync_pid = None
    result.stats = transferred.stats
    result.transferred = transferred.transferred
    result.transfer_s = transferred.duration_s
    result.warnings += transferred.warnings
    store.save(checkpoint)
    emit("transferred", {"files": list(result.transferred), "stats": transferred.stats.as_dict()})

    mismatched: set[str] = set()
    if profile.verify == "checksum":
        verify_started = utc_now()
        to_verify = _landed_since(target, planned, None if verify_all else unverified_since)
        result.mismatched = verify_checksums(profile, to_verify, target, store.state_dir)
        mismatched = set(result.mismatched)
        result.verified = len(to_verify) - len(mismatched)
        stuck = [relative for relative in result.mismatched if not _quarantine(target, relative)]
        checkpoint.quarantined = sorted(mismatched - set(stuck))
        # Everything that changed before this verification began is verified now, or moved aside for the next
        # run to fetch again (with a new ctime); a file that could not be moved keeps the old threshold.
        checkpoint.unverified_since = to_iso(unverified_since) if stuck else to_iso(verify_started)
        emit("verified", {"verified": result.verified, "mismatched": list(result.mismatched)})
    else:
        checkpoint.unverified_since = None

    parquet_root = profile.parquet_dir(settings)
    if parquet_root is not None:
        report = convert_landed([p for p in planned if p not in mismatched], target, parquet_root)
        result.converted = report.converted
        result.conversion_failed = report.failed
        emit("converted", {"converted": report.converted, "failed": report.failed})

    if result.mismatched:
        shown = ", ".join(result.mismatched[:5]) + (" …" if len(result.mismatched) > 5 else "")
        result.outcome = "verify_failed"
        result.error = (
            f"profile {profile.name!r}: checksum mismatch after transfer for {len(result.mismatched)} file(s): "
            f"{shown}; moved aside, the next sync fetches them again"
        )
    elif result.conversion_failed:
        first, reason = next(iter(result.conversion_failed.items()))
        result.outcome = "convert_failed"
        result.error = (
            f"profile {profile.name!r}: CSV to Parquet failed for {len(result.conversion_failed)} file(s), "
            f"first {first}: {reason}"
        )
    else:
        result.outcome = "success"


def sync_many(
    config: LakeSyncConfig,
    names: list[str] | None = None,
    settings: PlatformSettings | None = None,
    verify_all: bool = False,
    progress: ProgressCallback | None = None,
) -> list[SyncResult]:
    """Sync the named profiles (default: every enabled one) one after another; a failure does not stop the rest."""
    profiles = [config.profile(name) for name in names] if names else config.enabled_profiles()
    return [sync_profile(p, config, settings, verify_all=verify_all, progress=progress) for p in profiles]


def cleanup_profile(
    profile: ProfileConfig,
    config: LakeSyncConfig,
    dry_run: bool = False,
    today: date | None = None,
    settings: PlatformSettings | None = None,
) -> RetentionReport:
    """Apply retention to one profile; a real run holds the profile's lock so it never races a sync.

    Raises SyncBusyError when a sync holds the lock.
    """
    settings = settings or get_settings()
    store = checkpoint_store(config, settings)
    if dry_run:
        return apply_retention(profile, dry_run=True, today=today, settings=settings)
    with store.lock(profile.name):
        report = apply_retention(profile, dry_run=False, today=today, settings=settings)
        if report.cutoff is not None:
            checkpoint, _ = store.load(profile.name)
            checkpoint.last_cleanup_at = to_iso(utc_now())
            checkpoint.last_cleanup_deleted = len(report.expired)
            with contextlib.suppress(OSError):
                store.save(checkpoint)
    return report


__all__ = [
    "ProgressCallback",
    "SyncResult",
    "checkpoint_store",
    "cleanup_profile",
    "recover_stale_temp_files",
    "sync_many",
    "sync_profile",
]
