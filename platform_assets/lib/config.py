"""The one place that reads the environment: every setting of the platform, local or production.

Everything is read when asked for, never at import time, so a test or a CLI call can point the platform
elsewhere by setting variables first. docs/configuration.md lists every variable, its default and its reader.
The few places that must *set* variables for this process or its children (DAGSTER_HOME, a child process's
environment) do it through `export_env`, `env_overrides` and `child_env` below.

Secrets (AWS_SECRET_ACCESS_KEY, API keys, tokens, webhook URLs) are fields with `repr=False` or properties,
so printing a settings object never shows them; they never go into a Dagster resource's config either.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _env_path(name: str) -> Path | None:
    value = _env(name)
    return Path(os.path.expandvars(value)).expanduser() if value else None


def export_env(name: str, value: str) -> None:
    """Set `name` for this process and every process it starts (e.g. DAGSTER_HOME, which Dagster reads)."""
    os.environ[name] = value


@contextmanager
def env_overrides(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (a value) or unset (None) variables for the duration of a block; the previous values come back."""
    previous = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def child_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus `overrides`, for starting a child process."""
    return {**os.environ, **(overrides or {})}


def redact_url(url: str) -> str:
    """`url` with any password replaced by ***, for showing where a service is without its credentials."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def is_remote_uri(uri: str) -> bool:
    """True for object-store URIs (s3://, gs://, …), False for local paths and file:// URIs."""
    return "://" in uri and not uri.startswith("file://")


