"""Training loaders over a dataset version: PyTorch (`to_torch`) and Ray Data (`to_ray`).

    from platform_assets.sdk import Dataset

    loader = Dataset.get("reviews_corpus", version=3).to_torch(
        batch_size=256, columns=["vector", "rating"], shuffle=True, seed=7, rank=rank, world_size=world_size
    )
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:          # {"vector": float32 [B, 384], "rating": int64 [B]}
            ...

A version is parquet written in row groups of a fixed size (lib/published.py). The loader's unit of work is a
row group (or an equal slice of one, when a small dataset has fewer row groups than readers), read on its own
with pyarrow from the local disk or S3, so nothing holds the dataset in memory. Each epoch:

- the units are permuted with a generator seeded by (seed, epoch) — the same on every rank — and rank r takes
  every world_size-th unit from r: the ranks' shards are disjoint and together cover every row exactly once;
- within a rank, DataLoader worker w takes every num_workers-th of the rank's units;
- each worker shuffles rows inside a buffer of whole units (`shuffle_rows`, 65,536 rows by default) with a
  generator seeded by (seed, epoch, rank, worker) and cuts it into batches; rows left over join the next
  buffer, so every batch but a worker's last is full.

So the same seed and epoch give the same batches, and another epoch another order (`set_epoch`). Ranks' shards
differ in size by at most one unit; `len(loader)` is this rank's number of batches this epoch (DistributedDataParallel
training should step the smallest count, or use `torch.distributed.algorithms.Join`).

Why not `DistributedSampler`: it samples row indices of a map-style dataset, which parquet cannot serve without
random access, and it pads shards with repeated rows; Lance's samplers would need `pylance`, which this
project does not ship. PyTorch's `IterableDataset` and `DataLoader` do the workers, prefetching and pinning.
Batches are built column-wise (no per-row collate): numbers and vectors as tensors, text as lists of str.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.utils.data

if TYPE_CHECKING:
    import pyarrow as pa

SHUFFLE_ROWS = 65_536
# Units each reader reads ahead on threads.
PREFETCH_UNITS = 3
# Units per reader (rank × worker) at least, when a dataset is small enough to split its row groups.
UNITS_PER_READER = 4


class LoaderError(Exception):
    """The loader's arguments or data do not fit; the message says which and why."""


@dataclass(frozen=True)
class Unit:
    """Rows [start, stop) of one row group of one file: what a reader reads at once."""

    file: int
    row_group: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def plan_units(row_groups: Sequence[Sequence[int]], readers: int) -> list[Unit]:
    """The units of a dataset whose file i has row groups of `row_groups[i]` rows: whole row groups, or equal
    slices of them when there would be fewer than UNITS_PER_READER units per reader."""
    total = sum(sum(groups) for groups in row_groups)
    if total == 0:
        return []
    largest = max(max(groups, default=0) for groups in row_groups)
    unit_rows = max(1, min(largest, math.ceil(total / (readers * UNITS_PER_READER))))
    units = []
    for file_index, groups in enumerate(row_groups):
        for group_index, rows in enumerate(groups):
            pieces = max(1, math.ceil(rows / unit_rows))
            bounds = [round(rows * i / pieces) for i in range(pieces + 1)]
            units += [Unit(file_index, group_index, a, b) for a, b in itertools.pairwise(bounds) if b > a]
    return units


def shard_units(
    units: Sequence[Unit], *, epoch: int, seed: int, shuffle: bool, rank: int, world_size: int
) -> list[Unit]:
    """Rank `rank`'s units in epoch `epoch`: every world_size-th of the (seeded, per-epoch) permutation."""
    order = np.random.default_rng([seed, epoch]).permutation(len(units)) if shuffle else np.arange(len(units))
    return [units[i] for i in order[rank::world_size]]


def batch_count(rows: int, batch_size: int, drop_last: bool) -> int:
    """Batches from `rows` rows."""
    return rows // batch_size if drop_last else math.ceil(rows / batch_size)


