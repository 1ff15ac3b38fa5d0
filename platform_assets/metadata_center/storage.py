"""Where a registered dataset lives: parsing `storage_path` into Cube Studio's storage view.

Shared by the service (the Cube Studio view of GET /api/v1/datasets/{id}) and the SDK (reading and
mounting), so both agree on what a path means. No heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# Object stores and file systems a registration may point at. The SDK reads local, file:// and s3://;
# the others are accepted because Alldata registers them (HDFS among them) and other readers exist.
REMOTE_PROTOCOLS = ("s3", "s3a", "gs", "hdfs", "abfs")
ACCESS_VIA = {"s3": "mount|s3_sdk", "file": "mount|local_fs"}


@dataclass(frozen=True)
class StorageLocation:
    """A parsed storage_path: protocol (s3, file, …), bucket (None for files) and the path within it."""

    protocol: str
    bucket: str | None
    path: str

    @property
    def uri(self) -> str:
        """The canonical URI: s3://bucket/path or file:///absolute/path."""
        if self.protocol == "file":
            return f"file://{self.path}"
        return f"{self.protocol}://{self.bucket}/{self.path}"

    @property
    def is_local(self) -> bool:
        """True when the data is on a local (or locally mounted) file system."""
        return self.protocol == "file"


def parse_storage_path(storage_path: str) -> StorageLocation:
    """Parse a registered storage_path; ValueError for relative paths and unsupported schemes.

    `s3a://` is the Hadoop spelling of S3 and is read as `s3`.
    """
    text = storage_path.strip()
    if not text:
        raise ValueError("storage_path is empty")
    if text.startswith("file://"):
        local = text[len("file://") :]
        if not local.startswith("/"):
            raise ValueError(f"file:// URIs must be absolute, got {storage_path!r}")
        return StorageLocation("file", None, local)
    if "://" not in text:
        # A relative path would mean something different on the service, the Dagster daemon and a notebook.
        if not text.startswith("/"):
            raise ValueError(f"a local storage_path must be absolute, got {storage_path!r}")
        return StorageLocation("file", None, text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_PROTOCOLS:
        raise ValueError(
            f"unsupported storage scheme {scheme!r} in {storage_path!r}: expected an absolute path, "
            f"file://, or one of {', '.join(p + '://' for p in REMOTE_PROTOCOLS)}"
        )
    if not parts.netloc:
        raise ValueError(f"{storage_path!r} names no bucket")
    protocol = "s3" if scheme == "s3a" else scheme
    return StorageLocation(protocol, parts.netloc, parts.path.lstrip("/"))


def storage_view(storage_path: str, s3_endpoint_url: str | None, s3_region: str | None) -> dict[str, object]:
    """The `storage` object of docs/metadata_center.md for a registered storage_path.

    `endpoint` is the storage host as Cube Studio expects it (`minio.kubeflow.svc.cluster.local`); `endpoint_url` and
    `uri` are extensions a client can use without parsing anything.
    """
    location = parse_storage_path(storage_path)
    endpoint: str | None = None
    endpoint_url: str | None = None
    if location.protocol == "s3":
        if s3_endpoint_url:
            endpoint_url = s3_endpoint_url.rstrip("/")
            endpoint = urlsplit(endpoint_url).netloc or endpoint_url
        else:
            endpoint = f"s3.{s3_region}.amazonaws.com" if s3_region else "s3.amazonaws.com"
            endpoint_url = f"https://{endpoint}"
    return {
        "protocol": location.protocol,
        "endpoint": endpoint,
        "endpoint_url": endpoint_url,
        "bucket": location.bucket,
        "path": location.path,
        "uri": location.uri,
        "access_via": ACCESS_VIA.get(location.protocol, "mount"),
    }


def mount_command(dataset_id: str, version: int | None = None, target: str = "/mnt/data") -> str:
    """The command that makes a dataset's files available under a local path (the view's mount_command)."""
    suffix = f" --version {version}" if version is not None else ""
    return f"platform datasets mount {dataset_id} {target}{suffix}"
