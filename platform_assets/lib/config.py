"""The one place that decides local vs production configuration (shared/DESIGN.md section 4).

Everything is read from the environment when asked for, never at import time, so a test or a CLI call can
point the platform elsewhere by setting variables first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def is_remote_uri(uri: str) -> bool:
    """True for object-store URIs (s3://, gs://, …), False for local paths and file:// URIs."""
    return "://" in uri and not uri.startswith("file://")


@dataclass(frozen=True)
class S3Settings:
    """Credentials and endpoint for S3-compatible storage (AWS or MinIO), from the standard AWS variables."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
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
class PlatformSettings:
    """Where the platform keeps its data and which services it talks to."""

    data_dir: Path
    lake_uri: str
    lancedb_uri: str
    ray_address: str | None
    dagster_home: Path
    alert_webhook_url: str | None = None
    s3: S3Settings = field(default_factory=S3Settings)

    @property
    def landing_dir(self) -> Path:
        """Where source files are delivered, one sub-directory per domain."""
        return self.data_dir / "landing"

    def landing_dir_for(self, domain: str) -> Path:
        """The landing directory of one domain, e.g. landing/reviews."""
        return self.landing_dir / domain

    def storage_options_for(self, uri: str) -> dict:
        """fsspec options for a URI: S3 credentials for s3://, nothing for local paths."""
        return self.s3.fsspec_options() if uri.startswith(("s3://", "s3a://")) else {}


def _resolve_local(path_or_uri: str) -> str:
    if is_remote_uri(path_or_uri):
        return path_or_uri
    if path_or_uri.startswith("file://"):
        path_or_uri = path_or_uri[len("file://") :]
    return str(Path(path_or_uri).expanduser().resolve())


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
