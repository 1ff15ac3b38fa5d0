"""Training sets are reproducible: their input snapshots are recorded and tagged, and rebuilding from them after
new data has landed (a new day, a changed day) and after snapshot expiry gives the same rows."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from platform_assets.defs.features.assets import FEAST_REPOSITORY, TRAINING_SET, training_tag
from platform_assets.defs.features.training import (
    INPUT_TABLES,
    build_training_set,
    pin_input_snapshots,
    read_training_inputs,
)
from platform_assets.defs.user_events.sample_data import write_sample_events
from platform_assets.lake import expire_snapshots, read_table
from platform_assets.lib.lake import load_table, open_catalog, table_name
from platform_assets_tests.conftest import point_platform_at
from platform_assets_tests.test_features import run

pytestmark = pytest.mark.slow
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
LATER_DAY = "2026-01-04"
# The training set built from DAYS holds this day's rows only (the later days' 24 h label windows are not
# complete yet), so a change to it changes rows of the set: its features (lifetime purchase totals).
CHANGED_DAY = "2026-01-01"


def correction_file(landing: Path) -> Path:
    """A second delivery for CHANGED_DAY: late-evening purchases of some users (so their lifetime totals as of
    that day change, and users without other activity that day become entity rows), in a file of its own as a
    late correction would be."""
    rows = ["user_id,event_time,event_type,amount,duration,click_count,session_id"]
    for offset, user in enumerate(range(1001, 1031, 3)):
        rows.append(f"{user},{CHANGED_DAY}T23:{10 + offset}:00Z,purchase,42.00,30.0,1,fix-{user}")
    path = landing / f"events_{CHANGED_DAY}_correction.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def stored_training_set() -> pd.DataFrame:
    """The training set as the lake holds it, with the dtypes of the frame the asset returned."""
    from platform_assets.lib.lake import read_arrow, to_pandas

    catalog = open_catalog()
    return to_pandas(load_table(catalog, TRAINING_SET), read_arrow(catalog, TRAINING_SET))


def by_row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["event_timestamp", "user_id"], ignore_index=True)


def test_training_set_is_rebuilt_identically_from_its_pinned_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = point_platform_at(monkeypatch, tmp_path / "platform")
    monkeypatch.delenv("FEAST_ONLINE_STORE", raising=False)
    landing = settings.landing_dir_for("user_events")
    write_sample_events(landing, days=len(DAYS) + 1)
    instance = dg.DagsterInstance.ephemeral()
    run("features_job", instance, asset_selection=[FEAST_REPOSITORY])
    for day in DAYS:
        run("user_events_job", instance, partition_key=day)

    result = run("features_job", instance)
    (materialization,) = [
        e.materialization for e in result.get_asset_materialization_events() if e.asset_key == TRAINING_SET
    ]
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    recorded = metadata["lake/input_snapshots"]
    pinned = {name: int(snapshot_id) for name, snapshot_id in recorded.items()}
    assert set(pinned) == {table_name(key) for key in INPUT_TABLES}
    assert pinned == pin_input_snapshots(open_catalog())  # nothing landed since
    original = stored_training_set()
    assert len(original) == metadata["entity_rows"] > 0

    # Every input snapshot carries the run's tag.
    tag = training_tag(TRAINING_SET, result.run_id)
    assert metadata["lake/input_tag"] == tag
    for name, snapshot_id in pinned.items():
        assert load_table(open_catalog(), name).snapshot_by_name(tag).snapshot_id == snapshot_id

    # New data lands: a later day, and a correction to a day the set was built from.
    run("user_events_job", instance, partition_key=LATER_DAY)
    correction_file(landing)
    run("user_events_job", instance, partition_key=CHANGED_DAY)
    current = pin_input_snapshots(open_catalog())
    assert all(current[name] != pinned[name] for name in pinned)
    # The inputs as they are now give another training set: the comparison below has something to catch.
    now = build_training_set(read_training_inputs(open_catalog(), current))
    assert len(now) > len(original)  # the later day completes the label window of the last day
    same_days = now[now["event_timestamp"] <= original["event_timestamp"].max()]
    assert not by_row(same_days).drop(columns="row_id").equals(by_row(original).drop(columns="row_id"))

    # Expiry of every untagged snapshot older than now keeps the pinned ones (tagged) readable.
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    for name in pinned:
        expired = expire_snapshots(name, cutoff)
        assert expired and pinned[name] not in expired

    rebuilt = build_training_set(read_training_inputs(open_catalog(), recorded))
    pd.testing.assert_frame_equal(by_row(rebuilt), by_row(original))
    # The same read through the public API, by tag.
    for name, snapshot_id in pinned.items():
        by_tag = read_table(name, tag=tag)
        by_id = read_table(name, snapshot_id=snapshot_id)
        assert by_tag.num_rows == by_id.num_rows > 0
