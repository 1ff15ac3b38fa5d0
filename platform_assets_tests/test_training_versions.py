"""Training sets are reproducible: their input snapshots are recorded and tagged, and rebuilding from them after
new data has landed (a new day, a changed day) and after snapshot expiry gives the same rows."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from platform_assets.definitions import defs
from platform_assets.defs.features.assets import FEAST_REPOSITORY, TRAINING_SET, training_tag
from platform_assets.defs.features.repo import STATS_VIEW
from platform_assets.defs.features.training import (
    INPUT_TABLES,
    build_training_set,
    pin_input_snapshots,
    read_training_inputs,
)
from platform_assets.defs.training.assets import PUBLISHED_TRAINING_SET
from platform_assets.defs.training.contract import PURCHASE_TRAINING_SET
from platform_assets.defs.user_events.sample_data import write_sample_events
from platform_assets.lake import expire_snapshots, read_table
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.dataset_versions import diff, rebuild_digest
from platform_assets.lib.lake import load_table, open_catalog, table_name
from platform_assets.lib.resources import shared_resources
from platform_assets.metadata_center.client import MetadataCenterClient
from platform_assets.sdk import Dataset
from platform_assets_tests.conftest import point_platform_at
from platform_assets_tests.metadata_center_fixture import metadata_center
from platform_assets_tests.test_features import run
from platform_assets_tests.test_training_data import run_distributed_example

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


def publish_training_set(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Publish the training set's latest materialization as a version (the training_data_job's step)."""
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=[PUBLISHED_TRAINING_SET],
        resources={**defs.resources, **shared_resources()},
        instance=instance,
    )


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PlatformSettings]:
    """The platform in `tmp_path`, with a metadata center to register versions in."""
    settings = point_platform_at(monkeypatch, tmp_path / "platform")
    monkeypatch.delenv("FEAST_ONLINE_STORE", raising=False)
    with metadata_center(tmp_path / "mc", storage_roots=list(settings.storage_roots)) as service:
        monkeypatch.setenv("METADATA_CENTER_URL", service.url)
        monkeypatch.setenv("METADATA_CENTER_API_KEY", service.api_key)
        yield settings


def test_training_set_is_rebuilt_identically_from_its_pinned_snapshots(settings: PlatformSettings) -> None:
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
    publish_training_set(instance)
    v1 = Dataset.get(PURCHASE_TRAINING_SET.dataset_id, version=1)
    assert v1.row_count == len(original)

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

    # The published version: its manifest names every input snapshot (expiry kept them: they are tagged)…
    manifest = v1.manifest
    assert {
        k: int(v) for k, v in manifest["inputs"]["lake"].items() if k != table_name(TRAINING_SET)
    } == pinned
    assert manifest["feast"]["feature_views"] == [STATS_VIEW]
    assert len(manifest["feast"]["definitions_sha256"]) == 64
    assert manifest["metrics"]["label"] == "label"
    assert manifest["metrics"]["label_balance"]["1"] == pytest.approx(metadata["positive_share"], abs=1e-4)
    # …and rebuilding it from the manifest after new data landed and expiry ran gives the same rows.
    assert rebuild_digest(manifest) == (v1.metadata["content_sha256"], v1.row_count)
    # A rebuilt training set is the next version; v1 still loads as it was, v2 differs, and diff says how.
    run("features_job", instance)
    publish_training_set(instance)
    v2 = Dataset.get(PURCHASE_TRAINING_SET.dataset_id)
    assert v2.version == 2 and v2.row_count > v1.row_count
    loaded = [
        int(r)
        for batch in v1.to_torch(batch_size=7, columns=["row_id"], shuffle=False)
        for r in batch["row_id"]
    ]
    assert loaded == original["row_id"].tolist()
    labels = next(iter(v1.to_torch(batch_size=len(original), columns=["label"], shuffle=False)))["label"]
    assert labels.tolist() == original["label"].tolist()
    client = MetadataCenterClient()
    compared = diff(client.get(v1.dataset_id, version=1), client.get(v1.dataset_id, version=2))
    changes = {m["metric"]: m for m in compared["metrics"]}
    assert changes["rows"]["change"] == v2.row_count - v1.row_count

    # The documented training example on the pinned v1: two processes, the purchase label from the features.
    report = run_distributed_example(
        settings.data_dir, f"--dataset={v1.dataset_id}", "--version=1", "--task=purchase", "--epochs=5"
    )
    assert sum(report["rows_per_rank"]) == report["distinct_rows"] == v1.row_count
    assert report["losses"][-1] < report["losses"][0]
    assert report["job_id"] in v1.lineage()["lineage"]["downstream"]["training_jobs"]
    # The same read through the public API, by tag.
    for name, snapshot_id in pinned.items():
        by_tag = read_table(name, tag=tag)
        by_id = read_table(name, snapshot_id=snapshot_id)
        assert by_tag.num_rows == by_id.num_rows > 0
