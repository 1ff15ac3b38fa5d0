"""Where a registered dataset lives: parsing `storage_path` into Cube Studio's storage view, and deciding
whether the platform may read it at all.

Shared by the service (the Cube Studio view of GET /api/v1/datasets/{id}, the check at registration) and the
SDK (reading and mounting, which the Dagster assets use), so both agree on what a path means and on what is
allowed. No heavy imports.

What may be read is an allowlist, `PLATFORM_STORAGE_ROOTS` (default: the lake and $PLATFORM_DATA_DIR/shared):
`StoragePolicy.check` refuses a storage_path outside every root, and `StoragePolicy.check_file` refuses a
file actually read whose real path (symbolic links resolved) is outside them. The platform's own files (the
metadata center's API key, webhook secret and SQLite database, DAGSTER_HOME, the lake-sync profiles) are
refused even when a root contains them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
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


# -- what may be read: the storage roots ----------------------------------------------------------------

ROOTS_VARIABLE = "PLATFORM_STORAGE_ROOTS"


class StorageAccessError(ValueError):
    """A storage_path, or a file under it, is not readable by the platform; the message names the rule and
    the path, never anything read from the file."""


def _within(path: str, directory: str) -> bool:
    """True when `path` is `directory` or lies under it (both absolute and normalised, or both object keys)."""
    if directory in ("", "/"):
        return True
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _real_path(path: str) -> str:
    """The real path: `..` and `.` removed and every symbolic link resolved (the path need not exist)."""
    try:
        return os.path.realpath(path)
    except ValueError:  # an embedded NUL
        raise StorageAccessError(f"storage_path {path!r} contains a NUL character") from None


@dataclass(frozen=True)
class StorageRoot:
    """One allowed root: a local directory (its real path) or an object-store bucket and key prefix."""

    protocol: str
    bucket: str | None
    path: str

    @classmethod
    def parse(cls, entry: str) -> StorageRoot:
        """A root from one PLATFORM_STORAGE_ROOTS entry; ValueError names the variable and the entry."""
        try:
            location = parse_storage_path(entry)
        except ValueError as err:
            raise ValueError(f"{ROOTS_VARIABLE}: {entry!r} is not a storage root ({err})") from None
        if location.is_local:
            return cls("file", None, _real_path(location.path))
        key = location.path.strip("/")
        if any(segment in (".", "..") for segment in key.split("/")):
            raise ValueError(f"{ROOTS_VARIABLE}: {entry!r} has a '.' or '..' segment")
        return cls(location.protocol, location.bucket, key)

    def __str__(self) -> str:
        if self.protocol == "file":
            return self.path
        return f"{self.protocol}://{self.bucket}/{self.path}".rstrip("/")


@dataclass(frozen=True)
class StoragePolicy:
    """The allowed storage roots and the platform's own files, which are never readable."""

    roots: tuple[StorageRoot, ...]
    protected: tuple[str, ...] = ()

    @classmethod
    def of(cls, roots: Iterable[str], protected: Iterable[str | os.PathLike[str]] = ()) -> StoragePolicy:
        """A policy for root entries as PLATFORM_STORAGE_ROOTS spells them and the files to protect."""
        return cls(
            tuple(StorageRoot.parse(entry) for entry in roots),
            tuple(_real_path(os.fspath(path)) for path in protected),
        )

    def describe_roots(self) -> str:
        """The roots, comma-separated, as shown in refusals."""
        return ", ".join(str(root) for root in self.roots) or "(none)"

    def _outside(self, shown: str) -> StorageAccessError:
        return StorageAccessError(
            f"storage_path {shown} is outside the allowed storage roots: {self.describe_roots()} "
            f"(set {ROOTS_VARIABLE} to allow more)"
        )

    def check(self, storage_path: str) -> StorageLocation:
        """The parsed location of `storage_path` when the platform may read it; StorageAccessError otherwise.

        Local paths are normalised (`..` and symbolic links resolved) before they are compared with the roots;
        a path that is, lies under, or contains one of the platform's own files is refused. Object keys are
        compared segment by segment with the root's prefix; `.` and `..` segments are refused outright, since
        stores differ in whether they interpret them.
        """
        location = parse_storage_path(storage_path)
        shown = storage_path.strip()
        if location.is_local:
            self._check_local(location.path, shown, directory_allowed=True)
            return location
        key = location.path.rstrip("/")
        if any(segment in (".", "..") for segment in key.split("/")):
            raise StorageAccessError(
                f"storage_path {shown} has a '.' or '..' segment in its object key, which is not allowed"
            )
        for root in self.roots:
            if (
                root.protocol == location.protocol
                and root.bucket == location.bucket
                and _within(key, root.path)
            ):
                return location
        raise self._outside(shown)

    def check_file(self, path: str) -> None:
        """Refuse a local file about to be read whose real path is outside the roots or is a protected file
        (a symbolic link inside a root that points elsewhere, or one swapped in after registration)."""
        self._check_local(path, path, directory_allowed=False)

    def _check_local(self, path: str, shown: str, *, directory_allowed: bool) -> None:
        real = _real_path(path)
        if not any(root.protocol == "file" and _within(real, root.path) for root in self.roots):
            raise self._outside(shown)
        for protected in self.protected:
            # A directory registered above a protected file would expose it too.
            if _within(real, protected) or (directory_allowed and _within(protected, real)):
                raise StorageAccessError(
                    f"storage_path {shown} is or contains the platform's own files (API key, webhook secret, "
                    "database, DAGSTER_HOME), which are never readable"
                )


def protected_paths() -> tuple[str, ...]:
    """The platform's own files in this process's configuration: the metadata center's API key file, webhook
    secret file and SQLite database (with its journal files), DAGSTER_HOME, and the lake-sync profiles."""
    from platform_assets.lib.config import get_settings, metadata_center_settings

    platform = get_settings()
    service = metadata_center_settings()
    paths = [
        str(service.api_key_file),
        str(service.webhook_secret_file),
        str(platform.dagster_home),
        str(platform.lake_sync_config),
    ]
    database = service.database_url
    if database.startswith("sqlite") and ":///" in database:
        file = database.split(":///", 1)[1].split("?", 1)[0]
        if file and file != ":memory:":
            file = str(os.path.abspath(file))
            paths += [file, f"{file}-journal", f"{file}-wal", f"{file}-shm"]
    return tuple(paths)


def storage_policy() -> StoragePolicy:
    """The policy of this process's configuration (PLATFORM_STORAGE_ROOTS and the platform's own files)."""
    from platform_assets.lib.config import get_settings

    return StoragePolicy.of(get_settings().storage_roots, protected_paths())


def check_storage_path(storage_path: str, policy: StoragePolicy | None = None) -> StorageLocation:
    """`storage_path` parsed, when it is inside the allowed storage roots; StorageAccessError otherwise."""
    return (policy or storage_policy()).check(storage_path)
