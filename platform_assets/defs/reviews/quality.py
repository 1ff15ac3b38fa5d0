"""The reviews domain's quality contract: expectation suites per layer and the pandera-backed Dagster types.

To add a rule, append it to the suite of the layer it protects (see README, "Adding a quality rule").
Suites marked blocking gate the data: if they fail, nothing downstream is computed.
"""

from platform_assets.defs.reviews.cleaning import MAX_TEXT_CHARS, MIN_TEXT_CHARS, RATING_RANGE, REJECT_REASONS
from platform_assets.lib import quality as q
from platform_assets.lib.quality.schemas import pandera_dagster_type

REQUIRED = ["review_id", "product_id", "user_id", "rating", "text", "created_at"]
NULL_RATIO_LIMIT = 0.05  # seed 001, section 10.2: missing ratio < 5 %

RAW_SUITE = q.Suite(
    name="raw_expectations",
    description="What the source should deliver: the columns, few nulls (< 5 %), few mistyped or out-of-range values.",
    rules=[
        q.row_count_between(min_value=1),
        *[q.column_exists(column) for column in REQUIRED],
        *[q.null_ratio_below(column, NULL_RATIO_LIMIT) for column in ("review_id", "text", "rating")],
        q.between("rating", *RATING_RANGE, severity="warning", mostly=1 - NULL_RATIO_LIMIT),
        q.null_ratio_above("_ingest_error", 1 - NULL_RATIO_LIMIT),
    ],
)

CLEANED_SUITE = q.Suite(
    name="cleaned_contract",
    blocking=True,
    description="The contract consumers rely on; blocking: if it fails, embeddings are not computed.",
    rules=[
        q.row_count_between(min_value=1, severity="critical"),
        *[q.not_null(column, severity="critical") for column in REQUIRED],
        q.unique("review_id"),
        q.matches_regex("review_id", r"^\S+$"),
        q.between("rating", *RATING_RANGE),
        q.length_between("text", MIN_TEXT_CHARS, MAX_TEXT_CHARS),
        q.not_matches_regex("text", r"<[a-zA-Z/][^>]*>|^\s|\s$|\s{2,}"),
    ],
)

QUARANTINE_SUITE = q.Suite(
    name="quarantine_expectations",
    description="Every quarantined row says why, with a known reason code.",
    rules=[q.not_null("reject_reason", severity="critical"), q.in_set("reject_reason", REJECT_REASONS)],
)

EMBEDDED_SUITE = q.Suite(
    name="embedded_expectations",
    description="The vector table's keys and hashes are present and unique.",
    columns=("review_id", "text_hash", "rating"),
    rules=[
        q.not_null("review_id", severity="critical"),
        q.unique("review_id"),
        q.not_null("text_hash"),
        q.between("rating", *RATING_RANGE),
    ],
)


# pandera (and, through it, pyspark) is heavy: the schemas live in schemas.py, imported when a check runs.
RawReviewsType = pandera_dagster_type(
    "RawReviews", "platform_assets.defs.reviews.schemas:RawReviews", "Typed raw reviews (pandera schema)."
)
CleanedReviewsType = pandera_dagster_type(
    "CleanedReviews",
    "platform_assets.defs.reviews.schemas:CleanedReviews",
    "Cleaned reviews (pandera schema).",
)
