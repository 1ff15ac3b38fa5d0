"""The contract of each reviews dataset, declared once: columns, types, nullability, key, value rules.

The landing reader's schema, the pandera types (structure, checked when raw and cleaned are written), the
expectation suites (value rules, one asset check per dataset) and the column descriptions in the Dagster UI
are all derived from these declarations (`platform_assets.lib.contract`), and so are the cleaning rules'
limits: `cleaning.py` imports them from here.

To add a value rule, add it to the `rules` of the dataset it protects (README, "Adding a quality rule").
"""

from platform_assets.lib import quality as q
from platform_assets.lib.contract import Column, DatasetContract
from platform_assets.lib.embedding import EMBEDDING_DIM, EMBEDDING_SPACE_COLUMN, MODEL_NAME
from platform_assets.lib.vector_store import VECTOR_COLUMN

MIN_TEXT_CHARS = 10
MAX_TEXT_CHARS = 5000
RATING_RANGE = (1, 5)

# Reasons in the order cleaning applies them; the first that matches is the row's reason.
REJECT_REASONS = (
    "invalid_type",
    "missing_review_id",
    "invalid_review_id",
    "missing_product_id",
    "missing_user_id",
    "missing_created_at",
    "empty_text",
    "missing_rating",
    "rating_out_of_range",
    "text_too_short",
    "text_too_long",
    "duplicate_review_id",
    "duplicate_content",
)

# The share of missing values, mistyped values and out-of-range ratings the source may deliver before the
# raw check warns.
NULL_RATIO_LIMIT = 0.05
# Markup, a leading or trailing space, or a run of whitespace: cleaning removes all of them.
UNCLEAN_TEXT = r"<[a-zA-Z/][^>]*>|^\s|\s$|\s{2,}"
LANCEDB_TABLE = "reviews"

# The columns a source delivers, as the raw layer holds them (any of them may be null there).
DELIVERED = (
    Column("review_id", "string", "The review's id in the source system; unique once cleaned."),
    Column("product_id", "string", "The reviewed product."),
    Column("user_id", "string", "The reviewer."),
    Column("rating", "int", f"Stars given, {RATING_RANGE[0]} to {RATING_RANGE[1]} once cleaned."),
    Column(
        "text",
        "string",
        f"The review's text; once cleaned: no HTML, emoji or control characters, whitespace collapsed, "
        f"{MIN_TEXT_CHARS} to {MAX_TEXT_CHARS} characters.",
    ),
    Column("created_at", "timestamp", "When the review was written (UTC)."),
)
SOURCE = (
    Column(
        "_source_file",
        "string",
        "The landing file the row came from, relative to landing/reviews.",
        nullable=False,
        lineage=True,
    ),
    Column(
        "_source_line",
        "int",
        "The row's line in that file (its row number in Parquet).",
        nullable=False,
        lineage=True,
    ),
)
INGEST_ERROR = Column(
    "_ingest_error",
    "string",
    "Values that did not fit their column's type (column, value, file and line); null when all fit.",
    lineage=True,
)
# Delivered columns once cleaned: none is null.
CLEANED_COLUMNS = tuple(Column(c.name, c.type, c.description, nullable=False) for c in DELIVERED)

RAW_REVIEWS = DatasetContract(
    name="raw/reviews",
    columns=(*DELIVERED, *SOURCE, INGEST_ERROR),
    check="raw_expectations",
    check_description="What the source should deliver: rows, few nulls (< 5 %), few mistyped or out-of-range "
    "values.",
    rules=(
        q.row_count_between(min_value=1),
        *[q.null_ratio_below(column, NULL_RATIO_LIMIT) for column in ("review_id", "text", "rating")],
        q.between("rating", *RATING_RANGE, severity="warning", mostly=1 - NULL_RATIO_LIMIT),
        q.null_ratio_above("_ingest_error", 1 - NULL_RATIO_LIMIT),
    ),
)

CONTENT_KEY = Column(
    "_content_key",
    "int",
    "64-bit hash of user, product and normalised text: a later delivery's duplicate content is found by this "
    "key alone, without reading earlier texts.",
    nullable=False,
    lineage=True,
)

CLEANED_REVIEWS = DatasetContract(
    name="cleaned/reviews",
    columns=(*CLEANED_COLUMNS, *SOURCE, CONTENT_KEY),
    key="review_id",
    check="cleaned_contract",
    check_description="The contract consumers rely on; blocking: if it fails, embeddings are not computed.",
    blocking=True,
    rules=(
        q.row_count_between(min_value=1, severity="critical"),
        q.matches_regex("review_id", r"^\S+$"),
        q.between("rating", *RATING_RANGE),
        q.length_between("text", MIN_TEXT_CHARS, MAX_TEXT_CHARS),
        q.not_matches_regex("text", UNCLEAN_TEXT),
    ),
)

QUARANTINED_REVIEWS = DatasetContract(
    name="quarantine/reviews",
    columns=(
        *DELIVERED,
        *SOURCE,
        INGEST_ERROR,
        Column(
            "reject_reason",
            "string",
            "Why the row was rejected: the first rule it failed, as a stable code.",
            nullable=False,
        ),
        Column("reject_detail", "string", "What exactly was wrong, for a person.", nullable=False),
    ),
    check="quarantine_expectations",
    check_description="Every quarantined row says why, with a known reason code.",
    rules=(q.in_set("reject_reason", REJECT_REASONS),),
)