@dataclass(frozen=True)
class BufferColumns:
    """The columns of a shuffle buffer as numpy arrays, one per piece read (never concatenated: a batch gathers
    its rows from the pieces, so each value is copied once, into the batch)."""

    columns: dict[str, list[np.ndarray]]
    offsets: np.ndarray  # the first row of each piece, and the total rows last

    @classmethod
    def of(cls, tables: Sequence[pa.Table]) -> BufferColumns:
        tables = [t for t in tables if t.num_rows]
        names = tables[0].column_names if tables else []
        columns = {name: [numpy_column(name, t.column(name)) for t in tables] for name in names}
        offsets = np.cumsum([0, *(t.num_rows for t in tables)])
        return cls(columns, offsets)

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])

    def batch(self, rows: np.ndarray) -> dict[str, Any]:
        """The rows at buffer positions `rows`: tensors, and lists of str for text."""
        piece = np.searchsorted(self.offsets, rows, side="right") - 1
        pieces = np.unique(piece)
        batch: dict[str, Any] = {}
        for name, arrays in self.columns.items():
            if len(pieces) == 1:
                picked = arrays[pieces[0]][rows - self.offsets[pieces[0]]]
            else:
                dtype = np.result_type(*(arrays[p] for p in pieces))
                picked = np.empty((len(rows), *arrays[0].shape[1:]), dtype=dtype)
                for p in pieces:
                    selected = piece == p
                    picked[selected] = arrays[p][rows[selected] - self.offsets[p]]
            batch[name] = picked.tolist() if picked.dtype == object else torch.from_numpy(picked)
        return batch


