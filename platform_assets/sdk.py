"""The Python SDK: find a registered dataset and read or mount its files.

    from platform_assets.sdk import Dataset

    dataset = Dataset.get("sales_training_2024_01")      # the latest version (or version=N)
    df = dataset.read()                                  # pandas; dataset.read(as_arrow=True) -> pyarrow.Table
    path = dataset.mount("/mnt/data")                    # the dataset's files under /mnt/data
    loader = dataset.to_torch(batch_size=256, shuffle=True, seed=0, rank=r, world_size=w)   # PyTorch batches
    ray_dataset = dataset.to_ray()                       # a ray.data.Dataset (Ray Train)
    dataset.manifest                                     # how the version was built (platform versions)
    Dataset.list(tags=["training-ready"])                # the latest version of each matching dataset

The registry is the metadata center (METADATA_CENTER_URL). Storage is read where it was registered: a
local path or file:// URI, or s3:// with credentials and endpoint from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL. A storage_path is one file or a directory of files
(hive-style `key=value` sub-directories become columns; names starting with `.` or `_`, such as
`_SUCCESS`, are skipped). CSV columns are read with their registered types.

Only storage inside PLATFORM_STORAGE_ROOTS is read (default: the lake and $PLATFORM_DATA_DIR/shared), and
every local file is checked again, symbolic links resolved, just before it is read; the platform's own files
never are (`platform_assets.metadata_center.storage`). A file that does not parse as the registered format
is named with the line and field counts where it fails, never with its content.

pandas, pyarrow and s3fs are imported on first use, so importing the SDK is cheap.
"""

from __future__ import annotations

import builtins
import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_assets.metadata_center.client import MetadataCenterClient, MetadataCenterError
from platform_assets.metadata_center.storage import (
    StorageAccessError,
    StorageLocation,
    parse_storage_path,
    storage_policy,
)

HIDDEN_PREFIXES = (".", "_")
TEMPORAL_TYPES = ("date", "timestamp", "timestamptz")


class DatasetError(Exception):
    """A dataset could not be found, read or mounted; the message says which and why."""


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: where it is (`path`, within its file system) and where it sits relative to the
    dataset's root (`relative`, used for mounting and partition columns)."""

    path: str
    relative: str
    size: int


