"""Retention: delete landed files whose path date is older than the profile's retention_days.

A file's date comes from its path relative to the profile's target (directory names or file name), in any of
the profile's date layouts (YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD by default). When a path holds several dates the
newest one counts, so nothing is deleted while any part of its path says it is recent. A file without a date is
never deleted. Deletion never leaves the profile's target (and parquet_target): the walk does not follow
symbolic links, only regular files are deleted (never a link, never what a link points to), and each candidate's
directory is checked to lie inside the resolved root before the file is unlinked.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from platform_assets.lake_sync.config import ProfileConfig
from platform_assets.lib.config import PlatformSettings, get_settings


class RetentionSafetyError(RuntimeError):
    """A deletion root failed a safety check (the filesystem root, the data dir itself, …)."""


def path_date(relative_path: str, patterns: Iterable[re.Pattern[str]]) -> date | None:
    """The newest valid calendar date any pattern finds in the path, or None.

    Matches that are not real dates (month 13, 30 February, a year outside 1970..2199) are ignored, so ids
    and counters that happen to have eight digits are not taken for dates.
    """
    newest: date | None = None
    for pattern in patterns:
        for match in pattern.finditer(relative_path):
            year, month, day = int(match["year"]), int(match["month"]), int(match["day"])
            if not 1970 <= year <= 2199:
                continue
            try:
                found = date(year, month, day)
            except ValueError:
                continue
            if newest is None or found > newest:
                newest = found
    return newest


def retention_cutoff(retention_days: int, today: date | None = None) -> date:
    """Files dated strictly before this day are expired (today counts as day 0, UTC)."""
    return (today or datetime.now(UTC).date()) - timedelta(days=retention_days)


def is_expired(relative_path: str, profile: ProfileConfig, today: date | None = None) -> bool:
    """True when the profile has a retention and the path's date is older than it."""
    if profile.retention_days is None:
        return False
    found = path_date(relative_path, profile.date_patterns())
    return found is not None and found < retention_cutoff(profile.retention_days, today)


@dataclass
class RetentionItem:
    """One file retention looked at."""

    path: Path
    relative: str
    date: date | None
    size: int


@dataclass
class RetentionReport:
    """What one cleanup deleted (or would delete, in a dry run) for one profile."""

    profile: str
    roots: list[Path]
    cutoff: date | None
    dry_run: bool
    expired: list[RetentionItem] = field(default_factory=list)
    kept: int = 0
    undated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    removed_dirs: int = 0
    duration_s: float = 0.0

    @property
    def expired_bytes(self) -> int:
        """Bytes of the expired files."""
        return sum(item.size for item in self.expired)

    @property
    def files_per_s(self) -> float:
        """Expired files handled per second."""
        return len(self.expired) / self.duration_s if self.duration_s > 0 else 0.0

    def summary(self) -> str:
        """One line: what went (or would go) and what stayed."""
        verb = "would delete" if self.dry_run else "deleted"
        if self.cutoff is None:
            return f"{self.profile}: no retention_days set; nothing to do"
        text = (
            f"{self.profile}: {verb} {len(self.expired)} file(s), {self.expired_bytes} bytes dated before "
            f"{self.cutoff.isoformat()}; kept {self.kept}, {len(self.undated)} without a date"
        )
        return text + (f"; {len(self.errors)} error(s)" if self.errors else "")


def _safe_root(root: Path, settings: PlatformSettings) -> Path:
    resolved = root.resolve()
    forbidden = {
        Path("/"),
        Path.home().resolve(),
        settings.data_dir.resolve(),
        settings.landing_dir.resolve(),
    }
    if resolved in forbidden or len(resolved.parts) < 3:
        raise RetentionSafetyError(
            f"refusing to clean {resolved}: a profile's target must be a dedicated directory "
            "such as $PLATFORM_DATA_DIR/landing/<domain>"
        )
    return resolved


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def roots_for(profile: ProfileConfig, settings: PlatformSettings | None = None) -> list[Path]:
    """The directories retention may delete in: the target and, when set, the parquet target."""
    settings = settings or get_settings()
    roots = [profile.target_dir(settings)]
    parquet = profile.parquet_dir(settings)
    if parquet is not None:
        roots.append(parquet)
    return roots


def apply_retention(
    profile: ProfileConfig,
    dry_run: bool = False,
    today: date | None = None,
    settings: PlatformSettings | None = None,
) -> RetentionReport:
    """Delete (or, with dry_run, list) the profile's landed files older than its retention.

    Directories left empty are removed too (never a root). Errors on single files are collected in the
    report instead of stopping the cleanup half-way.
    """
    settings = settings or get_settings()
    roots = roots_for(profile, settings)
    started = time.perf_counter()
    if profile.retention_days is None:
        return RetentionReport(profile=profile.name, roots=roots, cutoff=None, dry_run=dry_run)
    cutoff = retention_cutoff(profile.retention_days, today)
    report = RetentionReport(profile=profile.name, roots=roots, cutoff=cutoff, dry_run=dry_run)
    patterns = profile.date_patterns()
    for root in roots:
        if not root.is_dir():
            continue
        safe_root = str(_safe_root(root, settings))
        touched_dirs: set[str] = set()
        # followlinks=False: a symlinked directory inside the target is never entered.
        for dirpath, _dirnames, filenames in os.walk(safe_root, followlinks=False):
            relative_dir = os.path.relpath(dirpath, safe_root)
            for name in filenames:
                full = os.path.join(dirpath, name)
                relative = name if relative_dir == "." else f"{relative_dir}/{name}"
                found = path_date(relative, patterns)
                if found is None:
                    report.undated.append(relative)
                    continue
                if found >= cutoff:
                    report.kept += 1
                    continue
                try:
                    info = os.lstat(full)
                except FileNotFoundError:
                    continue
                # Only regular files: sync never lands symlinks (rsync runs without -l), so a link here is
                # someone else's, and what it points to may lie outside the target.
                if not stat.S_ISREG(info.st_mode):
                    report.kept += 1
                    continue
                # The parent was reached without following links, so it is inside the root; checked anyway.
                if not _within(os.path.realpath(dirpath), safe_root):
                    report.errors.append(f"{full}: outside {safe_root}; skipped")
                    continue
                report.expired.append(RetentionItem(Path(full), relative, found, info.st_size))
                if dry_run:
                    continue
                try:
                    os.unlink(full)
                    touched_dirs.add(dirpath)
                except OSError as err:
                    report.errors.append(f"{full}: {err.strerror}")
        if not dry_run:
            report.removed_dirs += _remove_empty_dirs(touched_dirs, safe_root)
    report.duration_s = time.perf_counter() - started
    return report


def _remove_empty_dirs(directories: set[str], root: str) -> int:
    removed = 0
    # Deepest first, so a parent emptied by its child's removal goes too.
    for directory in sorted(directories, key=lambda d: d.count(os.sep), reverse=True):
        current = directory
        while current != root and _within(current, root):
            try:
                os.rmdir(current)
            except OSError:
                break
            removed += 1
            current = os.path.dirname(current)
    return removed
