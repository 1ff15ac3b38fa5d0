"""Alerts: a run-failure sensor and a check-failure sensor that post Slack-compatible JSON to a webhook."""

import json
from typing import Any

import dagster as dg
import requests
from pydantic import Field
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from platform_assets.lib.config import get_settings


class AlertWebhook(dg.ConfigurableResource):
    """Posts alert messages (Slack incoming-webhook format: a `text` plus details) to a URL.

    A webhook URL carries its own secret, so the code location leaves `url` unset and it is read from
    PLATFORM_ALERT_WEBHOOK_URL when a sensor runs: the UI never shows it.
    """

    url: str | None = Field(
        default=None,
        description="Webhook URL (a secret). Unset: PLATFORM_ALERT_WEBHOOK_URL; unset too: alerts are off.",
    )
    attempts: int = Field(default=3, description="Tries per message before giving up for this tick.")
    backoff_seconds: float = Field(default=1.0, description="Wait before the second try; doubles each time.")
    timeout_seconds: float = Field(default=5.0, description="Per-request timeout.")

    def resolved_url(self) -> str | None:
        """The webhook URL in use, or None when alerts are off."""
        return self.url or get_settings().alert_webhook_url

    def post(self, payload: dict[str, Any], log: Any) -> None:
        """Deliver `payload`, retrying with backoff; raise `AlertDeliveryError` when every try failed."""
        url = self.resolved_url()
        if not url:
            raise AlertDeliveryError("no alert webhook configured (set PLATFORM_ALERT_WEBHOOK_URL)")

        def attempt() -> None:
            try:
                response = requests.post(url, json=payload, timeout=self.timeout_seconds)
            except requests.RequestException as err:
                raise _AttemptFailed(f"{type(err).__name__}: {err}") from err
            if response.status_code >= 300:
                raise _AttemptFailed(f"HTTP {response.status_code}: {response.text[:200]}")

        def log_failure(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                f"alert webhook {url}: attempt {state.attempt_number}/{self.attempts} failed ({error})"
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds, exp_base=2),
            retry=retry_if_exception_type(_AttemptFailed),
            after=log_failure,
            reraise=True,
        )
        try:
            retrying(attempt)
        except _AttemptFailed as err:
            message = f"alert webhook {url} unreachable after {self.attempts} attempts: {err}"
            log.error(message)
            raise AlertDeliveryError(message) from err


class _AttemptFailed(RuntimeError):
    """One delivery attempt failed; the message says how (an HTTP status or a connection error)."""


class AlertDeliveryError(RuntimeError):
    """The webhook could not be reached; the sensor will try the same alert again on its next tick."""


def run_failure_payload(run: dg.DagsterRun, error: str | None) -> dict[str, Any]:
    """The message for a failed run."""
    text = f":red_circle: Run {run.run_id[:8]} of job `{run.job_name}` failed"
    if error:
        text += f": {error.strip().splitlines()[0][:500]}"
    return {
        "text": text,
        "event": "run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "error": error,
        "tags": dict(run.tags),
    }


def check_failure_payload(failures: list[dict[str, Any]]) -> dict[str, Any]:
    """One message for the failed check evaluations seen in a tick."""
    lines = [
        f"• `{f['asset']}` check `{f['check']}` failed ({f['severity']}) in run {f['run_id'][:8]}"
        for f in failures
    ]
    return {
        "text": f":warning: {len(failures)} asset check(s) failed\n" + "\n".join(lines),
        "event": "check_failure",
        "failures": failures,
    }


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    description="Posts a message to the alert webhook when any run fails.",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook
) -> dg.SkipReason | None:
    """Alert on a failed run; a delivery failure raises so the same run is alerted again next tick."""
    if not alert_webhook.resolved_url():
        return dg.SkipReason("no alert webhook configured (set PLATFORM_ALERT_WEBHOOK_URL)")
    error = context.failure_event.message if context.failure_event else None
    step_failures = context.get_step_failure_events()
    if step_failures:
        data = step_failures[0].step_failure_data
        error = f"step {step_failures[0].step_key}: {data.error.message if data.error else 'failed'}"
        if data.user_failure_data and data.user_failure_data.description:
            error = f"step {step_failures[0].step_key}: {data.user_failure_data.description}"
    payload = run_failure_payload(context.dagster_run, error)
    payload["failed_checks"] = failed_checks(context.instance, context.dagster_run.run_id)
    alert_webhook.post(payload, context.log)
    return None


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    """The failed asset check evaluations of one run, with their metadata (the evidence)."""
    failures = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if not evaluation.passed:
            failures.append(
                {
                    "asset": evaluation.asset_key.to_user_string(),
                    "check": evaluation.check_name,
                    "severity": evaluation.severity.value,
                    "run_id": run_id,
                    "metadata": json.loads(
                        json.dumps({k: v.value for k, v in evaluation.metadata.items()}, default=str)
                    ),
                }
            )
    return failures


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="check_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    description="Posts a message to the alert webhook for the failed asset checks of every successful run "
    "(a failed run is reported, with its failed checks, by run_failure_alert_sensor).",
)
def check_failure_alert_sensor(
    context: dg.RunStatusSensorContext, alert_webhook: AlertWebhook
) -> dg.SkipReason:
    """Alert on a finished run's failed checks; a delivery failure raises so the run is looked at again."""
    if not alert_webhook.resolved_url():
        return dg.SkipReason("no alert webhook configured (set PLATFORM_ALERT_WEBHOOK_URL)")
    failures = failed_checks(context.instance, context.dagster_run.run_id)
    if not failures:
        return dg.SkipReason(f"run {context.dagster_run.run_id[:8]}: no failed checks")
    alert_webhook.post(check_failure_payload(failures), context.log)
    return dg.SkipReason(f"run {context.dagster_run.run_id[:8]}: {len(failures)} failed check(s) alerted")
