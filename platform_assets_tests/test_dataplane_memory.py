"""A reviews run holds a chunk, not its delivery, and not the history: each delivery is processed alone, a chunk
at a time, checked against the earlier deliveries' two key columns only (memory checks in child processes,
never a timing)."""

from pathlib import Path

import pytest

from benchmarks.dataplane import delivery_name, run_child, write_delivery

pytestmark = pytest.mark.slow
DELIVERY_ROWS = 40_000
MEASURED = 99
# Measured here for 280K more rows of history: 16–51 MiB with the key columns read (review_id, _content_key;
# allocator noise included), 226 MiB when the step also loads the earlier deliveries' rows into pandas (the
# mutant this bound was calibrated against fails it).
MAX_GROWTH_BYTES = 120 * 1024 * 1024


def peak_rss_with_history(root: Path, history_deliveries: int) -> dict:
    landing = root / "landing" / "reviews"
    for index in range(history_deliveries):
        write_delivery(landing, index, DELIVERY_ROWS)
    run_child(root, "dagster", [delivery_name(i) for i in range(history_deliveries)])
    write_delivery(landing, MEASURED, DELIVERY_ROWS)
    return run_child(root, "dagster", [delivery_name(MEASURED)])


def test_a_delivery_run_does_not_grow_with_the_history(tmp_path: Path) -> None:
    small = peak_rss_with_history(tmp_path / "small", 1)
    large = peak_rss_with_history(tmp_path / "large", 8)
    # The same delivery, cleaned against 40K and 320K earlier rows.
    assert small["rows"] == large["rows"] > DELIVERY_ROWS * 0.9
    growth = large["peak_rss_bytes"] - small["peak_rss_bytes"]
    assert growth < MAX_GROWTH_BYTES, (
        f"peak RSS grew by {growth / 2**20:.0f} MiB with 280K more rows of history "
        f"({small['peak_rss_bytes'] / 2**20:.0f} → {large['peak_rss_bytes'] / 2**20:.0f} MiB)"
    )


# Measured here with chunks of 25K rows: 50–100 MiB more for a 600K-row delivery than for a 100K one (the
# delivery's keys, kept for its duplicate checks, and allocator noise); a run that loads the delivery whole
# into pandas, as raw → cleaned did before chunking, grows by about 1.45 GiB per million rows (over 700 MiB).
SMALL_DELIVERY, LARGE_DELIVERY, CHUNK_ROWS = 100_000, 600_000, 25_000
MAX_DELIVERY_GROWTH_BYTES = 300 * 1024 * 1024


def test_a_delivery_run_holds_a_chunk_not_the_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_CHUNK_ROWS", str(CHUNK_ROWS))
    peaks = {}
    for rows in (SMALL_DELIVERY, LARGE_DELIVERY):
        root = tmp_path / str(rows)
        write_delivery(root / "landing" / "reviews", 0, rows)
        peaks[rows] = run_child(root, "dagster", [delivery_name(0)])
    small, large = peaks[SMALL_DELIVERY], peaks[LARGE_DELIVERY]
    assert large["rows"] > 5.5 * small["rows"] > 5.5 * SMALL_DELIVERY * 0.9
    growth = large["peak_rss_bytes"] - small["peak_rss_bytes"]
    assert growth < MAX_DELIVERY_GROWTH_BYTES, (
        f"peak RSS grew by {growth / 2**20:.0f} MiB for a delivery of {LARGE_DELIVERY} rows instead of "
        f"{SMALL_DELIVERY} ({small['peak_rss_bytes'] / 2**20:.0f} → {large['peak_rss_bytes'] / 2**20:.0f} MiB)"
    )
