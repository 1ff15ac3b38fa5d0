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
# Rows per batch of the content digest: tables up to this size hash as one IPC batch, as before it existed.
DIGEST_BATCH_ROWS = 65_536
# Rows per parquet row group of a streamed version: the unit a training loader reads and shuffles.
ROW_GROUP_ROWS = 16_384
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

    schema = pa_schema_without_metadata(iceberg_compatible_schema(arrow.schema))
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


class RowDigest:
    """SHA-256 of rows and column types, the same whatever batches the rows come in: the rows are re-cut into
    batches of DIGEST_BATCH_ROWS and hashed as an Arrow IPC stream (schema metadata left out). Memory holds at
    most one such batch."""

    def __init__(self, schema: pa.Schema) -> None:
        import pyarrow as pa

        self._schema = pa_schema_without_metadata(schema)
        self._sink = _HashingSink()
        self._writer = pa.ipc.new_stream(pa.PythonFile(self._sink, mode="w"), self._schema)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add rows (a batch or a table with this digest's columns)."""
        import pyarrow as pa

        batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        for part in batches:
            part = pa.RecordBatch.from_arrays(part.columns, schema=self._schema)
            self._pending.append(part)
            self._pending_rows += part.num_rows
            self.rows += part.num_rows
            while self._pending_rows >= DIGEST_BATCH_ROWS:
                self._emit(DIGEST_BATCH_ROWS)

    def _emit(self, rows: int) -> None:
        import pyarrow as pa

        table = pa.Table.from_batches(self._pending, schema=self._schema)
        head = table.slice(0, rows).combine_chunks()
        for part in head.to_batches():
            self._writer.write_batch(part)
        rest = table.slice(rows)
        self._pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def hexdigest(self) -> str:
        """The digest of every row added (call once, after the last `update`)."""
        if self._pending_rows:
            self._emit(self._pending_rows)
        self._writer.close()
        return self._sink.hash.hexdigest()


def content_digest(table: pa.Table) -> str:
    """SHA-256 of the rows and column types (`RowDigest`), so the same rows read from a re-materialized table
    give the same digest whatever its files and batches."""
    digest = RowDigest(table.schema)
    digest.update(table)
    return digest.hexdigest()


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
        # The file's key-value metadata: a streamed version adds the digest there when it closes the file.
        metadata = pq.read_metadata(handle).metadata or {}
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


class StagedVersion:
    """A version written as a stream of batches before its number is known, under a hidden staging directory
    next to the versions (`.staging-<uuid>`), with its content digest computed on the way:

        staged = StagedVersion(lake_root, dataset_id, schema)
        for batch in batches: staged.write(batch)
        staged.close()                       # the digest is known now: compare with the latest version
        staged.publish(version)              # or staged.discard()

    Row groups hold ROW_GROUP_ROWS rows (the unit a loader reads), so memory holds one row group at a time.
    """

    def __init__(self, lake_root: str, dataset_id: str, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self.lake_root = lake_root
        self.dataset_id = dataset_id
        self.directory = f"{lake_root.rstrip('/')}/published/{dataset_id}/.staging-{uuid.uuid4().hex}"
        self.schema = pa_schema_without_metadata(schema)
        self._digest = RowDigest(self.schema)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.digest: str | None = None
        root = lake_path(self.directory)
        root.mkdir(parents=True, exist_ok=True)
        self._handle = (root / PART_FILE).open("wb")
        self._writer = pq.ParquetWriter(self._handle, self.schema, compression="zstd")

    @property
    def rows(self) -> int:
        """Rows written so far."""
        return self._digest.rows

    def write(self, batch: pa.RecordBatch) -> None:
        """Append rows (cast to the version's schema)."""
        import pyarrow as pa

        batch = pa.RecordBatch.from_arrays(
            [column.cast(field.type) for column, field in zip(batch.columns, self.schema, strict=True)],
            schema=self.schema,
        )
        self._digest.update(batch)
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, rows: int) -> None:
        import pyarrow as pa

        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._writer.write_table(table.slice(0, rows), row_group_size=ROW_GROUP_ROWS)
        rest = table.slice(rows)
        self._pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> str:
        """Finish the file (the digest goes into its metadata) and return the digest."""
        if self.digest is None:
            if self._pending_rows:
                self._flush(self._pending_rows)
            self.digest = self._digest.hexdigest()
            self._writer.add_key_value_metadata({DIGEST_KEY.decode(): self.digest})
            self._writer.close()
            self._handle.close()
        return self.digest

    def discard(self) -> None:
        """Remove the staged file (the rows equal the latest version's, or the run failed)."""
        if self.digest is None:
            self._writer.close()
            self._handle.close()
        root = lake_path(self.directory)
        if root.exists():
            root.fs.rm(root.path, recursive=True)

    def publish(self, version: int) -> PublishedVersion:
        """Move the staged file to `v<version>`; an existing version with the same rows is reused (the staged
        copy is removed), one with other rows raises VersionTaken."""
        digest = self.close()
        directory = version_directory(self.lake_root, self.dataset_id, version)
        existing = published_digest(directory)
        if existing is None:
            if is_remote_uri(self.lake_root):
                # No rename on S3: a server-side copy of the one object, which appears whole.
                staged = lake_path(self.directory) / PART_FILE
                staged.fs.mv(staged.path, (lake_path(directory) / PART_FILE).path)
                self.discard()
                return PublishedVersion(directory, _size(directory), reused=False)
            staged_dir = Path(self.directory.removeprefix("file://"))
            (staged_dir / PART_FILE).chmod(0o444)
            try:
                staged_dir.rename(Path(directory.removeprefix("file://")))
                return PublishedVersion(directory, _size(directory), reused=False)
            except OSError:
                existing = published_digest(directory)
                if existing is None:
                    raise
        self.discard()
        if existing == digest:
            return PublishedVersion(directory, _size(directory), reused=True)
        raise VersionTaken(directory)


def pa_schema_without_metadata(schema: pa.Schema) -> pa.Schema:
    """`schema` with no schema or field metadata (Iceberg field ids, pandas dtypes): a version's own schema."""
    import pyarrow as pa

    return pa.schema([field.remove_metadata() for field in schema])


def _size(directory: str) -> int:
    return int((lake_path(directory) / PART_FILE).stat().st_size)


def digest_of(registration: dict[str, Any] | None) -> str | None:
    """The content digest a registration of ours records (None for others and older ones)."""
    if not registration:
        return None
    return (registration.get("metadata") or {}).get("content_sha256")
