"""Shared fixtures: an isolated PLATFORM_DATA_DIR per test, a real S3 endpoint (moto server) on loopback."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from platform_assets.lib.config import PlatformSettings, get_settings
from platform_assets.lib.processes import free_port  # noqa: F401 - the tests import it from here
from platform_assets.lib.runtime_env import apply_runtime_defaults

# The test session is a process start: set the environment before anything heavy loads.
apply_runtime_defaults()

# The session's own data directory, set before any test imports the definitions (whose resources resolve
# their paths when they load): a test that forgets to isolate itself never writes into a developer's
# ./.platform. Tests that need a directory of their own use `point_platform_at` / `platform_env`.
SESSION_DATA_DIR = Path(tempfile.mkdtemp(prefix="platform-tests-"))
os.environ["PLATFORM_DATA_DIR"] = str(SESSION_DATA_DIR)
os.environ["DAGSTER_HOME"] = str(SESSION_DATA_DIR / "dagster")
(SESSION_DATA_DIR / "dagster").mkdir()
atexit.register(shutil.rmtree, SESSION_DATA_DIR, ignore_errors=True)

PLATFORM_VARIABLES = (
    "PLATFORM_DATA_DIR",
    "PLATFORM_LAKE_URI",
    "PLATFORM_LANCEDB_URI",
    "RAY_ADDRESS",
    "DAFT_RUNNER",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "DAGSTER_HOME",
    "PLATFORM_STORAGE_ROOTS",
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def point_platform_at(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> PlatformSettings:
    """Isolate the platform's configuration in `data_dir` (nothing inherited from the caller's environment)."""
    for name in PLATFORM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster"))
    (data_dir / "dagster").mkdir(parents=True, exist_ok=True)
    return get_settings()


@pytest.fixture
def platform_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PlatformSettings:
    """Settings pointing at a fresh, empty PLATFORM_DATA_DIR."""
    return point_platform_at(monkeypatch, tmp_path / "platform")


@pytest.fixture(scope="session", autouse=True)
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One model cache (the ONNX exports) for the whole session, so the export runs once, not per test.

    It sets PLATFORM_MODEL_CACHE_DIR, which point_platform_at deliberately leaves alone: tests that isolate
    their data directory still share the exported model.
    """
    path = tmp_path_factory.mktemp("model-cache")
    previous = os.environ.get("PLATFORM_MODEL_CACHE_DIR")
    os.environ["PLATFORM_MODEL_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("PLATFORM_MODEL_CACHE_DIR", None)
    else:
        os.environ["PLATFORM_MODEL_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server mode) on a loopback port, for the whole test session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket; the AWS_* variables point the platform (and boto3) at the loopback endpoint."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


def in_ci() -> bool:
    """True under CI, where a missing service is a failure, never a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
