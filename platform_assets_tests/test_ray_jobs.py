"""RAY_ADDRESS=http://<dashboard> → the embedding runs as a Ray job on that cluster, through Dagster Pipes.

A real two-node Ray cluster on loopback (`platform_assets.lib.ray_cluster`: a head without CPUs on 127.0.0.2,
a worker with two CPUs on 127.0.0.3, the job API on 127.0.0.1) and a real `dagster dev` whose environment names
the cluster's job API. reviews_job is launched over GraphQL, delivery by delivery, as an operator would:

- the embedding step submits a Ray job, which the cluster's job API lists as SUCCEEDED;
- the job's model actors ran on the worker node (the head has no CPUs), as Ray's state API and the asset's
  metadata both say;
- the vectors in LanceDB equal an in-process encode of the same texts (cosine >= 0.999);
- a second run of the delivery embeds nothing;
- terminating a Dagster run whose job is embedding stops the job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from platform_assets.lib.ray_cluster import LocalRayCluster, local_ray_cluster
from platform_assets.ops.graphql_client import DagsterWebserver
from platform_assets_tests.conftest import PROJECT_ROOT, free_port
from platform_assets_tests.fixtures.dagster_dev import DagsterDev, dagster_dev

pytestmark = pytest.mark.slow
LOCATION = "platform_assets_tests.fixtures.reviews_location"
INSTANCE_YAML = """
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 1
    dequeue_interval_seconds: 1
"""
SMALL = "ray_jobs_small.csv"
# Enough texts that its job is still embedding when the test cancels the run (2 CPUs: about 100 texts/s).
LARGE = "ray_jobs_large.csv"
LARGE_ROWS = 6000
FAILING = "ray_jobs_failing.csv"
RUN_TIMEOUT = 600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRayCluster]:
    with local_ray_cluster(worker_cpus=2, log_dir=tmp_path_factory.mktemp("ray-cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def server(cluster: LocalRayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    root = tmp_path_factory.mktemp("ray-jobs")
    extra_env = {
        "RAY_ADDRESS": cluster.dashboard_url,
        # The session's ONNX export: the job finds it (ray_job_env passes the setting on) instead of exporting.
        "PLATFORM_MODEL_CACHE_DIR": os.environ["PLATFORM_MODEL_CACHE_DIR"],
    }
    with dagster_dev(
        root, LOCATION, LOCATION, free_port(), INSTANCE_YAML, cwd=PROJECT_ROOT, extra_env=extra_env
    ) as running:
        yield running


def deliver(server: DagsterDev, name: str, rows: int, seed: int) -> list[str]:
    """Land a delivery of sample reviews and register its partition; return its texts."""
    import dagster as dg

    from platform_assets.defs.reviews.partitions import review_deliveries
    from platform_assets.defs.reviews.sample_data import generate_reviews

    landing = server.data_dir / "landing" / "reviews"
    landing.mkdir(parents=True, exist_ok=True)
    frame = generate_reviews(rows, seed=seed)
    # The sample's ids repeat from one generated file to the next: each delivery gets its own, so that no
    # delivery is mostly duplicates of an earlier one.
    frame["review_id"] = Path(name).stem + "-" + frame["review_id"].astype(str)
    frame.to_csv(landing / name, index=False)
    with dg.DagsterInstance.from_config(str(server.dagster_home)) as instance:
        instance.add_dynamic_partitions(review_deliveries.name, [name])
    return frame["text"].tolist()


def launch(server: DagsterDev, delivery: str) -> str:
    return DagsterWebserver(server.url).launch(job="reviews_job", partition=delivery)["run_id"]


def run_failure(server: DagsterDev, run_id: str) -> str:
    """The run's errors and warnings, for assertion messages."""
    logs = DagsterWebserver(server.url).logs(run_id, level="WARNING")
    return "\n".join(str(event) for event in logs)[-6000:] + "\n" + server.log_tail(3000)


def outputs_of(server: DagsterDev, run_id: str, asset: str = "embedded/reviews") -> dict:
    """The metadata of the run's materialization of `asset`."""
    outputs = DagsterWebserver(server.url).outputs(run_id)
    (materialization,) = [m for m in outputs.materializations if m["asset_key"] == asset]
    return {**materialization["metadata"], "dagster/row_count": materialization["row_count"]}


