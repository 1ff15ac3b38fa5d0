"""What a user runs: `platform run` (behind `make run`) and `dagster dev -w workspace.yaml` (behind `make dev`)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import requests

from platform_assets.main_run import MAIN_RUN_KEY_TAG
from platform_assets_tests.conftest import PROJECT_ROOT, free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# The sample's deliveries: one reviews partition (and run) each.
DELIVERIES = ["reviews_sample_001.csv", "reviews_sample_002.jsonl", "reviews_sample_003.parquet"]


def platform_environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "AWS_", "RAY_ADDRESS"))}
    env["PLATFORM_DATA_DIR"] = str(data_dir)
    env["DAGSTER_HOME"] = str(data_dir / "dagster")
    return env


def test_platform_run_materializes_everything_and_prints_a_summary(tmp_path: Path) -> None:
    data_dir = tmp_path / "platform"
    completed = subprocess.run(
        [str(BIN / "platform"), "run", "--rows", "200", "--days", "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=platform_environment(data_dir),
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "Runs: 13 of 13 succeeded (SUCCESS)" in out
    for key in (
        "raw/reviews",
        "cleaned/reviews",
        "quarantine/reviews",
        "embedded/reviews",
        "curated/reviews",
        "quarantine/reviews_curation",
        "raw/user_events",
        "features/user_stats",
        "features/online_user_stats",
        "training/user_purchase_training_set",
        "published/registered_datasets",
    ):
        assert key in out
    assert ", 0 failed" in out and "Checks: 0 passed" not in out
    assert "duplicate_review_id" in out and str(data_dir / "lancedb") in out
    hits = [
        json.loads(line) for line in out.split("Example search:")[1].splitlines()[1:] if line.startswith("{")
    ]
    assert len(hits) == 3 and "battery" in hits[0]["text"].lower()
    # The run is recorded in the persistent instance, so the UI shows it.
    os.environ["DAGSTER_HOME"], previous = str(data_dir / "dagster"), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert len(runs) == 13
            assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
            # The partitioned runs are the ones the domains' sensors requested: the three sample deliveries
            # (landing files; twice: curation runs after the calibration, an unpartitioned asset), three days
            # and one dataset.
            partitions = sorted(run.tags.get("dagster/partition", "") for run in runs)
            assert partitions == sorted(
                [
                    "",
                    "",
                    "",
                    *DELIVERIES,
                    *DELIVERIES,
                    "2026-01-01",
                    "2026-01-02",
                    "2026-01-03",
                    "sample_orders",
                ]
            )
            assert all(MAIN_RUN_KEY_TAG in run.tags for run in runs if run.tags.get("dagster/partition"))

            # Every reviews check ran, and passed, in each delivery's run.
            reviews_checks = {
                "raw_expectations",
                "cleaned_contract",
                "row_accounting",
                "cleaned_yield",
                "quarantine_expectations",
                "embedded_expectations",
                "embedded_matches_cleaned",
                "embedding_drift",
                "curated_contract",
                "curation_accounting",
                "pii_masked",
                "curation_quarantine_expectations",
                "duplicate_pairs_expectations",
            }
            checks_by_delivery: dict[str, dict[str, bool]] = {delivery: {} for delivery in DELIVERIES}
            for run in runs:
                if run.tags.get("dagster/partition") not in DELIVERIES:
                    continue
                evaluations = [
                    record.dagster_event.event_specific_data
                    for record in instance.all_logs(
                        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                    )
                ]
                checks_by_delivery[run.tags["dagster/partition"]].update(
                    {e.check_name: e.passed for e in evaluations}
                )
            for delivery, delivery_checks in checks_by_delivery.items():
                assert reviews_checks <= set(delivery_checks), (delivery, delivery_checks)
                assert all(delivery_checks.values()), (delivery, delivery_checks)

            # The 6-hourly quality job re-evaluates the unpartitioned assets' checks on what make run left,
            # recomputing nothing (the reviews checks run per delivery, in the runs above).
            keys = [
                dg.AssetKey(path)
                for path in (
                    ["cleaned", "reviews"],
                    ["embedded", "reviews"],
                    ["training", "user_purchase_training_set"],
                )
            ]
            before = {key: instance.get_latest_materialization_event(key).run_id for key in keys}
            with pytest.MonkeyPatch.context() as monkeypatch:
                monkeypatch.setenv("PLATFORM_DATA_DIR", str(data_dir))
                from platform_assets.definitions import build_defs

                result = (
                    build_defs()
                    .resolve_job_def("quality_job")
                    .execute_in_process(instance=instance, raise_on_error=False)
                )
            assert result.success, [
                e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure
            ]
            assert result.get_asset_materialization_events() == []
            evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
            assert {
                "training_set_contract",
                "feast_registry_matches_code",
                "calibration_meets_target",
            } <= set(evaluations)
            assert not reviews_checks & set(evaluations)
            assert all(evaluations.values()), evaluations
            assert {key: instance.get_latest_materialization_event(key).run_id for key in keys} == before
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous


GRAPH_QUERY = """
{
  assetNodes { assetKey { path } dependencyKeys { path } description
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
  sensorOrError(sensorSelector: {repositoryLocationName: "platform_assets", repositoryName: "__repository__",
                                 sensorName: "reviews_landing_sensor"}) { ... on Sensor { sensorState { status } } }
}
"""


def graphql(port: int, query: str) -> dict:
    response = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def test_dagster_dev_serves_the_graph_over_graphql(tmp_path: Path) -> None:
    data_dir = tmp_path / "platform"
    (data_dir / "dagster").mkdir(parents=True)
    (data_dir / "dagster" / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    port = free_port()
    log = (tmp_path / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=platform_environment(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # dagster dev ignores SIGTERM sent to it alone; signal the whole group
    )
    try:
        deadline = time.monotonic() + 180
        status = None
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "dagster-dev.log").read_text()
            try:
                entries = graphql(
                    port, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
                )
                status = {e["name"]: e["loadStatus"] for e in entries["workspaceOrError"]["locationEntries"]}
                if status.get("platform_assets") == "LOADED":
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        assert status == {"platform_assets": "LOADED"}, (tmp_path / "dagster-dev.log").read_text()[-3000:]

        data = graphql(port, GRAPH_QUERY)
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        assert {"raw/reviews", "cleaned/reviews", "quarantine/reviews", "embedded/reviews"} <= set(nodes)
        assert {"raw/user_events", "features/user_stats", "training/user_purchase_training_set"} <= set(nodes)
        assert [d["path"] for d in nodes["embedded/reviews"]["dependencyKeys"]] == [["cleaned", "reviews"]]
        checks = {c["name"]: c["blocking"] for c in nodes["cleaned/reviews"]["assetChecksOrError"]["checks"]}
        assert checks["row_accounting"] is True
        assert all(node["description"] for node in nodes.values())
        assert data["sensorOrError"]["sensorState"]["status"] == "RUNNING"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
