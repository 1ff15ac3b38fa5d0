"""A reviews run holds its delivery, not the history: each delivery is processed alone, checked against the
earlier deliveries' two key columns only (a memory check in child processes, never a timing)."""

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
