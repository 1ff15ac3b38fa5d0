"""The training-ready datasets: their ids in the metadata center, what they are read from, and their label."""

from dataclasses import dataclass

from platform_assets.defs.features.assets import TRAINING_SET
from platform_assets.defs.reviews.contract import CLEANED_COLUMNS, CURATED_LANCEDB_TABLE
from platform_assets.lib.embedding import EMBEDDING_SPACE_COLUMN
from platform_assets.lib.vector_store import VECTOR_COLUMN


@dataclass(frozen=True)
class TrainingDataset:
    """A training-ready dataset as the metadata center knows it."""

    dataset_id: str
    name: str
    description: str
    tags: tuple[str, ...]
    label: str


REVIEWS_CORPUS = TrainingDataset(
    dataset_id="reviews_corpus",
    name="Reviews corpus with embeddings",
    description=f"Every curated review (near-duplicates and outliers removed, personal data masked) with its "
    f"{VECTOR_COLUMN} (LanceDB table '{CURATED_LANCEDB_TABLE}' at one version).",
    tags=("training-ready", "reviews", "embeddings"),
    label="rating",
)
# The corpus's columns: the curated review (its text masked), the vector space it was embedded in, and the vector.
REVIEWS_CORPUS_COLUMNS = (*(c.name for c in CLEANED_COLUMNS), EMBEDDING_SPACE_COLUMN, VECTOR_COLUMN)

PURCHASE_TRAINING_SET = TrainingDataset(
    dataset_id=TRAINING_SET.path[-1],
    name="User purchase training set (point-in-time features)",
    description="One row per user and active day; label = a purchase in the next 24 hours; Feast features as of "
    "that day (features/user_stats through the user_statistics view).",
    tags=("training-ready", "features", "feast"),
    label="label",
)
