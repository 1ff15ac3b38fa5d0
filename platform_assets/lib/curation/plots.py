"""Plots for asset and check metadata: a PNG inside a markdown value, which the Dagster UI shows in place.

Matplotlib renders with its Agg backend (no display needed); the image is embedded as a data URI, so the
plot lives in the event log with the numbers it illustrates and needs no file server.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Small enough for the event log (a few tens of KB), large enough to read in the UI.
FIGURE_SIZE = (6.4, 3.6)
DPI = 80


def figure_markdown(figure: Figure, alt: str) -> str:
    """The figure as a markdown image (PNG data URI)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{alt}](data:image/png;base64,{encoded})"


def _figure() -> tuple[Figure, Any]:
    # The object-oriented API, not pyplot: no global state, safe in a run's threads.
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE)
    return figure, figure.add_subplot()


def similarity_histogram(
    samples: Mapping[str, np.ndarray], threshold: float, title: str, xlabel: str = "cosine similarity"
) -> str:
    """Overlaid histograms of similarity samples (one per label) with the threshold as a vertical line."""
    figure, axes = _figure()
    values = [np.asarray(v, dtype=float) for v in samples.values() if len(v)]
    low = min([float(v.min()) for v in values] + [threshold]) if values else 0.0
    bins = np.linspace(max(low - 0.02, -1.0), 1.0, 50)
    for label, data in samples.items():
        if len(data):
            axes.hist(data, bins=bins, alpha=0.55, label=f"{label} ({len(data)})", density=True)
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend(fontsize="small")
    return figure_markdown(figure, title)


def projection_scatter(reference: np.ndarray, current: np.ndarray, title: str) -> str:
    """Both samples of vectors projected on the reference-plus-current sample's two principal components."""
    pooled = np.concatenate([reference, current]).astype(np.float64)
    centred = pooled - pooled.mean(axis=0)
    # The top two right singular vectors are the principal axes (PCA without a dependency for two lines).
    _, _, axes_t = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ axes_t[:2].T
    figure, axes = _figure()
    axes.scatter(*projected[: len(reference)].T, s=6, alpha=0.5, label=f"reference ({len(reference)})")
    axes.scatter(*projected[len(reference) :].T, s=6, alpha=0.5, label=f"delivery ({len(current)})")
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.set_title(title)
    axes.legend(fontsize="small")
    return figure_markdown(figure, title)
