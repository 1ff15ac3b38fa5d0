"""Cleaning rules for reviews, in Daft: every raw row ends in exactly one of cleaned or quarantine.

A quarantined row keeps its original values and gets `reject_reason` (a stable code, one per row: the first
rule it fails, in the order of `REJECT_REASONS`) and `reject_detail` (what exactly was wrong, for a person).
Duplicates are judged among otherwise valid rows, keeping the first delivered (file order, then line), so
an invalid copy never displaces a valid original.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from platform_assets.lib.daft_runner import ensure_daft_runner

MIN_TEXT_CHARS = 10
MAX_TEXT_CHARS = 5000
RATING_RANGE = (1, 5)

# Reasons in the order they are applied; the first that matches is the row's reason.
REJECT_REASONS = (
    "invalid_type",
    "missing_review_id",
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

HTML_ENTITIES = {
    "&amp;": "&",
    "&lt;": "<",
    "&gt;": ">",
    "&quot;": '"',
    "&#39;": "'",
    "&apos;": "'",
    "&nbsp;": " ",
}
# Emoji, pictographs, control and format characters (zero-width spaces, BOMs) carry no meaning for search.
NOISE_PATTERN = r"[\p{Extended_Pictographic}\p{Cc}\p{Cf}\x{FE0F}\x{20E3}\x{1F3FB}-\x{1F3FF}]"
TAG_PATTERN = r"<[^<>]{0,2000}>"


@dataclass(frozen=True)
class CleaningResult:
    """The two outputs of cleaning; together they hold every raw row exactly once."""

    cleaned: pd.DataFrame
    quarantine: pd.DataFrame

    def reasons(self) -> dict[str, int]:
        """Quarantined row count per reject_reason, most frequent first."""
        counts = self.quarantine["reject_reason"].value_counts()
        return {str(reason): int(count) for reason, count in counts.items()}


def _clean_text_expr(text):  # noqa: ANN001, ANN202 - Daft expressions are untyped here
    """Strip HTML tags, entities and noise characters, then collapse whitespace."""
    import daft

    expr = text.regexp_replace(TAG_PATTERN, " ")
    for entity, char in HTML_ENTITIES.items():
        expr = expr.replace(entity, char)
    expr = expr.regexp_replace(r"&#?[A-Za-z0-9]{1,10};", " ")
    expr = expr.regexp_replace(NOISE_PATTERN, " ")
    return expr.regexp_replace(r"\s+", " ").strip().cast(daft.DataType.string())


def clean_reviews(raw: pd.DataFrame) -> CleaningResult:
    """Apply the review cleaning rules to a raw frame (as produced by `raw/reviews`)."""
    import daft
    from daft import col, lit
    from daft.functions import first_value, row_number, when
    from daft.window import Window

    ensure_daft_runner()
    raw = raw.reset_index(drop=True)
    frame = daft.from_pandas(raw.assign(_ordinal=range(len(raw))))

    text_clean = _clean_text_expr(col("text"))
    frame = frame.with_column("_text_clean", text_clean)
    # Normalised for duplicate detection only: case, punctuation and spacing differences are not new content.
    frame = frame.with_column(
        "_text_norm",
        col("_text_clean").lower().regexp_replace(r"[^\p{L}\p{N}]+", " ").strip(),
    )
    low, high = RATING_RANGE
    length = col("_text_clean").length()
    row_reason = (
        when(col("_ingest_error").not_null(), lit("invalid_type"))
        .when(col("review_id").is_null() | (col("review_id").strip() == ""), lit("missing_review_id"))
        .when(col("product_id").is_null() | (col("product_id").strip() == ""), lit("missing_product_id"))
        .when(col("user_id").is_null() | (col("user_id").strip() == ""), lit("missing_user_id"))
        .when(col("created_at").is_null(), lit("missing_created_at"))
        .when(col("text").is_null() | (col("text").strip() == ""), lit("empty_text"))
        .when(col("rating").is_null(), lit("missing_rating"))
        .when((col("rating") < low) | (col("rating") > high), lit("rating_out_of_range"))
        .when(length < MIN_TEXT_CHARS, lit("text_too_short"))
        .when(length > MAX_TEXT_CHARS, lit("text_too_long"))
        .otherwise(lit(None).cast(daft.DataType.string()))
    )
    frame = frame.with_column("reject_reason", row_reason)
    frame = frame.with_column("_valid", col("reject_reason").is_null())

    def first_of(*keys: str):  # noqa: ANN202
        window = Window().partition_by(*keys, "_valid").order_by("_ordinal")
        whole = window.rows_between(Window.unbounded_preceding, Window.unbounded_following)
        return window, whole

    id_window, id_whole = first_of("review_id")
    frame = frame.with_columns(
        {
            "_id_rank": row_number().over(id_window),
            "_id_first_file": first_value(col("_source_file")).over(id_whole),
            "_id_first_line": first_value(col("_source_line")).over(id_whole),
        }
    )
    frame = frame.with_column(
        "reject_reason",
        when(col("_valid") & (col("_id_rank") > 1), lit("duplicate_review_id")).otherwise(
            col("reject_reason")
        ),
    )
    frame = frame.with_column("_valid", col("reject_reason").is_null())
    content_window, content_whole = first_of("user_id", "product_id", "_text_norm")
    frame = frame.with_columns(
        {
            "_content_rank": row_number().over(content_window),
            "_content_first_id": first_value(col("review_id")).over(content_whole),
        }
    )
    frame = frame.with_column(
        "reject_reason",
        when(col("_valid") & (col("_content_rank") > 1), lit("duplicate_content")).otherwise(
            col("reject_reason")
        ),
    )
    result = frame.sort("_ordinal").to_pandas()
    return _split(raw, result)


def _split(raw: pd.DataFrame, result: pd.DataFrame) -> CleaningResult:
    rejected = result["reject_reason"].notna().to_numpy()
    quarantine = raw.loc[rejected].copy()
    quarantine["reject_reason"] = result.loc[rejected, "reject_reason"].astype("string").to_numpy()
    details = result.loc[rejected].assign(rating=raw.loc[rejected, "rating"].to_numpy())
    quarantine["reject_detail"] = [_detail(row) for row in details.to_dict(orient="records")]
    quarantine["reject_detail"] = quarantine["reject_detail"].astype("string")

    cleaned = raw.loc[~rejected].drop(columns=["_ingest_error"]).copy()
    cleaned["text"] = pd.array(result.loc[~rejected, "_text_clean"].to_numpy(), dtype="string")
    cleaned["rating"] = cleaned["rating"].astype("int64")
    return CleaningResult(
        cleaned=cleaned.reset_index(drop=True), quarantine=quarantine.reset_index(drop=True)
    )


def _detail(row: dict) -> str:
    reason = row["reject_reason"]
    if reason == "invalid_type":
        return str(row["_ingest_error"])
    if reason == "rating_out_of_range":
        return f"rating {int(row['rating'])} outside {RATING_RANGE[0]}..{RATING_RANGE[1]}"
    if reason == "text_too_short":
        return f"text has {len(row['_text_clean'])} characters after cleaning, minimum {MIN_TEXT_CHARS}"
    if reason == "text_too_long":
        return f"text has {len(row['_text_clean'])} characters after cleaning, maximum {MAX_TEXT_CHARS}"
    if reason == "duplicate_review_id":
        return f"review_id {row['review_id']} first delivered in {row['_id_first_file']} line {row['_id_first_line']}"
    if reason == "duplicate_content":
        return f"same user, product and text as review {row['_content_first_id']}"
    if reason == "empty_text":
        return "text is null, empty or only whitespace"
    return reason.replace("_", " ")