def numpy_column(name: str, column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy: numbers and booleans as they are (integers with nulls as NaN floats), vectors
    (fixed-size or equal-length lists) as 2-D arrays, timestamps as int64 since the epoch in their unit, dates
    as int32 days, anything else (text) as an object array. Zero-copy where Arrow allows."""
    import pyarrow as pa

    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind = column.type
    if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if column.null_count:
            raise LoaderError(f"column {name!r} has {column.null_count} null vectors")
        values = column.flatten().to_numpy(zero_copy_only=False)
        width = kind.list_size if pa.types.is_fixed_size_list(kind) else _common_length(name, column)
        return values.reshape(len(column), width)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        target = pa.int64() if pa.types.is_timestamp(kind) else pa.int32()
        return column.view(target).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return column.to_numpy(zero_copy_only=False)
    return np.asarray(column.to_pylist(), dtype=object)


def _common_length(name: str, column: pa.Array) -> int:
    import pyarrow.compute as pc

    lengths = pc.list_value_length(column)
    low, high = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if low != high:
        raise LoaderError(f"column {name!r} holds lists of {low} to {high} values: not a vector")
    return int(low or 0)


class ParquetShards(torch.utils.data.IterableDataset):
    """A rank's shard of a dataset's parquet files as an iterable of batches (see the module docstring).

    `filesystem` makes the pyarrow file system to read with (called in each worker process)."""

    def __init__(
        self,
        paths: Sequence[str],
        filesystem: Callable[[], Any],
        *,
        columns: Sequence[str] | None,
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int,
        world_size: int,
        num_workers: int,
        drop_last: bool,
        shuffle_rows: int,
        prefetch_units: int = PREFETCH_UNITS,
    ) -> None:
        import multiprocessing

        import pyarrow.parquet as pq

        if batch_size < 1:
            raise LoaderError(f"batch_size must be at least 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise LoaderError(f"rank must be in [0, world_size), got rank {rank} of world_size {world_size}")
        self.paths = list(paths)
        self.filesystem = filesystem
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_workers = max(1, num_workers)
        self.drop_last = drop_last
        self.shuffle_rows = max(shuffle_rows, batch_size)
        # Shared with DataLoader workers (forked or spawned), so `set_epoch` reaches persistent workers too.
        self._epoch = multiprocessing.RawValue("q", 0)
        fs = filesystem()
        metadata = [pq.ParquetFile(path, filesystem=fs).metadata for path in self.paths]
        schema = metadata[0].schema.to_arrow_schema() if metadata else None
        names = schema.names if schema is not None else []
        unknown = [c for c in columns or () if c not in names]
        if unknown:
            raise LoaderError(f"no column {', '.join(map(repr, unknown))} (columns: {', '.join(names)})")
        self.columns = list(columns) if columns else names
        self.units = plan_units(
            [[m.row_group(g).num_rows for g in range(m.num_row_groups)] for m in metadata],
            readers=world_size * self.num_workers,
        )
        self.total_rows = sum(unit.rows for unit in self.units)
        self.prefetch_units = max(1, prefetch_units)
        self._local = threading.local()

    # -- epochs and sizes -----------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration gives (like DistributedSampler.set_epoch)."""
        self._epoch.value = int(epoch)

    def worker_units(self, worker: int) -> list[Unit]:
        """The units worker `worker` of this rank reads this epoch."""
        units = shard_units(
            self.units,
            epoch=self.epoch,
            seed=self.seed,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
        )
        return units[worker :: self.num_workers]

    def shard_rows(self) -> int:
        """Rows this rank reads this epoch."""
        return sum(sum(u.rows for u in self.worker_units(w)) for w in range(self.num_workers))

    def __len__(self) -> int:
        return sum(
            batch_count(sum(u.rows for u in self.worker_units(w)), self.batch_size, self.drop_last)
            for w in range(self.num_workers)
        )

    # -- reading --------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None and info.num_workers != self.num_workers:
            raise LoaderError(
                f"built for {self.num_workers} workers, iterated by {info.num_workers}: pass num_workers to to_torch"
            )
        units = self.worker_units(worker)
        if info is None and self.num_workers > 1:
            # Iterated without DataLoader workers: read every worker's units, in turn.
            units = [u for w in range(self.num_workers) for u in self.worker_units(w)]
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        pending: list[pa.Table] = []
        pending_rows = 0
        with ThreadPoolExecutor(max_workers=self.prefetch_units, thread_name_prefix="parquet-read") as pool:
            # Units are read ahead on threads (pyarrow decodes without the GIL) while batches are handed out.
            reads: deque[Any] = deque()
            upcoming = iter(units)
            for unit in itertools.islice(upcoming, self.prefetch_units):
                reads.append(pool.submit(self._read, unit))
            index = 0
            while reads:
                table = reads.popleft().result()
                for unit in itertools.islice(upcoming, 1):
                    reads.append(pool.submit(self._read, unit))
                pending.append(table)
                pending_rows += table.num_rows
                index += 1
                if pending_rows >= self.shuffle_rows or index == len(units):
                    leftover = yield from self._emit(pending, rng, last=index == len(units))
                    pending, pending_rows = (
                        ([leftover], leftover.num_rows) if leftover is not None else ([], 0)
                    )

    def _emit(self, tables: list[pa.Table], rng: Any, last: bool) -> Iterator[dict[str, Any]]:
        """Shuffle the buffered rows and yield full batches; returns the rows left over (None at the end)."""
        import pyarrow as pa

        buffer = BufferColumns.of(tables)
        rows = buffer.rows
        order = rng.permutation(rows) if self.shuffle else np.arange(rows)
        full = rows // self.batch_size
        for b in range(full):
            yield buffer.batch(order[b * self.batch_size : (b + 1) * self.batch_size])
        start = full * self.batch_size
        if start == rows:
            return None
        if not last:
            table = pa.concat_tables(tables)
            return table.take(pa.array(order[start:])) if self.shuffle else table.slice(start)
        if not self.drop_last:
            yield buffer.batch(order[start:])
        return None

    def _read(self, unit: Unit) -> pa.Table:
        """One unit's rows; each reading thread keeps its own open files."""
        import pyarrow.parquet as pq

        files = getattr(self._local, "files", None)
        if files is None:
            files = self._local.files = {}
        if unit.file not in files:
            files[unit.file] = pq.ParquetFile(
                self.paths[unit.file], filesystem=self.filesystem(), pre_buffer=True
            )
        group = files[unit.file].read_row_group(unit.row_group, columns=self.columns, use_threads=False)
        return group.slice(unit.start, unit.rows)

    def __getstate__(self) -> dict[str, Any]:
        # Open files stay in the threads of the process that opened them.
        return {key: value for key, value in self.__dict__.items() if key != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


class EpochDataLoader(torch.utils.data.DataLoader):
    """A DataLoader over ParquetShards (the shards build the batches: batch_size=None) that reshuffles per
    epoch: call `set_epoch(n)` before each epoch."""

    def __init__(self, shards: ParquetShards, **options: Any) -> None:
        super().__init__(shards, batch_size=None, **options)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration gives."""
        self.dataset.set_epoch(epoch)

    @property
    def shard_rows(self) -> int:
        """Rows this rank reads this epoch."""
        return self.dataset.shard_rows()

    @property
    def total_rows(self) -> int:
        """Rows of the whole dataset (every rank together)."""
        return self.dataset.total_rows
