"""The curation policy as a Dagster resource: what curation removes, masks and gates on, shown in the UI.

The code location builds it from the environment (`lib.config`: PLATFORM_CURATION_*); a test or a run may pass
another. Every threshold is explained in docs/curation.md.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from platform_assets.lib.curation.calibration import MARGIN, TARGET_PRECISION
from platform_assets.lib.curation.outliers import IQR_FACTOR, NEIGHBOURS
from platform_assets.lib.curation.pii import DEFAULT_REGIONS, PiiPolicy

# Used only until the first calibration of the current model: high enough that no different reviews are
# merged (the calibration on the sample's labelled pairs puts every different pair below 0.75).
UNCALIBRATED_THRESHOLD = 0.95
# A kNN score (mean cosine distance) below this is never an outlier, whatever the IQR rule says: with
# templated or very uniform text the IQR collapses and the rule alone would flag ordinary rows. Measured with
# all-MiniLM-L6-v2 (platform_assets_tests/test_curation.py): ordinary reviews unlike any stored one score up to
# about 0.67, texts about another subject (cooking) 0.53-0.64, keyboard mashing 0.73-0.75.
OUTLIER_MIN_SCORE = 0.7


class CurationPolicy(dg.ConfigurableResource):
    """What curated/reviews removes (near-duplicates, outliers), what it does with personal data, and whether
    embedding drift stops a delivery."""

    pii_policy: Literal["mask", "drop", "keep"] = Field(
        default="mask",
        description="PLATFORM_CURATION_PII_POLICY: mask each e-mail, phone, card number and IP address in the "
        "text ([EMAIL], [PHONE], [CARD], [IP]); drop: quarantine the row with reason pii; keep: leave the text.",
    )
    pii_regions: list[str] = Field(
        default=list(DEFAULT_REGIONS),
        description="Countries whose national phone number formats count as phone numbers (international "
        "+... numbers always do).",
    )
    duplicate_threshold: float | None = Field(
        default=None,
        description="PLATFORM_CURATION_DUPLICATE_THRESHOLD: a fixed cosine similarity at or above which a "
        "review is a near-duplicate of a kept one. Unset: the threshold the latest calibration of the current "
        f"model recorded ({UNCALIBRATED_THRESHOLD} until there is one).",
    )
    target_precision: float = Field(
        default=TARGET_PRECISION,
        description="Calibration: the share of pairs above the threshold that must be true duplicates.",
    )
    calibration_margin: float = Field(
        default=MARGIN,
        description="Calibration: how far above the most similar different pair the threshold must lie.",
    )
    outlier_neighbours: int = Field(
        default=NEIGHBOURS,
        description="k of the kNN outlier score (mean distance to the k nearest distinct reviews).",
    )
    outlier_iqr_factor: float = Field(
        default=IQR_FACTOR,
        description="An outlier scores above Q3 + factor x IQR of the scores (Datalab's 1.7).",
    )
    outlier_min_score: float = Field(
        default=OUTLIER_MIN_SCORE,
        description="An outlier also scores above this mean cosine distance (a floor for very uniform text).",
    )
    drift_blocking: bool = Field(
        default=False,
        description="PLATFORM_CURATION_DRIFT_BLOCKING: a drifted delivery fails embedding_drift as an error, "
        "which stops its curation; false: a warning.",
    )

    @property
    def pii(self) -> PiiPolicy:
        """The PII policy as its enum."""
        return PiiPolicy(self.pii_policy)