@dataclass(frozen=True)
class Dataset:
    """One version of a registered dataset."""

    dataset_id: str
    version: int
    name: str
    storage_path: str
    format: str
    schema: dict[str, Any]
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    row_count: int | None = None
    size_bytes: int | None = None
    client: MetadataCenterClient | None = field(default=None, repr=False, compare=False)

    # -- finding datasets ------------------------------------------------------------------------------

    @classmethod
    def get(
        cls, dataset_id: str, version: int | None = None, *, client: MetadataCenterClient | None = None
    ) -> Dataset:
        """The registered dataset `dataset_id` (its latest version unless `version` is given)."""
        client = client or MetadataCenterClient()
        try:
            view = client.get(dataset_id, version=version)
        except MetadataCenterError as err:
            raise DatasetError(f"dataset {dataset_id!r}: {err.message}") from err
        return cls._from_fields(view, view["version"], client)

    @classmethod
    def list(
        cls, tags: Sequence[str] | None = None, *, client: MetadataCenterClient | None = None
    ) -> builtins.list[Dataset]:
        """The latest version of every registered dataset carrying all `tags`, in registration order."""
        client = client or MetadataCenterClient()
        try:
            items = builtins.list(client.iter_registrations(tags=tuple(tags or ()), latest=True))
        except MetadataCenterError as err:
            raise DatasetError(f"listing datasets: {err.message}") from err
        datasets = []
        for item in items:
            if item.get("metadata_truncated"):
                # List pages carry large metadata only as a marker; the registration itself has all of it.
                datasets.append(cls.get(item["dataset_id"], version=item["version"], client=client))
            else:
                datasets.append(cls._from_fields(item["payload"], item["version"], client))
        return datasets

    @classmethod
    def _from_fields(cls, fields: dict[str, Any], version: int, client: MetadataCenterClient) -> Dataset:
        return cls(
            dataset_id=fields["dataset_id"],
            version=version,
            name=fields["name"],
            storage_path=fields["storage_path"],
            format=fields["format"],
            schema=fields["schema"],
            tags=tuple(fields.get("tags") or ()),
            metadata=dict(fields.get("metadata") or {}),
            row_count=fields.get("row_count"),
            size_bytes=fields.get("size_bytes"),
            client=client,
        )

    # -- the data ----------------------------------------------------------------------------------------

    @property
    def location(self) -> StorageLocation:
        """The parsed storage_path (protocol, bucket, path)."""
        return parse_storage_path(self.storage_path)

    @property
    def columns(self) -> builtins.list[dict[str, Any]]:
        """The registered columns ({name, type, …})."""
        return builtins.list(self.schema.get("columns", []))

    def lineage(self) -> dict[str, Any]:
        """The dataset's lineage record from the metadata center."""
        client = self.client or MetadataCenterClient()
        try:
            return client.get_lineage(self.dataset_id)
        except MetadataCenterError as err:
            raise DatasetError(f"lineage of {self.dataset_id!r}: {err.message}") from err

    def files(self) -> builtins.list[DataFile]:
        """The dataset's data files, sorted by path (hidden and `_`-prefixed entries skipped).

        DatasetError when the storage, or a local file under it (symbolic links resolved), is outside the
        allowed storage roots (PLATFORM_STORAGE_ROOTS) or is one of the platform's own files.
        """
        policy = self._policy()
        try:
            policy.check(self.storage_path)
        except StorageAccessError as err:
            raise DatasetError(f"dataset {self.dataset_id!r}: {err}") from None
        fs, root = self._filesystem()
        try:
            info = fs.info(root)
        except FileNotFoundError:
            raise DatasetError(f"dataset {self.dataset_id!r}: {self.storage_path} does not exist") from None
        except OSError as err:
            raise DatasetError(
                f"dataset {self.dataset_id!r}: cannot reach {self.storage_path}: {err}"
            ) from err
        if info["type"] != "directory":
            found = [DataFile(root, root.rstrip("/").rsplit("/", 1)[-1], int(info.get("size") or 0))]
        else:
            base = root.rstrip("/")
            found = []
            for path, detail in sorted(fs.find(base, detail=True).items()):
                relative = path[len(base) :].lstrip("/")
                if not relative or any(part.startswith(HIDDEN_PREFIXES) for part in relative.split("/")):
                    continue
                found.append(DataFile(path, relative, int(detail.get("size") or 0)))
            if not found:
                raise DatasetError(f"dataset {self.dataset_id!r}: no data files under {self.storage_path}")
        if self.location.is_local:
            self._check_local_files(policy, found)
        return found

    def _policy(self) -> Any:
        try:
            return storage_policy()
        except ValueError as err:  # a malformed PLATFORM_STORAGE_ROOTS
            raise DatasetError(f"dataset {self.dataset_id!r}: {err}") from None

    def _check_local_files(self, policy: Any, files: builtins.list[DataFile]) -> None:
        """Every local file, real path resolved, inside the roots: a symbolic link inside a root that points
        elsewhere (or a file swapped for one after registration) is refused."""
        for data_file in files:
            try:
                policy.check_file(data_file.path)
            except StorageAccessError:
                raise DatasetError(
                    f"dataset {self.dataset_id!r}: {self._shown(data_file)} resolves outside the allowed storage "
                    f"roots: {policy.describe_roots()} (symbolic links are followed before the check; the "
                    "platform's own files are never readable)"
                ) from None

    def _shown(self, data_file: DataFile) -> str:
        """A data file as the user registered it: the storage_path, plus the file's place under it."""
        if data_file.path.rstrip("/") == self._filesystem_root().rstrip("/"):
            return self.storage_path
        return f"{self.storage_path.rstrip('/')}/{data_file.relative}"

    def read(
        self, *, as_arrow: bool = False, columns: Sequence[str] | None = None, as_delivered: bool = False
    ) -> Any:
        """The dataset's rows: a pandas DataFrame, or a pyarrow Table with `as_arrow=True`.

        `as_delivered=True` reads CSV values as text instead of casting them to the registered types, so one bad
        value does not fail the whole read (the platform's cleaning casts and quarantines row by row).
        """
        import pyarrow.dataset as pads

        files = self.files()
        fs, root = self._filesystem()
        single = len(files) == 1 and files[0].path == root
        arrow_format = self._arrow_format(as_delivered)
        failure: str | None = None
        # Errors are turned into messages and raised outside the `except`: an Arrow error quotes the line it
        # failed on, and a chained exception would carry it into Dagster's event log.
        try:
            dataset = pads.dataset(
                [f.path for f in files],
                filesystem=fs,
                format=arrow_format,
                partitioning=None if single else "hive",
                partition_base_dir=None if single else root.rstrip("/"),
            )
            if self.format == "csv":
                failure = self._foreign_header(dataset, files)
            if failure is None:
                table = dataset.to_table(columns=builtins.list(columns) if columns else None)
        except Exception as err:  # noqa: BLE001 - described below without the file's content
            failure = self._read_failure(err, files, fs, arrow_format)
        if failure is not None:
            raise DatasetError(failure)
        table = table if as_delivered else self._cast_temporal(table)
        return table if as_arrow else table.to_pandas()

    def _foreign_header(self, dataset: Any, files: builtins.list[DataFile]) -> str | None:
        """A message when a CSV file's header has none of the registered columns: it is not this dataset's
        data (a key file or /etc/passwd read as CSV would otherwise show its first line as a column name)."""
        registered = {c["name"] for c in self.columns}
        for data_file, fragment in zip(files, dataset.get_fragments(), strict=False):
            names = fragment.physical_schema.names
            if registered and not registered.intersection(names):
                return (
                    f"dataset {self.dataset_id!r}: cannot read {self._shown(data_file)} as csv: its header "
                    f"(line 1) has none of the {len(registered)} registered columns ({len(names)} fields found; "
                    "the content is not shown)"
                )
        return None

    def _read_failure(
        self, err: Exception, files: builtins.list[DataFile], fs: Any, arrow_format: Any
    ) -> str:
        """Which file failed and where (line, field counts), without quoting the file."""
        import pyarrow.dataset as pads

        where, cause = self.storage_path, err
        if len(files) > 1:
            for data_file in files:
                try:
                    pads.dataset([data_file.path], filesystem=fs, format=arrow_format).to_table()
                except Exception as file_err:  # noqa: BLE001
                    where, cause = self._shown(data_file), file_err
                    break
        elif files:
            where = self._shown(files[0])
        return (
            f"dataset {self.dataset_id!r}: cannot read {where} as {self.format}: {describe_read_error(cause)}"
        )

    @property
    def manifest(self) -> dict[str, Any]:
        """The version's manifest (inputs, code, quality, metrics: lib/dataset_versions.py); {} for a dataset
        registered from outside the platform."""
        return dict(self.metadata.get("manifest") or {})

    def to_torch(
        self,
        batch_size: int = 256,
        *,
        columns: Sequence[str] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
        shuffle_rows: int | None = None,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
    ) -> Any:
        """A PyTorch DataLoader of this version's rows (parquet only), streamed from its storage.

        Batches are dicts of tensors (vectors as float32 [B, dim]; text as lists of str). With `rank` and
        `world_size` (default: torch.distributed's when it is initialised, else 0 and 1) each rank reads a
        disjoint shard; all ranks together read every row once per epoch. Call `set_epoch(n)` on the loader
        before each epoch: the same seed and epoch give the same order. See platform_assets/loaders.py.
        """
        from platform_assets.loaders import SHUFFLE_ROWS, EpochDataLoader, LoaderError, ParquetShards

        rank, world_size = _distributed_place(rank, world_size)
        paths = self._parquet_paths()
        try:
            shards = ParquetShards(
                paths,
                functools.partial(_pyarrow_filesystem, self.location.is_local),
                columns=columns,
                batch_size=batch_size,
                shuffle=shuffle,
                seed=seed,
                rank=rank,
                world_size=world_size,
                num_workers=num_workers,
                drop_last=drop_last,
                shuffle_rows=shuffle_rows or SHUFFLE_ROWS,
            )
        except LoaderError as err:
            raise DatasetError(f"dataset {self.dataset_id!r} version {self.version}: {err}") from None
        options: dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin_memory}
        if num_workers:
            options.update(persistent_workers=persistent_workers, prefetch_factor=prefetch_factor or 2)
        return EpochDataLoader(shards, **options)

    def to_ray(self, columns: Sequence[str] | None = None, **read_options: Any) -> Any:
        """This version's rows as a `ray.data.Dataset` (parquet only), for Ray Train: `iter_torch_batches`,
        `streaming_split`. `read_options` go to `ray.data.read_parquet`."""
        import ray.data

        paths = self._parquet_paths()
        return ray.data.read_parquet(
            paths,
            filesystem=_pyarrow_filesystem(self.location.is_local),
            columns=builtins.list(columns) if columns else None,
            **read_options,
        )

    def _parquet_paths(self) -> builtins.list[str]:
        if self.format != "parquet":
            raise DatasetError(
                f"dataset {self.dataset_id!r} is {self.format}: the training loaders read parquet versions "
                "(the platform's published and training-ready datasets); use read() for this one"
            )
        return [data_file.path for data_file in self.files()]

    def mount(self, target: str | os.PathLike[str]) -> Path:
        """Make the dataset's files available under `target` (created if missing), keeping their layout:
        symlinks to local storage, a download from S3 (files already there with the same size are kept).
        Returns `target`."""
        destination = Path(target).expanduser().absolute()
        files = self.files()
        fs, _ = self._filesystem()
        destination.mkdir(parents=True, exist_ok=True)
        for data_file in files:
            local = destination / data_file.relative
            local.parent.mkdir(parents=True, exist_ok=True)
            if self.location.is_local:
                self._link(Path(data_file.path), local)
            elif not (local.is_file() and not local.is_symlink() and local.stat().st_size == data_file.size):
                partial = local.with_name(f".{local.name}.part")
                try:
                    fs.get_file(data_file.path, str(partial))
                except OSError as err:
                    partial.unlink(missing_ok=True)
                    raise DatasetError(
                        f"dataset {self.dataset_id!r}: downloading {data_file.path}: {err}"
                    ) from err
                os.replace(partial, local)
        return destination

    # -- plumbing ----------------------------------------------------------------------------------------

    def _filesystem_root(self) -> str:
        location = self.location
        return location.path if location.is_local else f"{location.bucket}/{location.path}".rstrip("/")

    def _filesystem(self) -> tuple[Any, str]:
        """An fsspec file system for the storage and the dataset's root path within it."""
        location = self.location
        if location.is_local:
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem(), location.path
        if location.protocol != "s3":
            raise DatasetError(
                f"dataset {self.dataset_id!r}: the SDK reads local paths, file:// and s3://, not {location.protocol}://"
            )
        import s3fs

        from platform_assets.lib.config import get_settings

        options = get_settings().storage_options_for("s3://")
        # No listing cache: a re-registered path may have new files.
        fs = s3fs.S3FileSystem(use_listings_cache=False, skip_instance_cache=True, **options)
        return fs, f"{location.bucket}/{location.path}".rstrip("/")

    def _arrow_format(self, as_delivered: bool = False) -> Any:
        import pyarrow.csv as pacsv
        import pyarrow.dataset as pads

        from platform_assets.metadata_center.column_types import arrow_type, normalize_type

        if self.format == "parquet":
            return pads.ParquetFileFormat()
        if self.format == "csv" and as_delivered:
            import pyarrow as pa

            names = [c["name"] for c in self.columns]
            return pads.CsvFileFormat(
                convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
            )
        if self.format == "csv":
            # Registered types, so that ids stay integers and codes like "00123" stay strings. Temporal columns
            # are parsed by inference and cast afterwards: the CSV reader refuses "…Z" for a zone-less type.
            column_types = {
                c["name"]: arrow_type(c["type"])
                for c in self.columns
                if normalize_type(c["type"]) not in TEMPORAL_TYPES
            }
            return pads.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=column_types))
        raise DatasetError(f"dataset {self.dataset_id!r}: unsupported format {self.format!r}")

    def _cast_temporal(self, table: Any) -> Any:
        import pyarrow as pa

        from platform_assets.metadata_center.column_types import arrow_type, normalize_type

        if self.format != "csv":
            return table
        for column in self.columns:
            name = column["name"]
            if name not in table.column_names or normalize_type(column["type"]) not in TEMPORAL_TYPES:
                continue
            wanted = arrow_type(column["type"])
            current = table.column(name)
            if current.type == wanted:
                continue
            converted = None
            try:
                if pa.types.is_timestamp(current.type) and current.type.tz and wanted.tz is None:
                    # Arrow stores instants in UTC, so dropping the zone keeps the UTC wall time.
                    converted = current.cast(pa.timestamp(current.type.unit)).cast(wanted)
                else:
                    converted = current.cast(wanted)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # raised below, outside the handler: Arrow's message quotes the value
            if converted is None:
                raise DatasetError(
                    f"dataset {self.dataset_id!r}: column {name!r} is not {column['type']}: "
                    f"{_first_unconvertible(current, wanted)} (read with as_delivered=True to clean row by row)"
                )
            table = table.set_column(table.column_names.index(name), name, converted)
        return table

    def _link(self, source: Path, link: Path) -> None:
        if link.is_symlink():
            if Path(os.readlink(link)) == source:
                return
            link.unlink()
        elif link.exists():
            raise DatasetError(
                f"cannot mount {self.dataset_id!r}: {link} exists and is not a link to the dataset"
            )
        link.symlink_to(source)


