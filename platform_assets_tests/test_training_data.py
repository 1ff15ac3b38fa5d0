"""Training data out, end to end: the reviews corpus published as versions with manifests, registered in a real
metadata center, pinned after new data lands, rebuilt from its manifest, compared with `diff`, and loaded with
`to_torch` / `to_ray`; the `platform datasets` commands on the same versions."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from platform_assets.cli import main as platform_cli
from platform_assets.definitions import defs
from platform_assets.defs.reviews.contract import CURATED_LANCEDB_TABLE as LANCEDB_TABLE
from platform_assets.defs.reviews.sample_data import write_sample_reviews
from platform_assets.defs.training.assets import PUBLISHED_REVIEWS_CORPUS
from platform_assets.defs.training.contract import REVIEWS_CORPUS, REVIEWS_CORPUS_COLUMNS
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.dataset_versions import MANIFEST_KEY, rebuild_digest
from platform_assets.lib.processes import free_port
from platform_assets.lib.resources import shared_resources
from platform_assets.lib.vector_store import connect_lancedb, open_table
from platform_assets.metadata_center.client import MetadataCenterClient
from platform_assets.sdk import Dataset
from platform_assets_tests.conftest import PROJECT_ROOT, point_platform_at
from platform_assets_tests.metadata_center_fixture import RunningMetadataCenter, metadata_center
from platform_assets_tests.test_reviews_e2e import run_reviews

pytestmark = pytest.mark.slow
CORPUS = REVIEWS_CORPUS.dataset_id
FIRST, LATER = ["reviews_sample_001.csv"], ["reviews_sample_002.jsonl"]
EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "train_distributed.py"


@dataclass
class Versions:
    """The module's platform after two publications of the corpus: v1 from the first delivery, v2 after the next."""

    settings: PlatformSettings
    service: RunningMetadataCenter
    instance: dg.DagsterInstance
    v1: Dataset
    v2: Dataset
    v1_ids: list[str]
    republished: dg.ExecuteInProcessResult


def publish(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=[PUBLISHED_REVIEWS_CORPUS],
        resources={**defs.resources, **shared_resources()},
        instance=instance,
    )


def corpus_ids(dataset: Dataset) -> list[str]:
    return dataset.read(as_arrow=True, columns=["review_id"]).column("review_id").to_pylist()


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versions]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        data_dir = tmp_path_factory.mktemp("training") / "platform"
        settings = point_platform_at(monkeypatch, data_dir)
        write_sample_reviews(settings.landing_dir_for("reviews"), rows=240)
        with metadata_center(data_dir / "mc", storage_roots=list(settings.storage_roots)) as service:
            monkeypatch.setenv("METADATA_CENTER_URL", service.url)
            monkeypatch.setenv("METADATA_CENTER_API_KEY", service.api_key)
            instance = dg.DagsterInstance.ephemeral()
            run_reviews(instance, FIRST)
            publish(instance)
            v1 = Dataset.get(CORPUS, version=1)
            v1_ids = corpus_ids(v1)
            # New data lands, and the corpus gets its next version.
            run_reviews(instance, LATER)
            publish(instance)
            # Nothing changed since: re-publishing registers nothing.
            republished = publish(instance)
            yield Versions(
                settings, service, instance, v1, Dataset.get(CORPUS, version=2), v1_ids, republished
            )