def ray_jobs_of(cluster: LocalRayCluster, run_id: str, module: str = "platform_assets.jobs.embed") -> list:
    """The Ray jobs a Dagster run submitted that run `module`."""
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(cluster.dashboard_url).list_jobs()
    return [
        job
        for job in jobs
        if (job.metadata or {}).get("dagster/run-id") == run_id and f"-m {module} " in job.entrypoint
    ]


def stored_vectors(server: DagsterDev, delivery: str) -> tuple[list[str], np.ndarray]:
    """The delivery's texts and vectors as LanceDB holds them."""
    from platform_assets.lib.vector_store import connect_lancedb, equals_any, read_columns

    table = connect_lancedb(str(server.data_dir / "lancedb")).open_table("reviews")
    frame = read_columns(table, ["text", "vector"], where=equals_any("_source_file", [delivery])).to_pandas()
    return frame["text"].tolist(), np.stack(frame["vector"].to_numpy()).astype(np.float32)


def test_the_embedding_runs_as_a_ray_job_on_the_cluster(server: DagsterDev, cluster: LocalRayCluster) -> None:
    from ray.job_submission import JobStatus
    from ray.util.state import list_actors, list_nodes

    from platform_assets.lib.embedding.policy import load_encoder, resolve_backend

    deliver(server, SMALL, rows=300, seed=7)
    client = DagsterWebserver(server.url)
    first = launch(server, SMALL)
    assert client.wait(first, timeout=RUN_TIMEOUT) == "SUCCESS", run_failure(server, first)

    # The step submitted one Ray job, which the cluster's job API lists as SUCCEEDED.
    (job,) = ray_jobs_of(cluster, first)
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert "platform_assets.jobs.embed" in job.entrypoint and SMALL in job.entrypoint

    # Its model actors ran on the worker node: the state API says so, and so does the asset's metadata.
    nodes = {node.node_id: node.node_ip for node in list_nodes(address=cluster.dashboard_url)}
    actors = list_actors(
        address=cluster.dashboard_url, filters=[("job_id", "=", job.job_id)], detail=True, limit=1000
    )
    encoders = [actor for actor in actors if "RayTableEncoder" in (actor.class_name or "")]
    if not encoders:  # Ray Data names its pool actors after the map step, not the class
        encoders = [actor for actor in actors if "MapWorker" in (actor.class_name or "")]
    assert encoders, [actor.class_name for actor in actors]
    assert {nodes[actor.node_id] for actor in encoders} == {cluster.worker_ip}
    metadata = outputs_of(server, first)
    assert metadata["ray_nodes"] == [cluster.worker_ip]
    embedded_rows = metadata["embedded_rows"]
    assert embedded_rows == metadata["dagster/row_count"] > 200  # every cleaned review, a few quarantined

    # The vectors equal an in-process encode of the same texts.
    texts, vectors = stored_vectors(server, SMALL)
    assert len(texts) == embedded_rows
    reference = load_encoder(resolve_backend(device="cpu")).encode(texts)
    cosine = np.sum(vectors * reference, axis=1)
    assert cosine.min() >= 0.999, cosine.min()

    # A second run of the delivery embeds nothing (its job still runs, and reuses every vector).
    second = launch(server, SMALL)
    assert client.wait(second, timeout=RUN_TIMEOUT) == "SUCCESS", run_failure(server, second)
    again = outputs_of(server, second)
    assert again["embedded_rows"] == 0 and again["reused_rows"] == embedded_rows
    assert again["updated_without_embedding_rows"] == 0 and again["deleted_rows"] == 0
    (rerun_job,) = ray_jobs_of(cluster, second)
    assert rerun_job.status == JobStatus.SUCCEEDED


