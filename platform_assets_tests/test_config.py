"""Configuration lives in one place (lib/config.py) and is visible in the UI, never a secret."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from platform_assets.lib.config import (
    child_env,
    env_overrides,
    get_settings,
    metadata_center_settings,
    ray_job_env,
    ray_target,
    redact_url,
)
from platform_assets.lib.resources import shared_resources
from platform_assets_tests.conftest import PROJECT_ROOT, point_platform_at

PACKAGE = PROJECT_ROOT / "platform_assets"
# The only modules that touch os.environ: the settings, and the process defaults set before heavy imports.
ENVIRONMENT_MODULES = {PACKAGE / "lib" / "config.py", PACKAGE / "lib" / "runtime_env.py"}
OS_ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-4f1c",
    "METADATA_CENTER_API_KEY": "mc-key-9b2e",
    "METADATA_CENTER_WEBHOOK_SECRET": "mc-hook-secret-77aa",
    "CUBE_STUDIO_TOKEN": "cube-token-5d3f",
    "PLATFORM_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T000/B000/alert-secret-0c8d",
    "FEAST_ONLINE_STORE": "redis://:redis-password-61e0@127.0.0.1:6379/0",
    "METADATA_CENTER_DB_URL": "postgresql://mc:db-password-2a9c@db.example.com/mc",
}

# Prints every resource's configuration as the Dagster UI shows it (the code location's repository snapshot).
RESOURCE_CONFIG_SCRIPT = """
import json
from dagster._core.remote_representation.external_data import RepositorySnap
from platform_assets.definitions import defs

snap = RepositorySnap.from_def(defs.get_repository_def())
print(json.dumps({r.name: {k: str(v) for k, v in r.configured_values.items()} for r in snap.resources}))
"""


def environment_readers() -> list[str]:
    """`module:line` for every use of os.environ / os.getenv (and friends), or of a click option's `envvar`,
    outside the environment modules."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in ENVIRONMENT_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            uses_os = (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in OS_ENVIRONMENT_NAMES
            )
            imports_from_os = isinstance(node, ast.ImportFrom) and (
                node.module == "os" and any(alias.name in OS_ENVIRONMENT_NAMES for alias in node.names)
            )
            click_envvar = isinstance(node, ast.keyword) and node.arg in ("envvar", "auto_envvar_prefix")
            if uses_os or imports_from_os or click_envvar:
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    return found


def test_only_the_config_module_reads_the_environment() -> None:
    assert environment_readers() == []


def test_resources_show_resolved_values_and_no_secret(tmp_path: Path) -> None:
    data_dir = tmp_path / "platform"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "AWS_", "RAY_", "SPARK_"))},
        **SECRETS,
        "PLATFORM_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(data_dir / "dagster"),
        "AWS_ACCESS_KEY_ID": "test-key",
        "RAY_ADDRESS": "ray://ray-head.example.com:10001",
        "SPARK_MASTER": "spark://spark-master.example.com:7077",
        "SPARK_CONF_spark_executor_memory": "4g",
    }
    completed = subprocess.run(
        [sys.executable, "-c", RESOURCE_CONFIG_SCRIPT],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    config = json.loads(completed.stdout.strip().splitlines()[-1])

    assert json.loads(config["lake_io_manager"]["base_uri"]) == str(data_dir / "lake")
    assert json.loads(config["lancedb_io_manager"]["uri"]) == str(data_dir / "lancedb")
    assert json.loads(config["lancedb"]["uri"]) == str(data_dir / "lancedb")
    assert json.loads(config["ray"]["address"]) == "ray://ray-head.example.com:10001"
    spark = json.loads(config["pyspark"]["spark_conf"])
    assert spark["spark.master"] == "spark://spark-master.example.com:7077"
    assert spark["spark.executor.memory"] == "4g"
    assert json.loads(config["embedder"]["backend"]) == "auto"

    shown = json.dumps(config)
    for name, secret in SECRETS.items():
        assert secret not in shown, f"{name} is visible in a resource's config"
    for part in ("alert-secret-0c8d", "redis-password-61e0", "db-password-2a9c"):
        assert part not in shown


def test_shared_resources_resolve_when_built_and_keep_credentials_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_platform_at(monkeypatch, tmp_path / "first")
    first = shared_resources()
    assert first["lake_io_manager"].base_uri == str(tmp_path / "first" / "lake")

    point_platform_at(monkeypatch, tmp_path / "second")
    monkeypatch.setenv("PLATFORM_LAKE_URI", "s3://lake-bucket/lake")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS["AWS_SECRET_ACCESS_KEY"])
    second = shared_resources()
    assert second["lake_io_manager"].base_uri == "s3://lake-bucket/lake"
    assert second["lancedb"].uri == str(tmp_path / "second" / "lancedb")
    # The s3a endpoint is shown; the credentials stay in the environment.
    assert second["pyspark"].spark_conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    shown = json.dumps({key: repr(resource) for key, resource in second.items()})
    assert SECRETS["AWS_SECRET_ACCESS_KEY"] not in shown
    # Resources built earlier keep what they resolved: a process that moves the platform builds new ones.
    assert first["lake_io_manager"].base_uri == str(tmp_path / "first" / "lake")


def test_settings_never_print_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    printed = repr(get_settings()) + repr(metadata_center_settings())
    for name, value in SECRETS.items():
        assert value not in printed, f"{name} is printed with the settings"
    assert get_settings().s3.secret_access_key == SECRETS["AWS_SECRET_ACCESS_KEY"]
    assert redact_url(get_settings().feast_online_store) == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("http://127.0.0.1:8090") == "http://127.0.0.1:8090"