def test_each_publication_is_a_registered_version_with_a_manifest(versions: Versions) -> None:
    v1, v2 = versions.v1, versions.v2
    assert Dataset.get(CORPUS).version == 2
    assert 0 < v1.row_count < v2.row_count
    assert len(versions.v1_ids) == v1.row_count == len(set(versions.v1_ids))
    assert "training-ready" in v1.tags
    assert [c["name"] for c in v1.columns] == list(REVIEWS_CORPUS_COLUMNS)
    assert {c["name"]: c["type"] for c in v1.columns}["vector"] == "array<float>"

    manifest = v1.manifest
    lance = open_table(connect_lancedb(), LANCEDB_TABLE)
    (lance_version,) = manifest["inputs"]["lancedb"].values()
    assert manifest["build"]["version"] == lance_version < lance.version
    assert list(manifest["inputs"]["lake"]) == ["curated.reviews"]
    assert manifest["code"]["package"] == "platform_assets" and manifest["code"]["version"]
    assert manifest["quality"]["checks"]["embedded_expectations"]["status"] == "PASSED"
    assert manifest["quality"]["checks"]["curation_accounting"]["status"] == "PASSED"
    metrics = manifest["metrics"]
    assert metrics["rows"] == v1.row_count
    assert metrics["label"] == "rating"
    assert abs(sum(metrics["label_balance"].values()) - 1) < 1e-4  # shares rounded to 6 places
    assert 1 <= metrics["mean"]["rating"] <= 5
    # The Lance version the manifest names is pinned: a clean-up keeps it.
    assert lance.tags.list()[manifest["pin"]]["version"] == lance_version

    # Every registration is visible to the Cube Studio side, with lineage to the inputs.
    lineage = v2.lineage()["lineage"]["upstream"]
    assert any(t.startswith(f"lancedb:{LANCEDB_TABLE}@v") for t in lineage["source_tables"])
    assert "embedded/reviews" in lineage["dagster_assets"]

    # The published version's check: its file holds the registered rows and digest, its inputs are pinned.
    (evaluation,) = versions.republished.get_asset_check_evaluations()
    assert evaluation.check_name == "version_intact" and evaluation.passed, evaluation.description

    # Unchanged rows: no new version, no new directory.
    (event,) = versions.republished.get_asset_materialization_events()
    assert event.materialization.metadata["new_version"].value is False
    assert event.materialization.metadata["version"].value == 2
    published = Path(versions.settings.lake_uri) / "published" / CORPUS
    assert sorted(p.name for p in published.iterdir()) == ["v1", "v2"]


def test_the_registrations_sensor_leaves_the_platforms_own_versions_alone(versions: Versions) -> None:
    from platform_assets.defs.registrations.resources import MetadataCenterResource
    from platform_assets.defs.registrations.sensors import alldata_registrations_sensor

    context = dg.build_sensor_context(
        instance=versions.instance, cursor="0", resources={"metadata_center": MetadataCenterResource()}
    )
    result = alldata_registrations_sensor(context)
    # Two versions of the corpus registered, none of them taken for a dataset to land and clean.
    assert result.run_requests == [] and result.dynamic_partitions_requests == []
    assert result.cursor == "2"


def test_an_old_version_is_pinned_and_rebuilds_identically_after_new_data(versions: Versions) -> None:
    v1 = versions.v1
    # The files of v1 are as they were, and so is what the loader reads from them.
    assert corpus_ids(v1) == versions.v1_ids
    loaded = [
        i
        for batch in v1.to_torch(batch_size=32, columns=["review_id"], shuffle=False)
        for i in batch["review_id"]
    ]
    assert loaded == versions.v1_ids
    # Rebuilt from its manifest (the pinned Lance version), though the table has moved on: the same rows.
    digest, rows = rebuild_digest(v1.manifest)
    assert (digest, rows) == (v1.metadata["content_sha256"], v1.row_count)
    current = open_table(connect_lancedb(), LANCEDB_TABLE).count_rows()
    assert current > rows


def test_loader_batches_are_tensors_from_the_version(versions: Versions) -> None:
    import torch

    v2 = versions.v2
    loader = v2.to_torch(batch_size=64, columns=["review_id", "rating", "vector"], seed=3)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-v2.row_count // 64)
    first = batches[0]
    assert first["vector"].dtype == torch.float32 and tuple(first["vector"].shape) == (64, 384)
    assert first["rating"].dtype == torch.int64
    norms = torch.linalg.vector_norm(first["vector"], dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-3)
    # The vectors are the stored ones, row for row.
    stored = pq.read_table(v2.files()[0].path, columns=["review_id", "vector"]).to_pydict()
    by_id = dict(zip(stored["review_id"], stored["vector"], strict=True))
    for review_id, vector in zip(first["review_id"], first["vector"], strict=True):
        np.testing.assert_allclose(vector.numpy(), np.asarray(by_id[review_id], dtype=np.float32))


