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

Feast imports this module by name when a store built by `feature_store()` first uses its offline store, so
the Feast imports below never run when the definitions load.
"""

from __future__ import annotations

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


def _read_source(data_source: Any, repo_path: str) -> Any:
    """A file source as an ibis table, read the way the file store reads it (local or S3, same options)."""
    import ibis

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
