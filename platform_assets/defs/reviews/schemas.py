"""pandera schemas of the typed review layers (raw and cleaned), for validation and as Dagster types."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from platform_assets.defs.reviews.cleaning import MAX_TEXT_CHARS, MIN_TEXT_CHARS, RATING_RANGE


class RawReviews(pa.DataFrameModel):
    """Raw reviews as typed by the landing reader: nullable columns, lineage columns always set."""

    review_id: Series[pd.StringDtype] = pa.Field(nullable=True)
    product_id: Series[pd.StringDtype] = pa.Field(nullable=True)
    user_id: Series[pd.StringDtype] = pa.Field(nullable=True)
    rating: Series[pd.Int64Dtype] = pa.Field(nullable=True)
    text: Series[pd.StringDtype] = pa.Field(nullable=True)
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(nullable=True, dtype_kwargs={"unit": "ns", "tz": "UTC"})
    _source_file: Series[pd.StringDtype] = pa.Field(alias="_source_file")
    _source_line: Series[int] = pa.Field(alias="_source_line", ge=1)
    _ingest_error: Series[pd.StringDtype] = pa.Field(alias="_ingest_error", nullable=True)


class CleanedReviews(pa.DataFrameModel):
    """Cleaned reviews: every contract column present and typed, ids unique, ratings in range."""

    review_id: Series[pd.StringDtype] = pa.Field(unique=True)
    product_id: Series[pd.StringDtype]
    user_id: Series[pd.StringDtype]
    rating: Series[int] = pa.Field(ge=RATING_RANGE[0], le=RATING_RANGE[1])
    text: Series[pd.StringDtype] = pa.Field(
        str_length={"min_value": MIN_TEXT_CHARS, "max_value": MAX_TEXT_CHARS}
    )
    created_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    _source_file: Series[pd.StringDtype] = pa.Field(alias="_source_file")
    _source_line: Series[int] = pa.Field(alias="_source_line", ge=1)
