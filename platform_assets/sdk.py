"""The Python SDK: find a registered dataset and read or mount its files.

    from platform_assets.sdk import Dataset

    dataset = Dataset.get("sales_training_2024_01")      # the latest version (or version=N)
    df = dataset.read()                                  # pandas; dataset.read(as_arrow=True) -> pyarrow.Table
    path = dataset.mount("/mnt/data")                    # the dataset's files under /mnt/data
    Dataset.list(tags=["training-ready"])                # the latest version of each matching dataset

The registry is the metadata center (METADATA_CENTER_URL). Storage is read where it was registered: a
local path or file:// URI, or s3:// with credentials and endpoint from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL. A storage_path is one file or a directory of files
(hive-style `key=value` sub-directories become columns; names starting with `.` or `_`, such as
`_SUCCESS`, are skipped). CSV columns are read with their registered types.

pandas, pyarrow and s3fs are imported on first use, so importing the SDK is cheap.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_assets.metadata_center.client import MetadataCenterClient, MetadataCenterError
from platform_assets.metadata_center.storage import StorageLocation, parse_storage_path

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
        return [cls._from_fields(item["payload"], item["version"], client) for item in items]

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
        """The dataset's data files, sorted by path (hidden and `_`-prefixed entries skipped)."""
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
            return [DataFile(root, root.rstrip("/").rsplit("/", 1)[-1], int(info.get("size") or 0))]
        base = root.rstrip("/")
        found: builtins.list[DataFile] = []
        for path, detail in sorted(fs.find(base, detail=True).items()):
            relative = path[len(base) :].lstrip("/")
            if not relative or any(part.startswith(HIDDEN_PREFIXES) for part in relative.split("/")):
                continue
            found.append(DataFile(path, relative, int(detail.get("size") or 0)))
        if not found:
            raise DatasetError(f"dataset {self.dataset_id!r}: no data files under {self.storage_path}")
        return found

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
        try:
            dataset = pads.dataset(
                [f.path for f in files],
                filesystem=fs,
                format=self._arrow_format(as_delivered),
                partitioning=None if single else "hive",
                partition_base_dir=None if single else root.rstrip("/"),
            )
            table = dataset.to_table(columns=builtins.list(columns) if columns else None)
        except Exception as err:
            raise DatasetError(
                f"dataset {self.dataset_id!r}: cannot read {self.storage_path} as {self.format}: {err}"
            ) from err
        table = table if as_delivered else self._cast_temporal(table)
        return table if as_arrow else table.to_pandas()

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
            try:
                if pa.types.is_timestamp(current.type) and current.type.tz and wanted.tz is None:
                    # Arrow stores instants in UTC, so dropping the zone keeps the UTC wall time.
                    converted = current.cast(pa.timestamp(current.type.unit)).cast(wanted)
                else:
                    converted = current.cast(wanted)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise DatasetError(
                    f"dataset {self.dataset_id!r}: column {name!r} is not {column['type']}: {err}"
                ) from err
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