def _pyarrow_filesystem(local: bool) -> Any:
    """pyarrow's file system for a dataset's storage (made again in each loader worker)."""
    from pyarrow import fs

    from platform_assets.lib.config import get_settings

    return fs.LocalFileSystem() if local else get_settings().s3.pyarrow_filesystem()


def _distributed_place(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): as given, else torch.distributed's when it is initialised, else (0, 1)."""
    if rank is not None and world_size is not None:
        return rank, world_size
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return (dist.get_rank() if rank is None else rank), (
            dist.get_world_size() if world_size is None else world_size
        )
    if rank is not None or world_size is not None:
        raise DatasetError("give both rank and world_size (or neither, under torch.distributed)")
    return 0, 1


def describe_read_error(err: Exception) -> str:
    """What an Arrow read error says about *where* a file failed (line, field, counts, expected type), never
    the line or value it quotes."""
    text = str(err)
    parts: builtins.list[str] = []
    if row := re.search(r"Row #(\d+)", text):
        parts.append(f"line {row[1]}")
    if column := re.search(r"CSV column #(\d+)", text):
        parts.append(f"field {int(column[1]) + 1}")
    if counts := re.search(r"Expected (\d+) columns, got (\d+)", text):
        parts.append(f"expected {counts[1]} fields, found {counts[2]}")
    elif conversion := re.search(r"conversion error to ([\w\[\], :/]+?):", text):
        parts.append(f"a value is not a valid {conversion[1]}")
    elif "magic bytes not found" in text or "not a parquet file" in text.lower():
        parts.append("not a parquet file")
    elif "Unable to merge" in text or "incompatible" in text.lower():
        parts.append("its files do not share one schema")
    elif "unbalanced quote" in text.lower() or "quote" in text.lower():
        parts.append("an unterminated quoted field")
    if not parts or (len(parts) == 1 and parts[0].startswith("line ")):
        parts.append(f"{type(err).__name__} (details not shown: they would quote the file)")
    return ", ".join(parts)


def _first_unconvertible(column: Any, wanted: Any) -> str:
    """'row N' of the first value that does not cast to `wanted` (and how many do not), without the value."""
    import pyarrow as pa

    # Text with a zone ("…Z") casts to a zoned timestamp only; such a value is not the culprit.
    targets = [wanted]
    if pa.types.is_timestamp(wanted) and wanted.tz is None:
        targets.append(pa.timestamp(wanted.unit, tz="UTC"))
    bad, first = 0, None
    for index, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        for target in targets:
            try:
                pa.array([value], type=column.type).cast(target)
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        else:
            bad += 1
            first = index + 1 if first is None else first
    if first is None:
        return "its values do not convert"
    return f"{bad} value(s) do not convert, the first in data row {first}"