@dataclass(frozen=True)
class S3Settings:
    """Credentials and endpoint for S3-compatible storage (AWS or MinIO), from the standard AWS variables."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    region: str | None = None

    def fsspec_options(self) -> dict:
        """Options for s3fs / universal_pathlib."""
        options: dict = {}
        if self.access_key_id:
            options["key"] = self.access_key_id
        if self.secret_access_key:
            options["secret"] = self.secret_access_key
        client_kwargs: dict = {}
        if self.endpoint_url:
            client_kwargs["endpoint_url"] = self.endpoint_url
        if self.region:
            client_kwargs["region_name"] = self.region
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        return options

    def iceberg_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties (s3.*) for a lake on S3 or MinIO."""
        options: dict[str, str] = {"s3.region": self.region or "us-east-1"}
        if self.access_key_id:
            options["s3.access-key-id"] = self.access_key_id
        if self.secret_access_key:
            options["s3.secret-access-key"] = self.secret_access_key
        if self.endpoint_url:
            options["s3.endpoint"] = self.endpoint_url
        return options

    def pyarrow_filesystem(self) -> Any:
        """pyarrow's own S3 file system with these settings (the training loaders read through it)."""
        from urllib.parse import urlparse

        from pyarrow import fs

        options: dict[str, Any] = {"region": self.region or "us-east-1"}
        if self.access_key_id:
            options["access_key"] = self.access_key_id
        if self.secret_access_key:
            options["secret_key"] = self.secret_access_key
        if self.endpoint_url:
            endpoint = urlparse(self.endpoint_url)
            options["endpoint_override"] = endpoint.netloc or endpoint.path
            options["scheme"] = endpoint.scheme or "https"
        return fs.S3FileSystem(**options)

    def lancedb_options(self) -> dict[str, str]:
        """storage_options for lancedb.connect on s3://."""
        options: dict[str, str] = {}
        if self.access_key_id:
            options["aws_access_key_id"] = self.access_key_id
        if self.secret_access_key:
            options["aws_secret_access_key"] = self.secret_access_key
        options["aws_region"] = self.region or "us-east-1"
        if self.endpoint_url:
            options["aws_endpoint"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["allow_http"] = "true"
        return options


@dataclass(frozen=True)
class SparkSettings:
    """The Spark cluster and session settings (SPARK_MASTER, SPARK_SHUFFLE_PARTITIONS, SPARK_DRIVER_MEMORY,
    SPARK_CONF_<key>)."""

    master: str = "local[2]"
    shuffle_partitions: str = "4"
    driver_memory: str = "1g"
    # SPARK_CONF_spark_executor_memory=4g → {"spark.executor.memory": "4g"}
    extra_conf: Mapping[str, str] = field(default_factory=dict)


# Embedding backends (platform_assets/lib/embedding): auto picks ONNX fp32 when it verifiably agrees
# with torch (torch fp16 on a GPU), else torch; onnx-int8 is an opt-in speed mode with a measured quality cost.
EMBED_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


def embed_backend_name(value: str, source: str = "backend") -> str:
    """`value` as a backend name (trimmed, lower case); ValueError naming `source` when it is not one."""
    name = value.strip().lower()
    if name not in EMBED_BACKENDS:
        raise ValueError(
            f"{source}={value!r} is not an embedding backend; choose one of {', '.join(EMBED_BACKENDS)}"
        )
    return name


RAY_MODES = ("local", "attach", "jobs")


@dataclass(frozen=True)
class RayTarget:
    """How this process reaches Ray, decided by RAY_ADDRESS (`ray_target`).

    - `local`: RAY_ADDRESS unset (or `local`): small work in this process, larger work on a Ray started here.
    - `attach`: `host:port` (a GCS address, or `auto`): this process runs on a node of that cluster and
      attaches to it as a driver (inside a Ray job, Ray itself sets RAY_ADDRESS so).
    - `jobs`: `http(s)://head:8265`, the dashboard's job API as `ray job submit` reads it: heavy steps are
      submitted to that cluster as Ray jobs (through Dagster Pipes) and run there, next to the data.
    """

    mode: str
    address: str | None = None

    @property
    def driver_address(self) -> str | None:
        """The address `ray.init` attaches to (attach mode only; a job API address is not a driver address)."""
        return self.address if self.mode == "attach" else None

    @property
    def job_api(self) -> str | None:
        """The Ray job API URL (jobs mode only)."""
        return self.address if self.mode == "jobs" else None


def ray_target(address: str | None) -> RayTarget:
    """Classify a RAY_ADDRESS value; ValueError for a Ray Client address, which the platform cannot use."""
    value = (address or "").strip()
    if not value or value == "local":
        return RayTarget("local")
    scheme = urlsplit(value).scheme.lower() if "://" in value else ""
    if scheme in ("http", "https"):
        return RayTarget("jobs", value.rstrip("/"))
    if scheme == "ray":
        raise ValueError(
            f"RAY_ADDRESS={value!r} is a Ray Client address; Ray Data (the embedding) does not run over Ray Client. "
            "Use the cluster's job API instead, e.g. RAY_ADDRESS=http://<head>:8265 (see deploy/README.md, Ray)"
        )
    if scheme:
        raise ValueError(
            f"RAY_ADDRESS={value!r}: unknown scheme {scheme!r}; use host:port (attach), http(s)://head:8265 (jobs) "
            "or leave it unset (local)"
        )
    return RayTarget("attach", value)


DAFT_RUNNERS = ("native", "ray")
DAGSTER_WEBSERVER_DEFAULT_URL = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class PlatformSettings:
    """Where the platform keeps its data and which services it talks to."""

    data_dir: Path
    lake_uri: str
    lancedb_uri: str
    ray_address: str | None
    dagster_home: Path
    # A Slack-style webhook URL carries its own secret: never shown.
    alert_webhook_url: str | None = field(default=None, repr=False)
    s3: S3Settings = field(default_factory=S3Settings)

    @property
    def landing_dir(self) -> Path:
        """Where source files are delivered, one sub-directory per domain."""
        return self.data_dir / "landing"

    def landing_dir_for(self, domain: str) -> Path:
        """The landing directory of one domain, e.g. landing/reviews."""
        return self.landing_dir / domain

    @property
    def lake_sync_config(self) -> Path:
        """The lake-sync profiles file: PLATFORM_LAKE_SYNC_CONFIG, else $PLATFORM_DATA_DIR/lake_sync.yaml."""
        return _env_path("PLATFORM_LAKE_SYNC_CONFIG") or self.data_dir / "lake_sync.yaml"

    @property
    def storage_roots(self) -> tuple[str, ...]:
        """PLATFORM_STORAGE_ROOTS: where registered datasets may live (comma-separated `s3://bucket/prefix` and
        local directories); default: the lake and $PLATFORM_DATA_DIR/shared. `$VARS` and `~` are expanded in
        local entries. `platform_assets.metadata_center.storage` decides what is inside them."""
        value = _env("PLATFORM_STORAGE_ROOTS")
        if value is None:
            return (self.lake_uri, str(self.data_dir / "shared"))
        roots = tuple(
            entry if "://" in entry else os.path.expanduser(os.path.expandvars(entry))
            for entry in (part.strip() for part in value.split(","))
            if entry
        )
        if not roots:
            raise ValueError(f"PLATFORM_STORAGE_ROOTS={value!r} names no storage root")
        return roots

    @property
    def landing_max_extra_columns(self) -> int:
        """PLATFORM_LANDING_MAX_EXTRA_COLUMNS: how many columns beyond its contract a landing read keeps (50)."""
        return _env_number("PLATFORM_LANDING_MAX_EXTRA_COLUMNS", int, 50, 0)

    @property
    def chunk_rows(self) -> int:
        """PLATFORM_CHUNK_ROWS: rows a reviews step reads, cleans and validates at once (250000); a step's
        memory follows this, not the size of the delivery."""
        return _env_number("PLATFORM_CHUNK_ROWS", int, 250_000, 1)

    @property
    def embed_backend(self) -> str:
        """PLATFORM_EMBED_BACKEND: auto (default), torch, onnx or onnx-int8; ValueError names the variable."""
        return embed_backend_name(_env("PLATFORM_EMBED_BACKEND") or "auto", "PLATFORM_EMBED_BACKEND")

    @property
    def model_cache_dir(self) -> Path:
        """Exported (ONNX) models: PLATFORM_MODEL_CACHE_DIR, else $PLATFORM_DATA_DIR/models."""
        configured = _env_path("PLATFORM_MODEL_CACHE_DIR")
        return configured.resolve() if configured else self.data_dir / "models"

    @property
    def rayjob_template(self) -> Path | None:
        """PLATFORM_RAYJOB_TEMPLATE: a KubeRay RayJob manifest; when set, the embedding runs as a RayJob of its
        own made from it (a Ray cluster per step on Kubernetes) instead of through RAY_ADDRESS."""
        return _env_path("PLATFORM_RAYJOB_TEMPLATE")

    @property
    def ray(self) -> RayTarget:
        """How this process reaches Ray: RAY_ADDRESS unset → local, host:port → attach, http(s):// → jobs."""
        return ray_target(self.ray_address)

    @property
    def daft_runner(self) -> str | None:
        """DAFT_RUNNER: native or ray; None (unset) means ray when RAY_ADDRESS is set, else native."""
        value = (_env("DAFT_RUNNER") or "").strip().lower()
        if value and value not in DAFT_RUNNERS:
            raise ValueError(
                f"DAFT_RUNNER={_env('DAFT_RUNNER')!r} is not a Daft runner; choose native or ray"
            )
        return value or None

    @property
    def spark(self) -> SparkSettings:
        """The Spark settings: SPARK_MASTER (local[2]), SPARK_SHUFFLE_PARTITIONS (4), SPARK_DRIVER_MEMORY (1g)
        and any SPARK_CONF_<key> (underscores become dots)."""
        prefix = "SPARK_CONF_"
        return SparkSettings(
            master=_env("SPARK_MASTER") or "local[2]",
            shuffle_partitions=_env("SPARK_SHUFFLE_PARTITIONS") or "4",
            driver_memory=_env("SPARK_DRIVER_MEMORY") or "1g",
            extra_conf={
                name[len(prefix) :].replace("_", "."): value
                for name, value in sorted(os.environ.items())
                if name.startswith(prefix)
            },
        )

    @property
    def feast_online_store(self) -> str:
        """FEAST_ONLINE_STORE: `sqlite` (default, under the data directory) or a redis:// URL.

        A redis URL may carry a password: show it with `redact_url`, never as is.
        """
        return (_env("FEAST_ONLINE_STORE") or "sqlite").strip()

    @property
    def feast_registry(self) -> str:
        """The Feast registry: PLATFORM_FEAST_REGISTRY (a path or URI), else $PLATFORM_DATA_DIR/feast/registry.db."""
        return _env("PLATFORM_FEAST_REGISTRY") or str(self.data_dir / "feast" / "registry.db")

    @property
    def cube_studio_url(self) -> str | None:
        """CUBE_STUDIO_URL: the Cube Studio to publish datasets to (publishing is off when unset)."""
        return _env("CUBE_STUDIO_URL")

    @property
    def cube_studio_token(self) -> str | None:
        """CUBE_STUDIO_TOKEN: the Cube Studio API token (a secret)."""
        return _env("CUBE_STUDIO_TOKEN")

    @property
    def openlineage_url(self) -> str | None:
        """OPENLINEAGE_URL: an OpenLineage HTTP endpoint for publication events."""
        return _env("OPENLINEAGE_URL")

    @property
    def openlineage_file(self) -> str | None:
        """OPENLINEAGE_FILE: a file to append OpenLineage events to (used when OPENLINEAGE_URL is unset)."""
        return _env("OPENLINEAGE_FILE")

    @property
    def dagster_webserver_url(self) -> str:
        """DAGSTER_WEBSERVER_URL: the Dagster webserver `platform runs` talks to (default http://127.0.0.1:3000)."""
        return (_env("DAGSTER_WEBSERVER_URL") or DAGSTER_WEBSERVER_DEFAULT_URL).rstrip("/")

    @property
    def catalog_uri(self) -> str:
        """PLATFORM_CATALOG_URI: the Iceberg catalog of the lake (catalog name `platform`).

        sqlite:///… (default: $PLATFORM_DATA_DIR/catalog.db) or postgresql://… for pyiceberg's SQL catalog;
        http(s)://… for an Iceberg REST catalog. A URL may carry a password: show it with `redact_url`.
        """
        return _env("PLATFORM_CATALOG_URI") or f"sqlite:///{self.data_dir / 'catalog.db'}"

    @property
    def snapshot_retention_days(self) -> float:
        """PLATFORM_SNAPSHOT_RETENTION_DAYS: lake maintenance expires untagged snapshots older than this (7)."""
        return _env_number("PLATFORM_SNAPSHOT_RETENTION_DAYS", float, 7, 0)

    @property
    def curation_pii_policy(self) -> str:
        """PLATFORM_CURATION_PII_POLICY: what curated/reviews does with personal data in a text: mask (default),
        drop (quarantine the row) or keep."""
        value = (_env("PLATFORM_CURATION_PII_POLICY") or "mask").strip().lower()
        if value not in ("mask", "drop", "keep"):
            raise ValueError(f"PLATFORM_CURATION_PII_POLICY={value!r} is not one of mask, drop, keep")
        return value

    @property
    def curation_duplicate_threshold(self) -> float | None:
        """PLATFORM_CURATION_DUPLICATE_THRESHOLD: a fixed near-duplicate similarity threshold, overriding the
        calibrated one (unset: the latest calibration's)."""
        if _env("PLATFORM_CURATION_DUPLICATE_THRESHOLD") is None:
            return None
        value = _env_number("PLATFORM_CURATION_DUPLICATE_THRESHOLD", float, 1.0, 0.0)
        if value > 1.0:
            raise ValueError(f"PLATFORM_CURATION_DUPLICATE_THRESHOLD={value!r} must be at most 1")
        return value

    @property
    def curation_drift_blocking(self) -> bool:
        """PLATFORM_CURATION_DRIFT_BLOCKING: a drifted delivery fails its embedding drift check as an error and
        stops its curation (default false: a warning)."""
        return _env_bool("PLATFORM_CURATION_DRIFT_BLOCKING", False)

    def storage_options_for(self, uri: str) -> dict:
        """fsspec options for a URI: S3 credentials for s3://, nothing for local paths."""
        return self.s3.fsspec_options() if uri.startswith(("s3://", "s3a://")) else {}


def _resolve_local(path_or_uri: str) -> str:
    if is_remote_uri(path_or_uri):
        return path_or_uri
    if path_or_uri.startswith("file://"):
        path_or_uri = path_or_uri[len("file://") :]
    return str(Path(path_or_uri).expanduser().resolve())


def git_commit_override() -> str | None:
    """PLATFORM_GIT_COMMIT: the commit an image without .git was built from (recorded in version manifests)."""
    return _env("PLATFORM_GIT_COMMIT")


def get_settings() -> PlatformSettings:
    """Read the platform settings from the environment (defaults: the embedded setup under ./.platform)."""
    data_dir = Path(_env("PLATFORM_DATA_DIR") or ".platform").expanduser().resolve()
    return PlatformSettings(
        data_dir=data_dir,
        lake_uri=_resolve_local(_env("PLATFORM_LAKE_URI") or str(data_dir / "lake")),
        lancedb_uri=_resolve_local(_env("PLATFORM_LANCEDB_URI") or str(data_dir / "lancedb")),
        ray_address=_env("RAY_ADDRESS"),
        dagster_home=Path(_env("DAGSTER_HOME") or str(data_dir / "dagster")).expanduser().resolve(),
        alert_webhook_url=_env("PLATFORM_ALERT_WEBHOOK_URL"),
        s3=S3Settings(
            endpoint_url=_env("AWS_ENDPOINT_URL"),
            access_key_id=_env("AWS_ACCESS_KEY_ID"),
            secret_access_key=_env("AWS_SECRET_ACCESS_KEY"),
            region=_env("AWS_REGION") or _env("AWS_DEFAULT_REGION"),
        ),
    )


# What a Ray job submitted by a step learns from the step's environment (runtime_env env_vars, which the cluster's
# dashboard shows): where the data lives and how to process it, never a credential. The cluster's pods carry
# their own (deploy/README.md, Ray).
RAY_JOB_TUNING_VARIABLES = (
    "PLATFORM_CHUNK_ROWS",
    "PLATFORM_EMBED_BACKEND",
    "PLATFORM_MODEL_CACHE_DIR",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
)


def ray_job_env() -> dict[str, str]:
    """The settings a Ray job needs to read and write the same lake and vector store as this process.

    Paths are resolved here (a relative PLATFORM_DATA_DIR means nothing on the cluster). A catalog URL that
    carries a password is left out: the cluster must be given it as a secret of its own.
    """
    settings = get_settings()
    env = {
        "PLATFORM_DATA_DIR": str(settings.data_dir),
        "PLATFORM_LAKE_URI": settings.lake_uri,
        "PLATFORM_LANCEDB_URI": settings.lancedb_uri,
    }
    if redact_url(settings.catalog_uri) == settings.catalog_uri:
        env["PLATFORM_CATALOG_URI"] = settings.catalog_uri
    env.update({name: value for name in RAY_JOB_TUNING_VARIABLES if (value := _env(name)) is not None})
    return env


def launched_through_pipes() -> bool:
    """True in a process a Dagster step launched through Dagster Pipes (it was given DAGSTER_PIPES_CONTEXT)."""
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR

    return _env(DAGSTER_PIPES_CONTEXT_ENV_VAR) is not None


# The metadata center: service, client and SDK settings.

METADATA_CENTER_DEFAULT_URL = "http://127.0.0.1:8090"
API_KEY_FILE = "metadata_center_api_key"
WEBHOOK_SECRET_FILE = "metadata_center_webhook_secret"
DB_FILE = "metadata_center.db"


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    if value.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"{name}={value!r} is not a boolean (true/false)")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_number(name: str, kind: type[int] | type[float], default: float, minimum: float) -> Any:
    value = _env(name)
    if value is None:
        return kind(default)
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a{'n integer' if kind is int else ' number'}") from None
    if number < minimum:
        raise ValueError(f"{name}={value!r} must be at least {minimum:g}")
    return number