def test_datasets_commands_list_show_diff_and_verify(versions: Versions) -> None:
    runner = CliRunner()

    listed = runner.invoke(platform_cli, ["datasets", "versions", CORPUS, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["version"] for r in rows] == [1, 2]
    assert [r["rows"] for r in rows] == [versions.v1.row_count, versions.v2.row_count]

    shown = runner.invoke(platform_cli, ["datasets", "show", CORPUS, "--version", "1"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["metadata"][MANIFEST_KEY] == versions.v1.manifest

    diffed = runner.invoke(platform_cli, ["datasets", "diff", CORPUS, "1", "2", "--json"])
    assert diffed.exit_code == 0, diffed.output
    diff = json.loads(diffed.output)
    assert diff["versions"] == [1, 2] and diff["same_rows"] is False
    assert diff["schema"] == {"added": {}, "removed": {}, "changed": {}}
    by_metric = {m["metric"]: m for m in diff["metrics"]}
    assert by_metric["rows"]["change"] == versions.v2.row_count - versions.v1.row_count
    assert "mean.rating" in by_metric and "label_balance.5" in by_metric
    table = runner.invoke(platform_cli, ["datasets", "diff", CORPUS, "1", "2"])
    assert table.exit_code == 0 and "mean.rating" in table.output

    verified = runner.invoke(platform_cli, ["datasets", "verify", CORPUS, "--version", "1"])
    assert verified.exit_code == 0, verified.output
    assert "rebuilt" in verified.output and versions.v1.metadata["content_sha256"][:12] in verified.output

    missing = runner.invoke(platform_cli, ["datasets", "diff", CORPUS, "1", "9"])
    assert missing.exit_code != 0 and "no version 9" in missing.output


def test_to_ray_reads_the_version(versions: Versions) -> None:
    from platform_assets.lib.ray_resource import RayResource

    RayResource().connect()  # the session's local Ray (started once, shared)
    if True:
        dataset = versions.v1.to_ray(columns=["review_id", "vector"])
        assert dataset.count() == versions.v1.row_count
        ids = [
            i
            for batch in dataset.iter_batches(batch_format="pyarrow")
            for i in batch["review_id"].to_pylist()
        ]
        assert sorted(ids) == sorted(versions.v1_ids)
        (batch,) = dataset.select_columns(["vector"]).limit(4).iter_torch_batches(batch_size=4)
        assert tuple(batch["vector"].shape) == (4, 384)


def run_distributed_example(tmp_path: Path, *arguments: str) -> dict:
    """docs/examples/train_distributed.py in two processes (torchrun, gloo on loopback); rank 0's report."""
    report = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        str(EXAMPLE),
        *arguments,
        f"--model-dir={tmp_path / 'models'}",
        f"--report={report}",
    ]
    # Gloo on the loopback interface only; the platform's settings come from this process's environment.
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(report.read_text())


def test_the_distributed_training_example_reads_disjoint_shards_and_records_lineage(
    versions: Versions, tmp_path: Path
) -> None:
    v2 = versions.v2
    report = run_distributed_example(
        tmp_path,
        f"--dataset={CORPUS}",
        "--version=2",
        "--task=rating",
        "--epochs=4",
        "--job-id=train-ratings-1",
    )
    # Two ranks, disjoint shards covering every row of the version in an epoch.
    assert report["version"] == 2 and len(report["rows_per_rank"]) == 2
    assert sum(report["rows_per_rank"]) == report["distinct_rows"] == v2.row_count
    assert min(report["rows_per_rank"]) > 0
    # It learned something: the loss fell from the first epoch to the last.
    assert report["losses"][-1] < report["losses"][0]
    assert Path(report["model_path"]).is_file()
    # The metadata center knows what was trained on which version.
    downstream = v2.lineage()["lineage"]["downstream"]
    assert "train-ratings-1" in downstream["training_jobs"]
    assert report["model"] in downstream["models"]
    model = MetadataCenterClient().get_lineage(report["model"])["lineage"]["upstream"]
    assert model["datasets"] == [f"{CORPUS}@v2"]
