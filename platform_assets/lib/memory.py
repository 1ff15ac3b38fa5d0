"""Keeping a step that works through data in chunks at the memory of one chunk."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return library if library is not None and hasattr(library, "malloc_trim") else None


def release_free_memory() -> None:
    """Give the memory freed since the last chunk back to the system, so the next chunk reuses it.

    Measured here (reviews, 1M rows in chunks of 250K): without this the peak RSS of a step crept up by about
    40 MiB per chunk, as glibc kept the pages of many small Python objects (pandas strings, GX results) that
    were freed between longer-lived ones; with it the peak stays flat from the second chunk on. Also asks
    Arrow's allocator to return what it caches. A no-op where there is no glibc (macOS, musl).
    """
    gc.collect()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    library = _glibc()
    if library is not None:
        library.malloc_trim(0)
