"""The `test_connection` check: can we log in to each profile's collection node and list its remote_path?

In a sync run (a partition of landing/lake_sync) it tests that partition's profile; run on its own ("Execute
check" in the UI) it tests every enabled profile, one row each in its metadata. It is deliberately not a
partitioned check: Dagster 1.13 cannot run a partitioned check without its asset, and a connection test is most
useful exactly when the sync is not running.
"""

from typing import Any

import dagster as dg

from platform_assets.defs.lake_sync.assets import LAKE_SYNC
from platform_assets.defs.lake_sync.resources import LakeSyncResource

PARTITION_TAG = "dagster/partition"


def connection_report(profiles: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Test each profile; return one row per profile and the one-line reasons of those that failed."""
    from platform_assets.lake_sync.rsync import RsyncError, test_connection

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for profile in profiles:
        try:
            result = test_connection(profile)
        except RsyncError as err:
            rows.append(
                {"profile": profile.name, "endpoint": profile.display, "ok": False, "detail": err.reason}
            )
            failures.append(err.reason)
            continue
        rows.append(
            {
                "profile": profile.name,
                "endpoint": result.endpoint,
                "ok": True,
                "detail": f"{result.latency_s:.2f} s, {result.entries} entries",
            }
        )
    return rows, failures


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| profile | endpoint | ok | detail |", "|---|---|---|---|"]
    lines += [
        f"| {r['profile']} | {r['endpoint']} | {'yes' if r['ok'] else 'NO'} | {str(r['detail']).replace('|', '/')} |"
        for r in rows
    ]
    return "\n".join(lines)


def build_connection_check() -> dg.AssetChecksDefinition:
    """The check definition (a function so that tests and the domain build it the same way)."""

    @dg.asset_check(
        asset=LAKE_SYNC,
        name="test_connection",
        description="Per profile: SSH login with its key, rsync on the remote host, remote_path readable "
        "(the run's profile in a sync run, every enabled profile when run alone).",
    )
    def lake_sync_test_connection(
        context: dg.AssetCheckExecutionContext, lake_sync: LakeSyncResource
    ) -> dg.AssetCheckResult:
        """Runs `rsync --list-only` against each profile's remote_path."""
        config = lake_sync.load()
        partition = context.run.tags.get(PARTITION_TAG)
        if partition:
            try:
                profiles = [config.profile(partition)]
            except ValueError as err:
                return dg.AssetCheckResult(passed=False, metadata={"reason": str(err)})
        else:
            profiles = config.enabled_profiles()
        rows, failures = connection_report(profiles)
        metadata: dict[str, Any] = {
            "profiles_tested": len(rows),
            "profiles_failed": len(failures),
            "connections": dg.MetadataValue.md(_markdown(rows)),
        }
        if failures:
            metadata["reason"] = failures[0]
        return dg.AssetCheckResult(passed=not failures, metadata=metadata)

    return lake_sync_test_connection
