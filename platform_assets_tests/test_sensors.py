"""The landing sensor: one partitioned run per delivery (landing file), keyed on its content; a skip with a
reason when there is nothing to run."""

import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from platform_assets.defs.reviews.partitions import review_deliveries
from platform_assets.defs.reviews.sample_data import write_sample_reviews
from platform_assets.defs.reviews.sensors import IGNORED, reviews_landing_sensor
from platform_assets.lib.config import PlatformSettings

SAMPLE_FILES = ["reviews_sample_001.csv", "reviews_sample_002.jsonl", "reviews_sample_003.parquet"]


def evaluate(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    return reviews_landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_keys(result: dg.SensorResult) -> dict[str, str]:
    """{partition_key: run_key} of the result's run requests."""
    return {request.partition_key: request.run_key for request in result.run_requests}


def apply_partition_requests(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the daemon does with the sensor's dynamic partition requests before launching its runs."""
    for request in result.dynamic_partitions_requests:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        assert request.partitions_def_name == review_deliveries.name
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_landing_sensor_one_run_per_delivery_keyed_on_content(platform_env: PlatformSettings) -> None:
    landing = platform_env.landing_dir_for("reviews")
    with dg.instance_for_test() as instance:
        empty = evaluate(instance, None)
        assert isinstance(empty, dg.SkipReason) and "no review files" in empty.skip_message

        write_sample_reviews(landing, rows=50)
        first = evaluate(instance, None)
        assert isinstance(first, dg.SensorResult)
        # One request per file, for its partition, keyed on the file's content.
        assert run_keys(first) == {name: f"{name}:{sha256(landing / name)}" for name in SAMPLE_FILES}
        for request in first.run_requests:
            assert request.tags["platform/delivery_sha256"] == sha256(landing / request.partition_key)
        # The new deliveries are added as partitions; the cursor keeps [size, mtime_ns, sha256] per file.
        assert [sorted(r.partition_keys) for r in first.dynamic_partitions_requests] == [SAMPLE_FILES]
        cursor = json.loads(first.cursor)
        assert cursor.pop(IGNORED) == {}  # every landing file is a delivery
        assert set(cursor) == set(SAMPLE_FILES)
        for name, (size, mtime_ns, digest) in cursor.items():
            stat = (landing / name).stat()
            assert (size, mtime_ns, digest) == (stat.st_size, stat.st_mtime_ns, sha256(landing / name))
        apply_partition_requests(instance, first)
        assert sorted(instance.get_dynamic_partitions(review_deliveries.name)) == SAMPLE_FILES

        # Nothing changed: the same run keys (Dagster never launches a run key twice), no partition to add.
        unchanged = evaluate(instance, first.cursor)
        assert isinstance(unchanged, dg.SensorResult)
        assert run_keys(unchanged) == run_keys(first)
        assert unchanged.dynamic_partitions_requests == []
        assert json.loads(unchanged.cursor) == {**cursor, IGNORED: {}}

        # An unchanged re-delivery (same bytes, new modification time) keeps its run key.
        redelivered = landing / SAMPLE_FILES[0]
        stat = redelivered.stat()
        os.utime(redelivered, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        touched = evaluate(instance, unchanged.cursor)
        assert isinstance(touched, dg.SensorResult)
        assert run_keys(touched) == run_keys(first)
        assert json.loads(touched.cursor)[SAMPLE_FILES[0]][1] == redelivered.stat().st_mtime_ns

        # A corrected file gets a new run key for its partition only; a new file a new partition.
        redelivered.write_bytes(
            redelivered.read_bytes() + b"R-extra,U1,P1,5,Fine product indeed,2024-01-01\n"
        )
        (landing / "more.jsonl").write_text('{"review_id": "R1"}\n')
        changed = evaluate(instance, touched.cursor)
        assert isinstance(changed, dg.SensorResult)
        keys = run_keys(changed)
        assert (
            keys[SAMPLE_FILES[0]]
            == f"{SAMPLE_FILES[0]}:{sha256(redelivered)}"
            != run_keys(first)[SAMPLE_FILES[0]]
        )
        assert {name: keys[name] for name in SAMPLE_FILES[1:]} == {
            n: run_keys(first)[n] for n in SAMPLE_FILES[1:]
        }
        assert keys["more.jsonl"] == f"more.jsonl:{sha256(landing / 'more.jsonl')}"
        assert [list(r.partition_keys) for r in changed.dynamic_partitions_requests] == [["more.jsonl"]]


def test_landing_sensor_reads_only_new_or_touched_files(platform_env: PlatformSettings) -> None:
    """A file whose size and modification time match the cursor is not hashed again (deliveries can be large):
    the digest kept in the cursor is the one used."""
    landing = platform_env.landing_dir_for("reviews")
    write_sample_reviews(landing, rows=50)
    with dg.instance_for_test() as instance:
        first = evaluate(instance, None)
        assert isinstance(first, dg.SensorResult)
        planted = json.loads(first.cursor)
        planted[SAMPLE_FILES[1]][2] = "kept-from-cursor"
        again = evaluate(instance, json.dumps(planted))
        assert isinstance(again, dg.SensorResult)
        assert run_keys(again)[SAMPLE_FILES[1]] == f"{SAMPLE_FILES[1]}:kept-from-cursor"
