"""Embedding backends against the real model: ONNX fp32 matches torch, int8 is close but not the same, the
export cache is reused and rebuilt when damaged, and a table switched to int8 is re-embedded whole.

Every test shares one model cache (the `model_cache_dir` session fixture), so the ONNX export runs once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from platform_assets.defs.reviews.assets import (
    EMBEDDED,
    LANCEDB_TABLE,
    cleaned_reviews,
    embedded_reviews,
    raw_reviews,
)
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN, review_deliveries
from platform_assets.lib import embedding as emb
from platform_assets.lib.config import PlatformSettings, get_settings
from platform_assets.lib.embedding import TextEmbedder, export_cache
from platform_assets.lib.lake import open_catalog, write_table
from platform_assets.lib.ray_resource import RayResource
from platform_assets.lib.resources import shared_resources
from platform_assets.lib.vector_store import connect_lancedb, open_table, read_columns

pytestmark = pytest.mark.slow

SENTENCES = [
    "The battery dies too fast and the charger gets hot.",
    "Lovely colour, but the fabric pilled after the first wash.",
    "Setup was painless and the app has been reliable for months.",
    "It arrived late, the box was dented, and one screw was missing.",
    "Customer support replaced the faulty unit within two days.",
]


def texts_of_every_length() -> list[str]:
    """Texts unlike the verification sample: 1 word up to past the 256-token limit (the export used 16)."""
    long = " ".join(SENTENCES * 3)  # about 200 tokens
    over_long = " ".join(SENTENCES * 8)  # truncated to 256 tokens by both backends
    return ["Fine", "Meh.", *SENTENCES, " ".join(SENTENCES[:2]), long, over_long, "Qualité médiocre 😞"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def builds_logged(caplog: pytest.LogCaptureFixture, file_name: str) -> int:
    """How many times this process built `file_name` while `caplog` listened (one "built …" line each)."""
    return sum(record.getMessage().startswith(f"built {file_name} ") for record in caplog.records)


@pytest.fixture(scope="module")
def exported(model_cache_dir: Path) -> dict[str, object]:
    """Resolve onnx and onnx-int8 once (exporting into the session's cache) and time it."""
    emb.forget_resolved_backends()
    started = time.perf_counter()
    onnx = emb.resolve_backend("onnx", device="cpu")
    int8 = emb.resolve_backend("onnx-int8", device="cpu")
    return {"onnx": onnx, "int8": int8, "seconds": time.perf_counter() - started}


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return emb.TorchEncoder(device="cpu").encode(texts_of_every_length())


def test_onnx_fp32_matches_torch_at_every_length(exported: dict, torch_vectors: np.ndarray) -> None:
    spec = exported["onnx"]
    assert spec.backend == "onnx" and spec.space_id == emb.FP32_SPACE
    assert spec.agreement["mean_cosine"] >= 0.999
    encoder = spec.load()
    texts = texts_of_every_length()
    # One padded batch of every length, and one text per call: both must give torch's vectors.
    together = encoder.encode(texts, batch_size=len(texts))
    alone = np.stack([encoder.encode([text])[0] for text in texts])
    for vectors in (together, alone):
        assert vectors.dtype == np.float32 and vectors.shape == (len(texts), emb.EMBEDDING_DIM)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        similarity = cosines(vectors, torch_vectors)
        assert similarity.mean() >= 0.999 and similarity.min() >= 0.999, similarity


def test_auto_picks_verified_onnx_on_cpu(exported: dict) -> None:
    auto = emb.resolve_backend("auto", device="cpu")
    assert auto == exported["onnx"]
    assert "verified" in auto.reason
    # A GPU means torch fp16, in the same (fp32) space: no re-embedding when moving between them.
    gpu = emb.resolve_backend("auto", device="cuda")
    assert gpu.name == "torch-fp16-cuda" and gpu.space_id == emb.FP32_SPACE


def test_an_export_that_disagrees_is_refused(exported: dict, caplog: pytest.LogCaptureFixture) -> None:
    """Explicit onnx raises; auto falls back to torch and says why (the recorded verification decides)."""
    manifest_file = Path(exported["onnx"].model_file + ".json")
    original = manifest_file.read_text()
    manifest = json.loads(original)
    manifest["agreement"] = {**manifest["agreement"], "mean_cosine": 0.98, "min_cosine": 0.9}
    manifest_file.write_text(json.dumps(manifest))
    emb.forget_resolved_backends()
    try:
        with pytest.raises(emb.BackendError, match=r"disagrees with torch.*mean cosine 0.98"):
            emb.resolve_backend("onnx", device="cpu")
        with caplog.at_level("WARNING", logger="platform_assets.embedding"):
            auto = emb.resolve_backend("auto", device="cpu")
        assert auto.name == "torch-fp32" and auto.space_id == emb.FP32_SPACE
        assert "ONNX unusable" in auto.reason and "disagrees with torch" in caplog.text
    finally:
        manifest_file.write_text(original)
        emb.forget_resolved_backends()
    assert emb.resolve_backend("auto", device="cpu") == exported["onnx"]


def test_int8_is_close_but_not_identical(exported: dict, torch_vectors: np.ndarray) -> None:
    spec = exported["int8"]
    assert spec.backend == "onnx-int8" and spec.space_id == emb.INT8_SPACE != emb.FP32_SPACE
    assert Path(spec.model_file).name == emb.INT8_FILE
    assert 0.95 <= spec.agreement["mean_cosine"] < 0.9999, spec.agreement
    vectors = spec.load().encode(texts_of_every_length())
    similarity = cosines(vectors, torch_vectors)
    assert similarity.mean() >= 0.95, similarity
    # A backend that silently fell back to fp32 would agree to 1e-6: int8 must not.
    assert similarity.mean() < 0.9999 and np.abs(vectors - torch_vectors).max() > 1e-3, similarity


def test_export_is_cached_and_reused(exported: dict, caplog: pytest.LogCaptureFixture) -> None:
    files = [Path(exported["onnx"].model_file), Path(exported["int8"].model_file)]
    files += [f.with_name(f.name + ".json") for f in files]
    before = {f: f.stat().st_mtime_ns for f in files}
    emb.forget_resolved_backends()  # only the disk cache is left to find
    started = time.perf_counter()
    with caplog.at_level("INFO", logger="platform_assets.embedding"):
        again = emb.resolve_backend("onnx-int8", device="cpu")
        assert emb.resolve_backend("onnx", device="cpu") == exported["onnx"]
    elapsed = time.perf_counter() - started
    assert again == exported["int8"]
    assert builds_logged(caplog, emb.FP32_FILE) == builds_logged(caplog, emb.INT8_FILE) == 0
    assert {f: f.stat().st_mtime_ns for f in files} == before
    print(f"export + quantise + verify: {exported['seconds']:.1f} s; cached resolve: {elapsed:.2f} s")


def test_cache_key_follows_library_versions(monkeypatch: pytest.MonkeyPatch, exported: dict) -> None:
    current = emb.cache_dir()
    assert Path(exported["onnx"].model_file).parent == current
    versions = {**export_cache._package_versions(), "onnxruntime": "0.0.1"}
    monkeypatch.setattr(export_cache, "_package_versions", lambda: versions)
    assert emb.cache_dir() != current  # an export made with other libraries is never picked up


def test_corrupt_or_stale_cache_file_is_rebuilt(exported: dict, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="platform_assets.embedding")
    int8_file = Path(exported["int8"].model_file)
    good = emb.read_manifest(int8_file)

    # Corrupt: same size, different bytes (a size check alone would miss it).
    data = bytearray(int8_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    int8_file.write_bytes(bytes(data))
    emb.forget_resolved_backends()
    rebuilt = emb.resolve_backend("onnx-int8", device="cpu")
    assert builds_logged(caplog, emb.INT8_FILE) == 1
    manifest = emb.read_manifest(int8_file)
    assert manifest["sha256"] == export_cache.sha256_file(int8_file) and manifest["size"] == good["size"]
    assert rebuilt.load().encode(["still works"]).shape == (1, emb.EMBEDDING_DIM)

    # Stale: the manifest says it was quantised from another fp32 export.
    manifest["source_sha256"] = "0" * 64
    int8_file.with_name(int8_file.name + ".json").write_text(json.dumps(manifest))
    emb.forget_resolved_backends()
    emb.resolve_backend("onnx-int8", device="cpu")
    assert builds_logged(caplog, emb.INT8_FILE) == 2
    assert builds_logged(caplog, emb.FP32_FILE) == 0  # the fp32 export it was made from was kept
    assert (
        emb.read_manifest(int8_file)["source_sha256"]
        == emb.read_manifest(Path(exported["onnx"].model_file))["sha256"]
    )


class FakeGpuEncoder:
    """Stands in for a CUDA TorchEncoder: fp16 output is fp32's plus `fp16_error` of noise."""

    def __init__(self, fp16_error: float) -> None:
        self.device, self.precision, self.fp16_error = "cuda", "fp32", fp16_error
        self.name, self.space_id = "fake", emb.FP32_SPACE

    def use_fp16(self, enabled: bool) -> None:
        self.precision = "fp16" if enabled else "fp32"

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        vectors = np.stack(
            [np.random.default_rng(len(text)).normal(size=emb.EMBEDDING_DIM) for text in texts]
        )
        if self.precision == "fp16":
            vectors += np.random.default_rng(0).normal(scale=self.fp16_error, size=vectors.shape)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize(("fp16_error", "kept"), [(1e-4, "fp16"), (0.2, "fp32")])
def test_gpu_fp16_is_kept_only_when_it_agrees_with_fp32(
    fp16_error: float, kept: str, caplog: pytest.LogCaptureFixture
) -> None:
    """fp16 shares the fp32 space, so it must clear the same bar as ONNX, else the encoder stays in fp32."""
    from platform_assets.lib.embedding.verification import use_verified_fp16

    encoder = FakeGpuEncoder(fp16_error)
    with caplog.at_level("WARNING", logger="platform_assets.embedding"):
        measured = use_verified_fp16(encoder)
    assert encoder.precision == kept
    assert emb.agrees_exactly(measured) == (kept == "fp16")
    assert ("disagrees with fp32" in caplog.text) == (kept == "fp32")


RESOLVE_SCRIPT = """
import json
import logging
from pathlib import Path

from platform_assets.lib.runtime_env import apply_runtime_defaults

apply_runtime_defaults()
from platform_assets.lib import embedding as emb

built = []


class CountBuilds(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith(f"built {emb.INT8_FILE} "):
            built.append(record)


logger = logging.getLogger("platform_assets.embedding")
logger.setLevel(logging.INFO)
logger.addHandler(CountBuilds())
spec = emb.resolve_backend("onnx-int8", device="cpu")
manifest = emb.read_manifest(Path(spec.model_file))
print(json.dumps({"builds": len(built), "sha": manifest["sha256"]}))
"""


def test_concurrent_processes_build_once(exported: dict, tmp_path: Path) -> None:
    """Two processes that find the int8 model missing at the same time: one builds, the other waits for it."""
    int8_file = Path(exported["int8"].model_file)
    int8_file.unlink()
    int8_file.with_name(int8_file.name + ".json").unlink()
    script = tmp_path / "resolve.py"
    script.write_text(RESOLVE_SCRIPT)
    processes = [
        subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(report["builds"] for report in reports) == [0, 1]
    assert reports[0]["sha"] == reports[1]["sha"] == export_cache.sha256_file(int8_file)
    assert not list(int8_file.parent.glob(".*.tmp"))  # no partial files left behind
    emb.forget_resolved_backends()


def test_unknown_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_EMBED_BACKEND", "bogus")
    with pytest.raises(ValueError, match=r"PLATFORM_EMBED_BACKEND='bogus'.*auto, torch, onnx, onnx-int8"):
        _ = get_settings().embed_backend
    with pytest.raises(ValueError, match="PLATFORM_EMBED_BACKEND"):
        emb.resolve_backend()
    with pytest.raises(emb.BackendError, match="'fast'.*onnx-int8"):
        TextEmbedder(ray=RayResource(), backend="fast", gpus_per_actor=0).backend_spec()
    monkeypatch.setenv("PLATFORM_EMBED_BACKEND", " ONNX-int8 ")
    assert get_settings().embed_backend == "onnx-int8"


# ------------------------------------------------------------------------------- a table switched to int8

ROWS = 40
# The one delivery (a review_deliveries partition) the table's rows came in: embedded/reviews runs per delivery.
DELIVERY = "reviews_backends.csv"


def cleaned_frame() -> pd.DataFrame:
    texts = [
        f"{SENTENCES[i % 5]} Review number {i}, {'great' if i % 3 else 'poor'} overall." for i in range(ROWS)
    ]
    return pd.DataFrame(
        {
            "review_id": [f"r{i:03d}" for i in range(ROWS)],
            "product_id": [f"p{i % 4}" for i in range(ROWS)],
            "user_id": [f"u{i}" for i in range(ROWS)],
            "rating": [1 + i % 5 for i in range(ROWS)],
            "text": texts,
            "created_at": pd.to_datetime(["2026-01-01"] * ROWS, utc=True),
            "_source_file": DELIVERY,
        }
    )


def embed_with(backend: str, **embedder: object) -> dict:
    """Materialize embedded/reviews for DELIVERY (its cleaned input read from the lake) with `backend`; its
    metadata."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(review_deliveries.name, [DELIVERY])
    result = dg.materialize(
        [raw_reviews, cleaned_reviews, embedded_reviews],
        selection=[EMBEDDED],
        resources={
            **shared_resources(),
            "embedder": TextEmbedder(ray=RayResource(), backend=backend, gpus_per_actor=0, **embedder),
        },
        instance=instance,
        partition_key=DELIVERY,
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {key: value.value for key, value in event.materialization.metadata.items()}


def stored(settings: PlatformSettings) -> pd.DataFrame:
    table = connect_lancedb(settings.lancedb_uri).open_table(LANCEDB_TABLE)
    columns = ["review_id", "text", "vector", emb.EMBEDDING_SPACE_COLUMN]
    return read_columns(table, columns).to_pandas().set_index("review_id").sort_index()


def test_switching_a_table_to_int8_reembeds_every_row(
    platform_env: PlatformSettings, exported: dict, torch_vectors: np.ndarray
) -> None:
    frame = cleaned_frame()
    # cleaned/reviews is partitioned by delivery on _source_file: the rows go in as DELIVERY's partition.
    write_table(
        open_catalog(), "cleaned/reviews", frame, partition_column=DELIVERY_COLUMN, partition_key=DELIVERY
    )

    first = embed_with("onnx")
    assert first["embedded_rows"] == ROWS and first["reembedded_for_backend_change"] == 0
    assert (first["embedding_backend"], first["embedding_space"]) == ("onnx-fp32", emb.FP32_SPACE)
    fp32 = stored(platform_env)
    assert set(fp32[emb.EMBEDDING_SPACE_COLUMN]) == {emb.FP32_SPACE}

    # torch shares the verified fp32 space: nothing to embed again.
    same_space = embed_with("torch")
    assert same_space["embedded_rows"] == 0 and same_space["reused_rows"] == ROWS
    assert same_space["reembedded_for_backend_change"] == 0

    # int8, through Ray actors (inline_max_texts=0), which load the cached int8 file.
    switched = embed_with("onnx-int8", inline_max_texts=0)
    assert switched["embedded_rows"] == ROWS and switched["reused_rows"] == 0
    assert switched["reembedded_for_backend_change"] == ROWS
    assert (switched["embedding_backend"], switched["embedding_space"]) == ("onnx-int8", emb.INT8_SPACE)
    assert 0.95 <= switched["embedding_agreement_with_torch"]["mean_cosine"] < 0.9999
    int8 = stored(platform_env)
    assert len(int8) == ROWS and set(int8[emb.EMBEDDING_SPACE_COLUMN]) == {emb.INT8_SPACE}  # never mixed
    old, new = np.stack(fp32["vector"].to_numpy()), np.stack(int8["vector"].to_numpy())
    assert cosines(old, new).min() > 0.9 and not np.allclose(old, new, atol=1e-4)
    direct = exported["int8"].load().encode(int8["text"].tolist())
    assert cosines(direct, new).min() > 0.9999  # the actors ran the same int8 model

    again = embed_with("onnx-int8")
    assert again["embedded_rows"] == 0 and again["reembedded_for_backend_change"] == 0

    # Search embeds the query in the table's space (int8 here, though the environment still says auto).
    from platform_assets.defs.reviews.search import _embedding_space, semantic_search
    from platform_assets.lib.embedding import embed_query

    space = _embedding_space(open_table(connect_lancedb(), "reviews"))
    assert space == emb.INT8_SPACE
    text = int8["text"].iloc[0]
    query = embed_query(text, space=space)
    assert cosines(query[None, :], exported["int8"].load().encode([text])).min() > 0.9999
    assert cosines(query[None, :], exported["onnx"].load().encode([text])).min() < 0.9999
    assert len(semantic_search(text, k=3)) == 3


def test_embedder_default_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, exported: dict, platform_env: PlatformSettings
) -> None:
    embedder = TextEmbedder(ray=RayResource(), gpus_per_actor=0)
    assert embedder.vector_space() == emb.FP32_SPACE  # auto on CPU: verified ONNX fp32
    assert embedder.backend_spec() == exported["onnx"]
    monkeypatch.setenv("PLATFORM_EMBED_BACKEND", "onnx-int8")
    assert embedder.backend_spec() == exported["int8"]
    assert os.environ["PLATFORM_MODEL_CACHE_DIR"]  # the session cache survives point_platform_at
