"""Deterministic user events with the dirt real streams have, as one CSV file per delivery day.

Dirt: late events (yesterday's events in today's file), exact re-sends and same-time duplicates with other
values, missing user ids and times, negative amounts, unparseable timestamps, unknown event types.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from platform_assets.lib.config import get_settings
from platform_assets.lib.domains import SampleSize

EVENT_TYPES = ["view", "click", "purchase", "signup"]
COLUMNS = ["user_id", "event_time", "event_type", "amount", "duration", "click_count", "session_id"]
SAMPLE_START = date(2026, 1, 1)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def generate_day(
    day: date, users: int = 60, events_per_user: float = 6.0, seed: int = 7
) -> list[dict[str, str]]:
    """The events delivered in the file of `day` (values as strings, as a CSV carries them)."""
    rng = random.Random(f"{seed}-{day.isoformat()}")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows: list[dict[str, str]] = []
    for user in range(1001, 1001 + users):
        # Some users buy a lot, some never: segments need spread.
        buyer = (user % 5) / 5
        for session in range(rng.randint(0, max(1, int(events_per_user / 3)))):
            session_id = f"s-{user}-{day.strftime('%Y%m%d')}-{session}"
            moment = start + timedelta(seconds=rng.randrange(0, 86_400 - 3_600))
            for _ in range(rng.randint(1, 5)):
                moment += timedelta(seconds=rng.randrange(5, 600))
                if moment >= start + timedelta(days=1):
                    break
                kind = "purchase" if rng.random() < 0.15 * buyer else rng.choice(["view", "view", "click"])
                rows.append(
                    {
                        "user_id": str(user),
                        "event_time": _iso(moment),
                        "event_type": kind,
                        "amount": f"{rng.uniform(5, 250):.2f}" if kind == "purchase" else "0",
                        "duration": f"{rng.uniform(1, 300):.1f}",
                        "click_count": str(rng.randint(0, 12) if kind != "purchase" else 1),
                        "session_id": session_id,
                    }
                )
    rng.shuffle(rows)
    extra: list[dict[str, str]] = []
    for row in rng.sample(rows, k=max(1, len(rows) // 50)):
        extra.append(dict(row))  # an exact re-send
    for row in rng.sample(rows, k=max(1, len(rows) // 80)):
        extra.append({**row, "duration": "1.0", "click_count": "99"})  # same user and time, other values
    if day > SAMPLE_START:
        late_start = start - timedelta(days=1)
        for _ in range(max(1, len(rows) // 40)):
            moment = late_start + timedelta(seconds=rng.randrange(0, 86_400))
            extra.append(
                {
                    "user_id": str(rng.randint(1001, 1000 + users)),
                    "event_time": _iso(moment),
                    "event_type": "view",
                    "amount": "0",
                    "duration": "12.5",
                    "click_count": "1",
                    "session_id": f"late-{moment.timestamp():.0f}",
                }
            )
    dirt = [
        {"user_id": "", "event_time": _iso(start + timedelta(hours=3))},
        {"event_time": ""},
        {"event_time": "not-a-time"},
        {"event_time": "2026-13-45T99:00:00Z"},
        {"event_type": "purchase", "amount": "-19.99"},
        {"event_type": "teleport"},
        {"amount": "lots"},
    ]
    for change in dirt:
        base = dict(rng.choice(rows))
        base.update(change)
        base.setdefault("session_id", "dirty")
        extra.append(base)
    return rows + extra


def write_sample_events(landing_dir: Path, days: int = 7, users: int = 60, seed: int = 7) -> list[Path]:
    """Write `days` daily files `events_YYYY-MM-DD.csv` starting at SAMPLE_START; return their paths.

    Files whose content would not change are left untouched (no mtime bump).
    """
    landing_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset in range(days):
        day = SAMPLE_START + timedelta(days=offset)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(generate_day(day, users=users, seed=seed))
        path = landing_dir / f"events_{day.isoformat()}.csv"
        content = buffer.getvalue().encode()
        if not path.exists() or path.read_bytes() != content:
            staging = path.with_name(f".{path.name}.tmp")
            staging.write_bytes(content)
            staging.replace(path)
        paths.append(path)
    return paths


def write_sample(size: SampleSize) -> None:
    """`make run`'s sample: `size.days` daily files in landing/user_events (unchanged files are left alone)."""
    write_sample_events(get_settings().landing_dir_for("user_events"), days=size.days)
