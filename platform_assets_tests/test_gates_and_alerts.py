"""Blocking gates stop bad data; the quality job re-evaluates checks; alerts reach a real webhook receiver."""

import logging

import dagster as dg
import pytest

from platform_assets.definitions import defs
from platform_assets.defs.quality.alerts import (
    AlertDeliveryError,
    AlertWebhook,
    check_failure_alert_sensor,
    run_failure_alert_sensor,
)
from platform_assets.defs.reviews.deliveries import register_deliveries
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.resources import shared_resources
from platform_assets_tests.conftest import free_port
from platform_assets_tests.http_receiver import Receiver

HEADER = "review_id,product_id,user_id,rating,text,created_at\n"


def run_delivery(instance: dg.DagsterInstance, delivery: str) -> dg.ExecuteInProcessResult:
    """Run reviews_job for one delivery (its partition), as the landing sensor's run request does."""
    register_deliveries(instance, [delivery])
    # `defs` resolved its resources when it was imported; this test's PLATFORM_DATA_DIR was set later.
    return defs.resolve_job_def("reviews_job").execute_in_process(
        instance=instance, partition_key=delivery, raise_on_error=False, resources=shared_resources()
    )


def materialized_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_gate_mostly_garbage_delivery_never_reaches_embeddings(platform_env: PlatformSettings) -> None:
    landing = platform_env.landing_dir_for("reviews")
    landing.mkdir(parents=True)
    rows = [
        f"R{i},P1,U{i},{9 if i % 4 else 4},Some review text number {i},2026-01-01T00:00:00Z"
        for i in range(40)
    ]
    (landing / "garbage.csv").write_text(HEADER + "\n".join(rows) + "\n")
    with dg.instance_for_test() as instance:
        result = run_delivery(instance, "garbage.csv")
        assert not result.success
        assert "embedded/reviews" not in materialized_keys(result)
        assert {"raw/reviews", "cleaned/reviews", "quarantine/reviews"} <= materialized_keys(result)
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not evaluations["cleaned_yield"].passed
        assert evaluations["cleaned_yield"].metadata["cleaned_share"].value == 0.25
        assert evaluations["row_accounting"].passed
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert "cleaned_yield" in failure.step_failure_data.error.to_string()


def test_gate_header_only_delivery_fails_the_contract(platform_env: PlatformSettings) -> None:
    landing = platform_env.landing_dir_for("reviews")
    landing.mkdir(parents=True)
    (landing / "empty.csv").write_text(HEADER)
    with dg.instance_for_test() as instance:
        result = run_delivery(instance, "empty.csv")
    assert not result.success and "embedded/reviews" not in materialized_keys(result)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    contract = evaluations["cleaned_contract"]
    assert not contract.passed
    failed = contract.metadata["failed_rules"].value
    assert {"rule": "row count in [1, inf]", "severity": "critical", "observed_value": 0} in failed


def failing_asset_run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    @dg.asset(key=["raw", "broken"])
    def broken() -> None:
        raise dg.Failure(description="landing/broken.csv: line 7: expected 6 fields, got 7")

    return dg.materialize([broken], instance=instance, raise_on_error=False)


def test_run_failure_alert_posts_to_the_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver() as receiver, dg.instance_for_test() as instance:
        monkeypatch.setenv("PLATFORM_ALERT_WEBHOOK_URL", receiver.url)
        result = failing_asset_run(instance)
        failure_event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=failure_event,
            resources={"alert_webhook": AlertWebhook(backoff_seconds=0.01)},
        ).for_run_failure()
        run_failure_alert_sensor(context)
        (body,) = receiver.bodies
        assert body["event"] == "run_failure" and body["run_id"] == result.run_id
        assert "landing/broken.csv: line 7" in body["text"]
        assert body["text"].startswith(":red_circle: Run")


def test_alert_webhook_retries_then_reports_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    with Receiver() as receiver:
        receiver.status = 503
        webhook = AlertWebhook(url=receiver.url, attempts=3, backoff_seconds=0.01)
        log = logging.getLogger("alerts-test")
        with pytest.raises(AlertDeliveryError, match="unreachable after 3 attempts: HTTP 503"):
            webhook.post({"text": "hi"}, log)
        assert len(receiver.bodies) == 3
    closed = AlertWebhook(url=f"http://127.0.0.1:{free_port()}/hook", attempts=2, backoff_seconds=0.01)
    with caplog.at_level(logging.ERROR), pytest.raises(AlertDeliveryError, match="ConnectionError"):
        closed.post({"text": "hi"}, logging.getLogger("alerts-test"))
    assert any("unreachable after 2 attempts" in r.getMessage() for r in caplog.records)


def test_check_failure_alert_reports_failed_checks_of_a_run() -> None:
    @dg.asset(key=["cleaned", "thing"])
    def thing() -> int:
        return 1

    @dg.asset_check(asset=thing, name="always_fails")
    def always_fails() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, metadata={"why": "planted"})

    @dg.asset_check(asset=thing, name="always_passes")
    def always_passes() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    with Receiver() as receiver, dg.instance_for_test() as instance:
        result = dg.materialize([thing, always_fails, always_passes], instance=instance)
        success_event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)

        def context_for(webhook: AlertWebhook) -> dg.RunStatusSensorContext:
            return dg.build_run_status_sensor_context(
                sensor_name="check_failure_alert_sensor",
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=success_event,
                resources={"alert_webhook": webhook},
            )

        receiver.status = 500
        with pytest.raises(AlertDeliveryError):
            check_failure_alert_sensor(
                context_for(AlertWebhook(url=receiver.url, attempts=2, backoff_seconds=0.01))
            )

        receiver.status = 200
        receiver.bodies.clear()
        skip = check_failure_alert_sensor(context_for(AlertWebhook(url=receiver.url)))
        assert "1 failed check(s) alerted" in skip.skip_message
        (body,) = receiver.bodies
        assert body["event"] == "check_failure"
        assert [(f["asset"], f["check"], f["metadata"]["why"]) for f in body["failures"]] == [
            ("cleaned/thing", "always_fails", "planted")
        ]
        assert "`cleaned/thing` check `always_fails` failed" in body["text"]


def test_alert_sensors_skip_without_a_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLATFORM_ALERT_WEBHOOK_URL", raising=False)
    with dg.instance_for_test() as instance:
        result = failing_asset_run(instance)
        failure_event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=failure_event,
            resources={"alert_webhook": AlertWebhook()},
        ).for_run_failure()
        assert "PLATFORM_ALERT_WEBHOOK_URL" in run_failure_alert_sensor(context).skip_message


def test_quality_schedule_targets_the_quality_job() -> None:
    schedule = defs.resolve_schedule_def("quality_schedule")
    assert schedule.cron_schedule == "0 */6 * * *" and schedule.job_name == "quality_job"