# The vector table's fingerprint of a row's stored columns (defs/reviews/embedding.py).
ROW_HASH_COLUMN = "row_hash"
EMBEDDED_REVIEWS = DatasetContract(
    name="embedded/reviews",
    columns=(
        *CLEANED_COLUMNS,
        *SOURCE,
        Column(
            "text_hash",
            "string",
            "Hash of the model, vector space and text: a stored vector is reused while it is unchanged.",
            nullable=False,
        ),
        Column(
            EMBEDDING_SPACE_COLUMN,
            "string",
            "The vector space (model and backend) the vector was computed in.",
            nullable=False,
        ),
        Column(
            ROW_HASH_COLUMN,
            "string",
            "Hash of every other column but the vector: a re-run rewrites a row only when one of them changed "
            "(null on rows written before it existed).",
        ),
        Column(
            VECTOR_COLUMN,
            "vector",
            f"{MODEL_NAME} embedding of the text: {EMBEDDING_DIM} float32 values, unit length.",
            nullable=False,
        ),
    ),
    key="review_id",
    check="embedded_expectations",
    check_description="The vector table's keys and hashes are present and unique.",
    rules=(q.between("rating", *RATING_RANGE),),
    # Reading every text and vector back from LanceDB costs more than this warning tells: the cleaned
    # contract checked the text, embedded_matches_cleaned checks the vectors.
    checked_columns=("review_id", "text_hash", "rating"),
)

# Curation (defs/reviews/curation.py): the embedded reviews minus near-duplicates and outliers, personal data
# masked. The kept rows' vectors stay in LanceDB (CURATED_LANCEDB_TABLE); the lake tables hold no vectors.
CURATED_LANCEDB_TABLE = "curated_reviews"
# Reasons in the order curation applies them; the first that matches is the row's reason.
CURATION_REJECT_REASONS = ("near_duplicate", "outlier", "pii")
OUTLIER_SCORE = Column(
    "outlier_score",
    "float",
    "Mean cosine distance to the review's nearest distinct reviews (near-duplicates left out); high means atypical.",
)
PII_FOUND = Column(
    "pii_found",
    "string",
    "The kinds of personal data found in the text (email, phone, card, ip; comma-separated), masked in the text "
    "unless the policy keeps them; empty when none.",
    nullable=False,
)
CURATED_REVIEWS = DatasetContract(
    name="curated/reviews",
    columns=(
        *CLEANED_COLUMNS,
        *SOURCE,
        Column(OUTLIER_SCORE.name, OUTLIER_SCORE.type, OUTLIER_SCORE.description, nullable=False),
        PII_FOUND,
        Column(
            EMBEDDING_SPACE_COLUMN,
            "string",
            "The vector space (model and backend) of the review's vector in the curated vector table.",
            nullable=False,
        ),
    ),
    key="review_id",
    check="curated_contract",
    check_description="What training sets rely on: unique review_ids, valid ratings, text present.",
    rules=(q.between("rating", *RATING_RANGE), q.length_between("text", 1, MAX_TEXT_CHARS)),
)

CURATION_QUARANTINE = DatasetContract(
    name="quarantine/reviews_curation",
    columns=(
        *CLEANED_COLUMNS,
        *SOURCE,
        Column(
            "reject_reason",
            "string",
            f"Why curation removed the row: {', '.join(CURATION_REJECT_REASONS)} (the first that applies).",
            nullable=False,
        ),
        Column("reject_detail", "string", "What exactly was found, for a person.", nullable=False),
        Column(
            "duplicate_of",
            "string",
            "For a near-duplicate: the kept review_id it duplicates (null otherwise).",
        ),
        Column("similarity", "float", "For a near-duplicate: cosine similarity to the kept review."),
        OUTLIER_SCORE,
        PII_FOUND,
    ),
    check="curation_quarantine_expectations",
    check_description="Every row curation removed says why, with a known reason; near-duplicates name their twin.",
    rules=(q.in_set("reject_reason", CURATION_REJECT_REASONS),),
)

DUPLICATE_PAIRS = DatasetContract(
    name="curated/reviews_duplicate_pairs",
    columns=(
        Column("review_id", "string", "The review removed as a near-duplicate.", nullable=False),
        Column("duplicate_of", "string", "The kept review (the first delivered).", nullable=False),
        Column("similarity", "float", "Cosine similarity of the two reviews' vectors.", nullable=False),
        Column(
            "component_id",
            "string",
            "The group of reviews that duplicate one kept review: its review_id (every pair points at a kept "
            "review, never at another duplicate).",
            nullable=False,
        ),
        Column(
            "match",
            "string",
            "Where the kept review is: same_delivery, or earlier_delivery (found through the ANN index).",
            nullable=False,
        ),
        Column("threshold", "float", "The similarity threshold the decision used.", nullable=False),
        Column("dagster_run_id", "string", "The run that made the decision.", nullable=False),
        SOURCE[0],
    ),
    key="review_id",
    check="duplicate_pairs_expectations",
    check_description="One decision per removed review, at or above its threshold, never pointing at itself.",
    rules=(q.in_set("match", ("same_delivery", "earlier_delivery")), q.between("similarity", -1.0, 1.0001)),
)