def test_the_cleaning_runs_as_a_ray_job_with_daft_on_the_cluster(
    server: DagsterDev, cluster: LocalRayCluster
) -> None:
    """The first test's run also cleaned its delivery as a Ray job: both tables committed by the job, the
    step's metadata and blocking checks as in process, Daft's work on the worker node."""
    from ray.job_submission import JobStatus, JobSubmissionClient
    from ray.util.state import list_nodes, list_tasks

    client = DagsterWebserver(server.url)
    runs = [
        run
        for run in client.list_runs(statuses=["SUCCESS"], limit=50)
        if run["tags"].get("dagster/partition") == SMALL
    ]
    assert runs, "test_the_embedding_runs_as_a_ray_job_on_the_cluster runs first and materializes SMALL"
    run_id = runs[-1]["run_id"]
    (job,) = ray_jobs_of(cluster, run_id, module="platform_assets.jobs.clean")
    assert job.status == JobStatus.SUCCEEDED, job.message
    cleaned = outputs_of(server, run_id, "cleaned/reviews")
    quarantine = outputs_of(server, run_id, "quarantine/reviews")
    raw_rows = outputs_of(server, run_id, "raw/reviews")["dagster/row_count"]
    assert cleaned["raw_rows"] == quarantine["raw_rows"] == raw_rows >= 300
    assert cleaned["dagster/row_count"] + quarantine["dagster/row_count"] == raw_rows
    assert sum(quarantine["reasons"].values()) == quarantine["dagster/row_count"] > 0
    assert cleaned["lake/snapshot_id"] and cleaned["quality/score"] > 0
    # The blocking checks ran in the step on what the job committed, and passed.
    checks = {
        c["check_name"]: c["passed"]
        for c in client.outputs(run_id).checks
        if c["asset_key"] == "cleaned/reviews"
    }
    assert checks.get("row_accounting") and checks.get("cleaned_contract") and checks.get("cleaned_yield"), (
        checks
    )
    # Daft ran on the cluster's Ray (its Ray runner's Swordfish actors), and the worker node did the work.
    nodes = {node.node_id: node.node_ip for node in list_nodes(address=cluster.dashboard_url)}
    tasks = list_tasks(address=cluster.dashboard_url, filters=[("job_id", "=", job.job_id)], limit=10000)
    daft_tasks = [task for task in tasks if "Swordfish" in (task.name or "")]
    assert daft_tasks, sorted({task.name for task in tasks})
    assert cluster.worker_ip in {nodes[task.node_id] for task in daft_tasks if task.node_id}
    assert "cleaned " in JobSubmissionClient(cluster.dashboard_url).get_job_logs(job.submission_id)


def test_cancelling_the_run_stops_its_ray_job(server: DagsterDev, cluster: LocalRayCluster) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    deliver(server, LARGE, rows=LARGE_ROWS, seed=11)
    client = DagsterWebserver(server.url)
    run_id = launch(server, LARGE)
    jobs = JobSubmissionClient(cluster.dashboard_url)

    # Wait until the job is embedding: running, and its log says it started on the delivery.
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        assert time.monotonic() < deadline, run_failure(server, run_id)
        assert client.status(run_id) not in ("SUCCESS", "FAILURE", "CANCELED"), run_failure(server, run_id)
        submitted = ray_jobs_of(cluster, run_id)
        running = bool(submitted) and submitted[0].status == JobStatus.RUNNING
        if running and f"embedding delivery {LARGE}" in jobs.get_job_logs(submitted[0].submission_id):
            break
        time.sleep(1)
    (job,) = submitted

    client.cancel(run_id)
    assert client.wait(run_id, timeout=120) == "CANCELED", run_failure(server, run_id)
    deadline = time.monotonic() + 60
    while (status := jobs.get_job_status(job.submission_id)) == JobStatus.RUNNING:
        assert time.monotonic() < deadline, "the Ray job kept running after its Dagster run was cancelled"
        time.sleep(1)
    assert status == JobStatus.STOPPED, jobs.get_job_info(job.submission_id).message
    # Nothing of the cancelled delivery was half-reported as materialized.
    assert not [m for m in client.outputs(run_id).materializations if m["asset_key"] == "embedded/reviews"]


def test_a_failing_job_fails_the_step_with_its_error(server: DagsterDev, cluster: LocalRayCluster) -> None:
    from ray.job_submission import JobStatus

    deliver(server, FAILING, rows=40, seed=3)
    client = DagsterWebserver(server.url)
    # A backend the job cannot resolve: the step only passes the embedder's config on, the job raises.
    run_id = client.launch(
        job="reviews_job",
        partition=FAILING,
        run_config={"resources": {"embedder": {"config": {"backend": "no-such-backend"}}}},
    )["run_id"]
    assert client.wait(run_id, timeout=RUN_TIMEOUT) == "FAILURE"
    jobs = ray_jobs_of(cluster, run_id)
    assert len(jobs) == 1, run_failure(server, run_id)
    (job,) = jobs
    assert job.status == JobStatus.FAILED
    errors = [event for event in client.logs(run_id, level="ERROR") if event.step_key == "embedded__reviews"]
    reported = "\n".join(f"{event.message}\n{event.error or ''}" for event in errors)
    assert "'no-such-backend' is not an embedding backend" in reported, reported[-4000:]
    assert job.submission_id in reported
