"""A short, human summary of runs: rows per layer, quarantine reasons, checks, where the data is."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from platform_assets.lib.config import get_settings, redact_url


@dataclass
class RunSummary:
    """What one or more runs materialized and how their checks went (partitions are added up)."""

    runs: list[tuple[str, str, bool]] = field(default_factory=list)  # (label, run id, success)
    rows: Counter = field(default_factory=Counter)
    partitions: Counter = field(default_factory=Counter)
    quarantine_reasons: dict[str, Counter] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """Every run succeeded."""
        return all(ok for _, _, ok in self.runs)

    @property
    def ok(self) -> bool:
        """Every run succeeded and no check failed."""
        return self.success and not self.checks_failed

    def add(self, label: str, result: dg.ExecuteInProcessResult) -> None:
        """Fold one run's events into the summary."""
        self.runs.append((label, result.run_id, result.success))
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            key = materialization.asset_key.to_user_string()
            metadata: dict[str, Any] = {k: v.value for k, v in materialization.metadata.items()}
            self.partitions[key] += 1
            if "dagster/row_count" in metadata:
                self.rows[key] += int(metadata["dagster/row_count"])
            if "reasons" in metadata:
                self.quarantine_reasons.setdefault(key, Counter()).update(dict(metadata["reasons"]))
            for note in (
                "embedded_rows",
                "embedding_backend",
                "users",
                "entity_rows",
                "online_store",
                "near_duplicate_threshold",
            ):
                if note in metadata:
                    value, name = metadata[note], f"{key} {note}"
                    # A count over partitions (each delivery's embedded rows) adds up; a setting is the last seen.
                    if isinstance(value, int) and name in self.notes and self.notes[name].isdigit():
                        value += int(self.notes[name])
                    self.notes[name] = str(value)
        for evaluation in result.get_asset_check_evaluations():
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            (self.checks_passed if evaluation.passed else self.checks_failed).append(f"{name} [{label}]")
        if not result.success:
            failed = [e for e in result.all_events if e.is_step_failure]
            for event in failed[:3]:
                data = event.step_failure_data
                message = data.user_failure_data.description if data.user_failure_data else None
                message = message or (data.error.message.strip().splitlines()[-1] if data.error else "failed")
                self.failures.append(f"{label} {event.step_key}: {message}")

    def render(self) -> str:
        """The summary as text for a terminal."""
        settings = get_settings()
        ok_runs = sum(ok for _, _, ok in self.runs)
        lines = [
            f"Runs: {ok_runs} of {len(self.runs)} succeeded ({'SUCCESS' if self.success else 'FAILURE'})"
        ]
        lines += [f"  failure: {failure}" for failure in self.failures]
        lines += [f"  not run again: {item}" for item in self.skipped]
        lines.append("Rows per layer:")
        for key in sorted(self.partitions):
            count = f"{self.rows[key]:>8}" if key in self.rows else "       -"
            parts = f"  ({self.partitions[key]} materializations)" if self.partitions[key] > 1 else ""
            lines.append(f"  {key:<36} {count}{parts}")
        for key, reasons in sorted(self.quarantine_reasons.items()):
            lines.append(f"Quarantined in {key} by reason:")
            lines += [f"  {reason:<36} {count:>8}" for reason, count in reasons.most_common()]
        if self.notes:
            lines.append("Details:")
            lines += [f"  {name:<44} {value}" for name, value in sorted(self.notes.items())]
        lines.append(f"Checks: {len(self.checks_passed)} passed, {len(self.checks_failed)} failed")
        lines += [f"  FAILED {name}" for name in self.checks_failed]
        lines += [
            "Data:",
            f"  landing   {settings.landing_dir}",
            f"  lake      {settings.lake_uri}  (Iceberg catalog {redact_url(settings.catalog_uri)}; "
            "platform lake tables)",
            f"  lancedb   {settings.lancedb_uri}",
            f"  feast     {settings.data_dir / 'feast'}",
            f"  dagster   {settings.dagster_home}  (make dev, then http://127.0.0.1:3000)",
        ]
        return "\n".join(lines)
