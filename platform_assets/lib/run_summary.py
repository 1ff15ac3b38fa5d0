"""A short, human summary of a run: rows per layer, quarantine reasons, checks, where the data is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from platform_assets.lib.config import get_settings


@dataclass
class RunSummary:
    """What a run materialized and how its checks went."""

    run_id: str
    success: bool
    rows: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)
    failure: str | None = None

    @property
    def ok(self) -> bool:
        """The run succeeded and no check failed."""
        return self.success and not self.checks_failed

    def render(self) -> str:
        """The summary as text for a terminal."""
        settings = get_settings()
        lines = [f"Run {self.run_id}: {'SUCCESS' if self.success else 'FAILURE'}"]
        if self.failure:
            lines.append(f"  failure: {self.failure}")
        lines.append("Rows per layer:")
        lines += [f"  {key:<28} {count:>8}" for key, count in sorted(self.rows.items())]
        for key, reasons in sorted(self.quarantine_reasons.items()):
            lines.append(f"Quarantined in {key} by reason:")
            lines += [f"  {reason:<28} {count:>8}" for reason, count in reasons.items()]
        lines.append(f"Checks: {len(self.checks_passed)} passed, {len(self.checks_failed)} failed")
        lines += [f"  FAILED {name}" for name in self.checks_failed]
        lines += [
            "Data:",
            f"  landing   {settings.landing_dir}",
            f"  lake      {settings.lake_uri}",
            f"  lancedb   {settings.lancedb_uri}",
            f"  dagster   {settings.dagster_home}  (make dev, then http://127.0.0.1:3000)",
        ]
        return "\n".join(lines)


def summarize_run(result: dg.ExecuteInProcessResult) -> RunSummary:
    """Collect the summary from an in-process run's events."""
    summary = RunSummary(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        key = materialization.asset_key.to_user_string()
        metadata: dict[str, Any] = {k: v.value for k, v in materialization.metadata.items()}
        if "dagster/row_count" in metadata:
            summary.rows[key] = int(metadata["dagster/row_count"])
        if "reasons" in metadata:
            summary.quarantine_reasons[key] = dict(metadata["reasons"])
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        (summary.checks_passed if evaluation.passed else summary.checks_failed).append(name)
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        if failures:
            data = failures[0].step_failure_data
            summary.failure = (
                f"{failures[0].step_key}: {data.error.message.strip() if data.error else 'failed'}"
            )
    return summary