def test_integration_settings_and_their_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = point_platform_at(monkeypatch, tmp_path / "platform")
    for name in ("FEAST_ONLINE_STORE", "PLATFORM_FEAST_REGISTRY", "CUBE_STUDIO_URL", "OPENLINEAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert settings.feast_online_store == "sqlite"
    assert settings.feast_registry == str(tmp_path / "platform" / "feast" / "registry.db")
    assert settings.cube_studio_url is None and settings.openlineage_url is None
    assert settings.daft_runner is None
    monkeypatch.setenv("DAFT_RUNNER", " Ray ")
    assert get_settings().daft_runner == "ray"
    monkeypatch.setenv("DAFT_RUNNER", "spark")
    with pytest.raises(ValueError, match="DAFT_RUNNER='spark'"):
        _ = get_settings().daft_runner
    monkeypatch.setenv("PLATFORM_FEAST_REGISTRY", "s3://registry-bucket/registry.db")
    assert get_settings().feast_registry == "s3://registry-bucket/registry.db"


def test_env_overrides_restore_the_previous_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_TEST_KEPT", "before")
    monkeypatch.delenv("PLATFORM_TEST_ADDED", raising=False)
    with env_overrides({"PLATFORM_TEST_KEPT": None, "PLATFORM_TEST_ADDED": "during"}):
        assert "PLATFORM_TEST_KEPT" not in child_env()
        assert child_env({"EXTRA": "1"})["PLATFORM_TEST_ADDED"] == "during"
    assert child_env()["PLATFORM_TEST_KEPT"] == "before"
    assert "PLATFORM_TEST_ADDED" not in child_env()


@pytest.mark.parametrize(
    ("address", "mode", "driver", "job_api"),
    [
        (None, "local", None, None),
        ("local", "local", None, None),
        ("10.0.0.5:6379", "attach", "10.0.0.5:6379", None),
        ("auto", "attach", "auto", None),
        ("http://platform-ray-head-svc:8265/", "jobs", None, "http://platform-ray-head-svc:8265"),
        ("https://ray.example.com", "jobs", None, "https://ray.example.com"),
    ],
)
def test_ray_address_picks_how_ray_is_reached(
    address: str | None, mode: str, driver: str | None, job_api: str | None
) -> None:
    target = ray_target(address)
    assert (target.mode, target.driver_address, target.job_api) == (mode, driver, job_api)


def test_a_ray_client_address_is_refused_with_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "ray://platform-ray-head-svc:10001")
    with pytest.raises(ValueError, match=r"Ray Client.*RAY_ADDRESS=http://<head>:8265"):
        _ = get_settings().ray
    with pytest.raises(ValueError, match="unknown scheme 'grpc'"):
        ray_target("grpc://head:6379")


def test_a_ray_job_gets_where_the_data_is_and_never_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = point_platform_at(monkeypatch, tmp_path / "platform")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PLATFORM_CATALOG_URI", "postgresql://lake:catalog-password-9e1f@db.example.com/lake")
    monkeypatch.setenv("PLATFORM_CHUNK_ROWS", "5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    env = ray_job_env()
    assert env["PLATFORM_DATA_DIR"] == str(settings.data_dir)
    assert (
        env["PLATFORM_LAKE_URI"] == settings.lake_uri and env["PLATFORM_LANCEDB_URI"] == settings.lancedb_uri
    )
    assert env["PLATFORM_CHUNK_ROWS"] == "5000" and env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    # A catalog URL with a password stays behind: the cluster has its own copy of that secret.
    assert "PLATFORM_CATALOG_URI" not in env
    shown = json.dumps(env)
    for secret in [*SECRETS.values(), "catalog-password-9e1f"]:
        assert secret not in shown
    monkeypatch.setenv("PLATFORM_CATALOG_URI", "sqlite:////data/catalog.db")
    assert ray_job_env()["PLATFORM_CATALOG_URI"] == "sqlite:////data/catalog.db"


def test_curation_settings_reach_the_policy_resource_and_bad_values_name_their_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_platform_at(monkeypatch, tmp_path / "platform")
    default = shared_resources()["curation"]
    assert (default.pii_policy, default.duplicate_threshold, default.drift_blocking) == ("mask", None, False)
    monkeypatch.setenv("PLATFORM_CURATION_PII_POLICY", "DROP")
    monkeypatch.setenv("PLATFORM_CURATION_DUPLICATE_THRESHOLD", "0.9")
    monkeypatch.setenv("PLATFORM_CURATION_DRIFT_BLOCKING", "true")
    configured = shared_resources()["curation"]
    assert (configured.pii_policy, configured.duplicate_threshold, configured.drift_blocking) == (
        "drop",
        0.9,
        True,
    )
    for name, value in (
        ("PLATFORM_CURATION_PII_POLICY", "redact"),
        ("PLATFORM_CURATION_DUPLICATE_THRESHOLD", "1.5"),
        ("PLATFORM_CURATION_DUPLICATE_THRESHOLD", "high"),
        ("PLATFORM_CURATION_DRIFT_BLOCKING", "maybe"),
    ):
        with monkeypatch.context() as bad:
            bad.setenv(name, value)
            with pytest.raises(ValueError, match=name):
                shared_resources()