def _env_urls(name: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in (_env(name) or "").split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{name}: {url!r} is not an http(s) URL")
    return urls


@dataclass(frozen=True)
class MetadataCenterSettings:
    """Where the metadata center runs, how it authenticates, where it keeps its data and whom it notifies."""

    url: str = METADATA_CENTER_DEFAULT_URL
    data_dir: Path = field(default_factory=lambda: Path(".platform").resolve())
    api_key: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    # A database URL may carry a password.
    db_url: str | None = field(default=None, repr=False)
    webhook_urls: tuple[str, ...] = ()
    require_key_for_reads: bool = False
    webhook_max_attempts: int = 10
    webhook_backoff_s: float = 2.0
    # Requests with a larger body are answered 413 (METADATA_CENTER_MAX_BODY_BYTES).
    max_body_bytes: int = 1024 * 1024
    # Hosts and CIDRs that webhook subscribers may target although they are loopback, private or otherwise
    # not public addresses (METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS); none by default.
    webhook_allowed_hosts: tuple[str, ...] = ()
    s3: S3Settings = field(default_factory=S3Settings)

    @property
    def api_key_file(self) -> Path:
        """The generated API key (used when METADATA_CENTER_API_KEY is unset)."""
        return self.data_dir / API_KEY_FILE

    @property
    def webhook_secret_file(self) -> Path:
        """The generated webhook signing secret (used when METADATA_CENTER_WEBHOOK_SECRET is unset)."""
        return self.data_dir / WEBHOOK_SECRET_FILE

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the registry database (a SQLite file under the data directory by default)."""
        return self.db_url or f"sqlite:///{self.data_dir / DB_FILE}"

    def client_api_key(self) -> str | None:
        """The key a client sends: METADATA_CENTER_API_KEY, else the key the local service generated."""
        if self.api_key:
            return self.api_key
        try:
            return self.api_key_file.read_text().strip() or None
        except OSError:
            return None


def metadata_center_settings() -> MetadataCenterSettings:
    """Read the metadata center settings from the environment; ValueError names a malformed variable."""
    platform = get_settings()
    return MetadataCenterSettings(
        url=(_env("METADATA_CENTER_URL") or METADATA_CENTER_DEFAULT_URL).rstrip("/"),
        data_dir=platform.data_dir,
        api_key=_env("METADATA_CENTER_API_KEY"),
        webhook_secret=_env("METADATA_CENTER_WEBHOOK_SECRET"),
        db_url=_env("METADATA_CENTER_DB_URL"),
        webhook_urls=_env_urls("METADATA_CENTER_WEBHOOK_URLS"),
        require_key_for_reads=_env_bool("METADATA_CENTER_REQUIRE_KEY_FOR_READS", False),
        webhook_max_attempts=_env_number("METADATA_CENTER_WEBHOOK_MAX_ATTEMPTS", int, 10, 1),
        webhook_backoff_s=_env_number("METADATA_CENTER_WEBHOOK_BACKOFF_S", float, 2.0, 0.0),
        max_body_bytes=_env_number("METADATA_CENTER_MAX_BODY_BYTES", int, 1024 * 1024, 1024),
        webhook_allowed_hosts=tuple(
            h.strip() for h in (_env("METADATA_CENTER_WEBHOOK_ALLOWED_HOSTS") or "").split(",") if h.strip()
        ),
        s3=platform.s3,
    )
