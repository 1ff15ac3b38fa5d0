"""The platform's Feast offline store: the file offline store, with a point-in-time join that keeps every row.

Feast 0.67's file offline store (`feast.infra.offline_stores.dask`) merges each entity row with all of its
user's feature rows and then filters on the TTL window, so an entity row whose feature rows all lie outside
the window (before the first feature day, or older than the TTL) disappears from the result instead of
coming back with nulls. Feast's DuckDB offline store joins correctly (`point_in_time_join` in
`feast.infra.offline_stores.ibis`: a left join per feature view), but it reads S3 through DuckDB's httpfs
extension, which DuckDB downloads at run time and which ignores the file source's endpoint override.

`LakeOfflineStore` therefore reads sources exactly as the file store does (dask + fsspec: local directories,
S3 with the endpoint override) and answers `get_historical_features` with the DuckDB store's join. Everything
else (materialize, pushes to the offline log, non-entity retrieval) is the file store unchanged.

`pinned_sources` hands the join the rows of a source as given (a lake table read at a pinned snapshot)
instead of the source's files: a training set joins the feature table exactly as it was at the snapshot it
recorded, whatever the files show now, so rebuilding it later gives the same rows.

Feast imports this module by name when a store built by `feature_store()` first uses its offline store, so
the Feast imports below never run when the definitions load.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import pandas as pd

# Feast loads the class by its dotted path (the `offline_store.type` of the RepoConfig), so it must be a
# module-level subclass.
from feast.infra.offline_stores.dask import (  # noqa: TID253
    DaskOfflineStore,
    DaskOfflineStoreConfig,
    _read_datasource,
)
from feast.infra.offline_stores.offline_store import RetrievalJob  # noqa: TID253


class LakeOfflineStoreConfig(DaskOfflineStoreConfig):
    """Configuration of `LakeOfflineStore` (nothing beyond the file store's); the type is store.OFFLINE_STORE."""

    type: Literal["platform_assets.defs.features.offline_store.LakeOfflineStore"] = (  # type: ignore[assignment]
        "platform_assets.defs.features.offline_store.LakeOfflineStore"
    )


# Data source name → the rows to join instead of the source's files (set by `pinned_sources`).
_PINNED: ContextVar[Mapping[str, Any] | None] = ContextVar("platform_pinned_feast_sources", default=None)


@contextmanager
def pinned_sources(rows: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, `get_historical_features` with an entity frame joins these rows (an Arrow table or a
    pandas frame per data source name) instead of reading the sources' files.

    Feast reads the sources while `get_historical_features` runs (its result holds them in memory), so the
    block needs to cover that call only; it is per thread/task (a context variable).
    """
    token = _PINNED.set({**(_PINNED.get() or {}), **rows})
    try:
        yield
    finally:
        _PINNED.reset(token)


def _read_source(data_source: Any, repo_path: str) -> Any:
    """A file source as an ibis table, read the way the file store reads it (local or S3, same options), or
    the rows pinned for it."""
    import ibis

    pinned = (_PINNED.get() or {}).get(data_source.name)
    if pinned is not None:
        return ibis.memtable(pinned)
    return ibis.memtable(_read_datasource(data_source, repo_path).compute())


class LakeOfflineStore(DaskOfflineStore):
    """The file offline store whose `get_historical_features` returns every entity row (a left join)."""

    @staticmethod
    def get_historical_features(
        config: Any,
        feature_views: list[Any],
        feature_refs: list[str],
        entity_df: Any,
        registry: Any,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        """One output row per entity row, with nulls where no feature row lies in the view's TTL window.

        Rows come back in no particular order (Feast promises none); keep an id column in the entity frame to
        line them up. Without an entity frame (a time range), or with a Dask frame, the file store answers.
        """
        if not isinstance(entity_df, pd.DataFrame):
            return DaskOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names=full_feature_names,
                filter_by_created_timestamp=filter_by_created_timestamp,
                **kwargs,
            )
        from feast.infra.offline_stores.duckdb import _write_data_source  # noqa: TID253
        from feast.infra.offline_stores.ibis import get_historical_features_ibis  # noqa: TID253

        # Feast's ibis join rewrites the timestamp column of the frame it is given; the caller's stays as is.
        entity_df = entity_df.copy()
        return get_historical_features_ibis(
            config=config,
            feature_views=feature_views,
            feature_refs=feature_refs,
            entity_df=entity_df,
            registry=registry,
            project=project,
            full_feature_names=full_feature_names,
            data_source_reader=_read_source,
            data_source_writer=_write_data_source,
            filter_by_created_timestamp=filter_by_created_timestamp,
        )
