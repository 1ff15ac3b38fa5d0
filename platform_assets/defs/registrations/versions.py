"""Published versions: a training-ready dataset as plain, immutable parquet at a versioned path.

Cube Studio and other readers without Iceberg read exactly one version: `<lake>/published/<id>/v<N>/` holds one
file, `part-00000.parquet`, written once and never replaced. `N` is the version the metadata center assigns to
the registration that points at the directory (the next one after the latest), so `Dataset.get(id, version=N)`
and the directory name agree.

A directory is never overwritten. Locally the file is written under a hidden temporary directory that is then
renamed to `v<N>` (a rename onto an existing directory with files fails), so a reader never sees a half-written
version. On S3 there is no rename: the object appears whole when its upload completes, and an existing version
is checked for first. The content digest of the rows (`platform.content_sha256` in the file's metadata) tells an
existing directory with the same rows (left by a run that failed before registering it, reused) from one with
other rows (another run's version, never touched).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_assets.lib.config import is_remote_uri
from platform_assets.lib.lake import iceberg_compatible_schema, lake_path

if TYPE_CHECKING:
    import pyarrow as pa

PART_FILE = "part-00000.parquet"
DIGEST_KEY = b"platform.content_sha256"


class VersionTaken(Exception):
    """`v<N>` already exists with other rows: another publication of the dataset owns it."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.directory = directory


@dataclass(frozen=True)
class PublishedVersion:
    """A version directory: its URI (what is registered as storage_path), file size and whether it was there."""

    directory: str
    size_bytes: int
    reused: bool


def plain_table(arrow: pa.Table, pandas_metadata: str | None = None) -> pa.Table:
    """The rows as readers without Iceberg expect them: large strings and lists as their plain types, no
    Iceberg field ids, and the pandas metadata of the frame that was written (so pandas gets its dtypes back)
    when it describes exactly these columns."""
    import json

    import pyarrow as pa

    schema = pa.schema([field.remove_metadata() for field in iceberg_compatible_schema(arrow.schema)])
    table = arrow.cast(schema)
    if pandas_metadata:
        described = [c.get("name") for c in json.loads(pandas_metadata).get("columns", [])]
        if described == table.column_names:
            table = table.replace_schema_metadata({b"pandas": pandas_metadata.encode()})
    return table


class _HashingSink:
    """A write-only file object that only hashes what is written (the digest never holds the rows twice)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        self.closed = True


def content_digest(table: pa.Table) -> str:
    """SHA-256 of the rows and column types (Arrow IPC of the table as one batch; schema metadata left out), so
    the same rows read from a re-materialized table give the same digest whatever its files and batches."""
    import pyarrow as pa

    sink = _HashingSink()
    data = table.replace_schema_metadata(None).combine_chunks()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), data.schema) as writer:
        writer.write_table(data)
    return sink.hash.hexdigest()


def version_directory(lake_root: str, dataset_id: str, version: int) -> str:
    """`<lake>/published/<dataset_id>/v<version>` (no trailing slash)."""
    return f"{lake_root.rstrip('/')}/published/{dataset_id}/v{version}"


def published_digest(directory: str) -> str | None:
    """The content digest recorded in a version directory's file; None when the directory is absent.

    A directory that exists without a readable file of ours gives "" (it is someone else's: never reused)."""
    import pyarrow.parquet as pq

    root = lake_path(directory)
    if not root.exists():
        return None
    part = root / PART_FILE
    if not part.exists():
        return ""
    with part.open("rb") as handle:
        metadata = pq.read_schema(handle).metadata or {}
    return metadata.get(DIGEST_KEY, b"").decode()


def write_version(
    lake_root: str, dataset_id: str, version: int, table: pa.Table, digest: str
) -> PublishedVersion:
    """Write `table` once to `v<version>` of `dataset_id` under the lake root (local or s3://).

    An existing directory holding the same rows is reused; one holding other rows raises VersionTaken (it is
    never overwritten)."""
    directory = version_directory(lake_root, dataset_id, version)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), DIGEST_KEY: digest.encode()})
    existing = published_digest(directory)
    if existing is not None:
        if existing == digest:
            return PublishedVersion(directory, _size(directory), reused=True)
        raise VersionTaken(directory)
    if is_remote_uri(lake_root):
        _write_remote(directory, table)
    elif not _write_local(directory, table):
        # Another run renamed its directory into place first.
        if published_digest(directory) == digest:
            return PublishedVersion(directory, _size(directory), reused=True)
        raise VersionTaken(directory)
    return PublishedVersion(directory, _size(directory), reused=False)


def _write_local(directory: str, table: pa.Table) -> bool:
    """Write under a hidden temporary directory and rename it to `directory`; False when it exists by then."""
    import pyarrow.parquet as pq

    target = Path(directory.removeprefix("file://"))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden (leading dot): the SDK and pyarrow's dataset discovery skip it if someone lists the parent.
    temporary = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    temporary.mkdir()
    try:
        part = temporary / PART_FILE
        with part.open("wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        part.chmod(0o444)  # a version is immutable: refuse accidental writes to it
        try:
            # Fails with ENOTEMPTY/EEXIST when another run's version is there: it is never replaced.
            temporary.rename(target)
        except OSError:
            if target.exists():
                return False
            raise
        return True
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def _write_remote(directory: str, table: pa.Table) -> None:
    """One object upload: S3 shows the object only once its upload completes, never a partial file."""
    import pyarrow.parquet as pq

    with (lake_path(directory) / PART_FILE).open("wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def _size(directory: str) -> int:
    return int((lake_path(directory) / PART_FILE).stat().st_size)


def digest_of(registration: dict[str, Any] | None) -> str | None:
    """The content digest a registration of ours records (None for others and older ones)."""
    if not registration:
        return None
    return (registration.get("metadata") or {}).get("content_sha256")
