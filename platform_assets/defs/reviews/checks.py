"""Asset checks of the reviews domain. Blocking checks stop bad data before it reaches embeddings."""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from platform_assets.defs.reviews.assets import CLEANED, EMBEDDED, QUARANTINE, RAW
from platform_assets.defs.reviews.cleaning import MAX_TEXT_CHARS, MIN_TEXT_CHARS, RATING_RANGE, REJECT_REASONS
from platform_assets.lib.embedding import EMBEDDING_DIM
from platform_assets.lib.vector_store import VECTOR_COLUMN, read_columns

MAX_TYPE_ERROR_RATIO = 0.05


@dg.asset_check(
    asset=RAW,
    description=f"Rows with values that do not fit their column's type stay under {MAX_TYPE_ERROR_RATIO:.0%}.",
)
def raw_type_errors_below_threshold(raw: pd.DataFrame) -> dg.AssetCheckResult:
    """A source that starts sending malformed values shows up here before its rows pile up in quarantine."""
    errors = raw["_ingest_error"].dropna()
    ratio = len(errors) / len(raw) if len(raw) else 0.0
    return dg.AssetCheckResult(
        passed=bool(len(raw)) and ratio <= MAX_TYPE_ERROR_RATIO,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rows": len(raw),
            "rows_with_type_errors": len(errors),
            "ratio": dg.MetadataValue.float(round(ratio, 4)),
            "sample": dg.MetadataValue.json(errors.head(5).tolist()),
        },
    )


@dg.asset_check(
    asset=CLEANED,
    additional_ins={"raw": dg.AssetIn(key=RAW), "quarantine": dg.AssetIn(key=QUARANTINE)},
    blocking=True,
    description="Every raw row is in exactly one of cleaned or quarantine: raw == cleaned + quarantine.",
)
def row_accounting(cleaned: pd.DataFrame, raw: pd.DataFrame, quarantine: pd.DataFrame) -> dg.AssetCheckResult:
    """Nothing is lost or duplicated between the raw layer and its two outputs."""
    accounted = len(cleaned) + len(quarantine)
    reasons = quarantine["reject_reason"].value_counts().to_dict() if len(quarantine) else {}
    return dg.AssetCheckResult(
        passed=accounted == len(raw),
        metadata={
            "raw_rows": len(raw),
            "cleaned_rows": len(cleaned),
            "quarantined_rows": len(quarantine),
            "difference": len(raw) - accounted,
            "quarantine_by_reason": dg.MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
        },
    )


@dg.asset_check(asset=CLEANED, blocking=True, description="review_id is present and unique.")
def cleaned_review_ids_unique(cleaned: pd.DataFrame) -> dg.AssetCheckResult:
    """Duplicate or missing ids would corrupt the merge into LanceDB."""
    duplicated = cleaned.loc[cleaned["review_id"].duplicated(keep=False), "review_id"]
    missing = int(cleaned["review_id"].isna().sum())
    return dg.AssetCheckResult(
        passed=duplicated.empty and missing == 0,
        metadata={
            "duplicate_ids": len(duplicated.unique()),
            "missing_ids": missing,
            "sample": dg.MetadataValue.json(sorted(duplicated.unique().tolist())[:10]),
        },
    )


@dg.asset_check(
    asset=CLEANED,
    blocking=True,
    description=f"Texts are stripped of HTML, {MIN_TEXT_CHARS}..{MAX_TEXT_CHARS} characters, ratings in "
    f"{RATING_RANGE[0]}..{RATING_RANGE[1]}.",
)
def cleaned_values_valid(cleaned: pd.DataFrame) -> dg.AssetCheckResult:
    """The cleaning rules hold on the output (guards against a rule regressing)."""
    text = cleaned["text"].fillna("")
    problems = {
        "text_too_short": int((text.str.len() < MIN_TEXT_CHARS).sum()),
        "text_too_long": int((text.str.len() > MAX_TEXT_CHARS).sum()),
        "html_left": int(text.str.contains(r"<[a-zA-Z/][^>]*>", regex=True).sum()),
        "untrimmed_whitespace": int((text != text.str.strip()).sum() + text.str.contains(r"\s{2,}").sum()),
        "rating_out_of_range": int((~cleaned["rating"].between(*RATING_RANGE)).sum()),
    }
    return dg.AssetCheckResult(passed=not any(problems.values()), metadata=problems)


@dg.asset_check(asset=QUARANTINE, description="Every quarantined row says why, with a known reason code.")
def quarantine_reasons_known(quarantine: pd.DataFrame) -> dg.AssetCheckResult:
    """A row in quarantine without a reason is a row lost without trace."""
    reasons = quarantine["reject_reason"]
    unknown = sorted(set(reasons.dropna()) - set(REJECT_REASONS))
    missing = int(reasons.isna().sum())
    return dg.AssetCheckResult(
        passed=not unknown and missing == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows_without_reason": missing, "unknown_reasons": dg.MetadataValue.json(unknown)},
    )


@dg.asset_check(
    asset=EMBEDDED,
    additional_ins={"cleaned": dg.AssetIn(key=CLEANED)},
    description=f"The vector table holds exactly the cleaned review_ids, each with a {EMBEDDING_DIM}-d unit vector.",
)
def embedded_matches_cleaned(embedded: Any, cleaned: pd.DataFrame) -> dg.AssetCheckResult:
    """No missing, extra or duplicated rows in LanceDB; vectors have the right width and norm."""
    stored = read_columns(embedded, ["review_id", VECTOR_COLUMN]).to_pandas()
    expected = set(cleaned["review_id"])
    actual = stored["review_id"]
    vectors = np.stack(stored[VECTOR_COLUMN].to_numpy()) if len(stored) else np.zeros((0, EMBEDDING_DIM))
    norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.zeros(0)
    metadata = {
        "table_rows": len(stored),
        "cleaned_rows": len(expected),
        "missing": len(expected - set(actual)),
        "extra": len(set(actual) - expected),
        "duplicated": int(actual.duplicated().sum()),
        "vector_dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        "non_unit_vectors": int((np.abs(norms - 1.0) > 1e-3).sum()),
    }
    passed = metadata["missing"] == metadata["extra"] == metadata["duplicated"] == metadata[
        "non_unit_vectors"
    ] == 0 and (metadata["vector_dim"] == EMBEDDING_DIM or not len(stored))
    return dg.AssetCheckResult(passed=passed, metadata=metadata)
