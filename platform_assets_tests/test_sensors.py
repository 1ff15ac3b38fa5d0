"""The landing sensor: a run when landing files change, a skip with a reason otherwise."""

import dagster as dg

from platform_assets.defs.reviews.sample_data import write_sample_reviews
from platform_assets.defs.reviews.sensors import reviews_landing_sensor
from platform_assets.lib.config import PlatformSettings


def evaluate(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    with dg.instance_for_test() as instance:
        return reviews_landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_landing_sensor_runs_on_new_and_changed_files_only(platform_env: PlatformSettings) -> None:
    empty = evaluate(None)
    assert isinstance(empty, dg.SkipReason) and "no review files" in empty.skip_message

    landing = platform_env.landing_dir_for("reviews")
    write_sample_reviews(landing, rows=50)
    first = evaluate(None)
    assert isinstance(first, dg.SensorResult) and len(first.run_requests) == 1
    cursor = first.cursor
    assert first.run_requests[0].run_key == f"landing-{cursor}"

    unchanged = evaluate(cursor)
    assert isinstance(unchanged, dg.SkipReason) and "unchanged" in unchanged.skip_message

    (landing / "more.jsonl").write_text('{"review_id": "R1"}\n')
    changed = evaluate(cursor)
    assert isinstance(changed, dg.SensorResult) and changed.cursor != cursor
