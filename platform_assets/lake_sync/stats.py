"""Per-profile statistics: landed files and bytes, oldest and newest data, last sync and its outcome.

The figures come from the landing directory itself (the truth about what is there) and from the checkpoint
(what the last sync did). `render_table` shows them with relative times ("3 hours ago").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from platform_assets.lake_sync.checkpoint import CheckpointStore, from_iso
from platform_assets.lake_sync.config import ProfileConfig
from platform_assets.lake_sync.retention import path_date
from platform_assets.lib.config import PlatformSettings, get_settings


@dataclass
class ProfileStats:
    """What one profile has landed and how its last sync went."""

    profile: str
    target: Path
    files: int = 0
    bytes: int = 0
    partial_files: int = 0
    partial_bytes: int = 0
    oldest_data: date | None = None
    newest_data: date | None = None
    undated_files: int = 0
    last_sync_at: datetime | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None
    running: bool = False
    retention_days: int | None = None
    enabled: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly values (dates as ISO text)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = value.isoformat() if isinstance(value, date | datetime) else value
            if isinstance(value, Path):
                out[key] = str(value)
        return out


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def collect_stats(
    profile: ProfileConfig, store: CheckpointStore, settings: PlatformSettings | None = None
) -> ProfileStats:
    """Walk the profile's target and read its checkpoint.

    Partial transfers (under dotted names) are counted apart: they are not data yet. The date of a file is the
    one in its path; a file without one falls back to its modification time, counted in `undated_files`.
    """
    settings = settings or get_settings()
    target = profile.target_dir(settings)
    stats = ProfileStats(
        profile=profile.name, target=target, retention_days=profile.retention_days, enabled=profile.enabled
    )
    patterns = profile.date_patterns()
    if target.is_dir():
        root = str(target)
        for dirpath, _dirs, filenames in os.walk(root, followlinks=False):
            relative_dir = os.path.relpath(dirpath, root)
            for name in filenames:
                relative = name if relative_dir == "." else f"{relative_dir}/{name}"
                try:
                    info = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                if _hidden(relative):
                    stats.partial_files += 1
                    stats.partial_bytes += info.st_size
                    continue
                stats.files += 1
                stats.bytes += info.st_size
                found = path_date(relative, patterns)
                if found is None:
                    stats.undated_files += 1
                    found = datetime.fromtimestamp(info.st_mtime, UTC).date()
                stats.oldest_data = found if stats.oldest_data is None else min(stats.oldest_data, found)
                stats.newest_data = found if stats.newest_data is None else max(stats.newest_data, found)
    checkpoint, _ = (
        store.load(profile.name, repair=False) if store.path(profile.name).exists() else (None, None)
    )
    if checkpoint is not None:
        stats.last_sync_at = from_iso(checkpoint.finished_at or checkpoint.started_at)
        stats.last_outcome = checkpoint.last_outcome
        stats.last_error = checkpoint.last_error
        stats.last_success_at = from_iso(checkpoint.last_success_at)
        stats.running = checkpoint.status == "running"
    return stats


def relative_time(when: datetime | date | None, now: datetime | None = None) -> str:
    """'just now', '5 minutes ago', '3 days ago', 'in 2 hours'; a date counts from its midnight UTC; '-' for None."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    if not isinstance(when, datetime):
        days = (now.date() - when).days
        if days == 0:
            return "today"
        if days == 1:
            return "yesterday"
        return f"{days} days ago" if days > 0 else f"in {-days} days"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (now - when).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size) if unit != "day" else int(seconds // size)
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


_COLUMNS = ("profile", "files", "size", "oldest data", "newest data", "last sync", "outcome", "last success")


def table_rows(stats: list[ProfileStats], now: datetime | None = None) -> list[tuple[str, ...]]:
    """One row of display strings per profile, in `_COLUMNS` order."""
    rows = []
    for item in stats:
        outcome = "running" if item.running else (item.last_outcome or "never synced")
        if not item.enabled:
            outcome += " (disabled)"
        rows.append(
            (
                item.profile,
                str(item.files),
                human_bytes(item.bytes),
                relative_time(item.oldest_data, now),
                relative_time(item.newest_data, now),
                relative_time(item.last_sync_at, now),
                outcome,
                relative_time(item.last_success_at, now),
            )
        )
    return rows


def render_table(stats: list[ProfileStats], now: datetime | None = None) -> str:
    """A plain-text table, columns aligned, one row per profile."""
    rows = [_COLUMNS, *table_rows(stats, now)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_markdown(stats: list[ProfileStats], now: datetime | None = None) -> str:
    """The same table in markdown (for Dagster metadata)."""
    rows = table_rows(stats, now)
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
