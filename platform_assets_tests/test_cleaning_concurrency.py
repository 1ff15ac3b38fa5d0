"""Deliveries are cleaned one at a time across runs: the cleaning step is in a concurrency pool whose limit
(one) the landing sensor and `register_deliveries` give a real instance, configured by the project's
dagster.yaml, unless an operator set one."""

import shutil
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from benchmarks.dataplane import PROJECT_ROOT
from platform_assets.defs.reviews.assets import CLEANING_POOL, cleaned_reviews
from platform_assets.defs.reviews.deliveries import register_deliveries
from platform_assets.defs.reviews.sample_data import write_sample_reviews
from platform_assets.defs.reviews.sensors import reviews_landing_sensor
from platform_assets.lib.config import PlatformSettings


def project_instance(home: Path) -> dg.DagsterInstance:
    home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def pool_limit(instance: dg.DagsterInstance) -> int:
    return instance.event_log_storage.get_concurrency_info(CLEANING_POOL).slot_count


def test_the_cleaning_step_is_in_the_pool_and_the_sensor_limits_it_to_one(
    platform_env: PlatformSettings, tmp_path: Path
) -> None:
    assert cleaned_reviews.op.pool == CLEANING_POOL
    instance = project_instance(tmp_path / "dagster")
    assert CLEANING_POOL not in instance.event_log_storage.get_concurrency_keys()
    write_sample_reviews(platform_env.landing_dir_for("reviews"), rows=50)
    result = reviews_landing_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult) and result.run_requests
    assert pool_limit(instance) == 1


def test_a_limit_an_operator_set_is_kept(tmp_path: Path) -> None:
    instance = project_instance(tmp_path / "dagster")
    register_deliveries(instance, ["a.csv"])
    assert pool_limit(instance) == 1
    instance.event_log_storage.set_concurrency_slots(CLEANING_POOL, 3)
    register_deliveries(instance, ["b.csv"])
    assert pool_limit(instance) == 3
    assert instance.get_dynamic_partitions("review_deliveries") == ["a.csv", "b.csv"]
