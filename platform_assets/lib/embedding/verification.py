"""The fixed sample every backend is held to, and the bar it must clear to share torch fp32's vector space.

A backend joins the fp32 space only when its vectors agree with torch fp32 on this sample: mean cosine
>= 0.999 and no text below 0.99 (ONNX fp32 measures 1.0 to 1e-6; fp16 is checked on the GPU where it loads).
Their differences are far below the gap between neighbours, so re-embedding a table when moving between them
would cost hours for nothing. int8 does not meet that bar (mean about 0.99, minimum about 0.97, top-10
neighbour overlap about 0.9), so it has its own space and a table never mixes the two.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import numpy as np

from platform_assets.lib.embedding.encoders import Encoder, TorchEncoder

logger = logging.getLogger("platform_assets.embedding")

# A backend joins the fp32 space (and `auto` picks ONNX) only at or above both of these on the fixed sample.
EXACT_MEAN_COSINE = 0.999
EXACT_MIN_COSINE = 0.99
# Below this the int8 model is broken, not merely approximate (a healthy one measures about 0.99).
INT8_FLOOR_MEAN_COSINE = 0.95

_REVIEW_TEXTS = (
    "The battery dies too fast, it barely lasts half a day even with the screen dimmed.",
    "Arrived two days late and the box was crushed, but the headphones themselves work fine.",
    "Great value for the price. The fabric feels sturdy and the stitching is neat.",
    "I returned it after a week: the app kept disconnecting and support never answered my emails.",
    "Does exactly what it says. Setup took five minutes and it has not crashed once since.",
    "The zipper broke on the first day of use, which is disappointing for a bag at this price.",
)
_LONG_SENTENCES = (
    "I bought this blender to replace an older model that finally gave up after eight years of daily smoothies.",
    "Out of the box it looks solid, the jar is heavy glass and the lid seals tightly without any wobble.",
    "The motor is powerful enough for frozen fruit and ice, although it is noticeably louder than my old one.",
    "Cleaning is easy because the blade assembly comes apart, but the rubber gasket traps pulp in its groove.",
    "After a month the speed dial started to feel loose and now it sometimes skips the second setting.",
    "Customer service offered a replacement dial within a day, which I appreciated, and it fixed the problem.",
    "Overall I would recommend it for the price, with the caveat that the noise may bother light sleepers.",
    "My partner uses it for soups as well and says the heating function is gentle and does not scorch.",
)


@lru_cache(maxsize=1)
def verification_groups() -> tuple[tuple[str, ...], ...]:
    """The fixed sample a candidate backend must reproduce, as groups encoded one call each.

    Several lengths: one- and two-word texts, review-length texts, about 200 tokens, more than the model's
    256-token limit (both sides must truncate alike), non-ASCII text, and one batch mixing them all so that
    padding and the attention mask are exercised. The ONNX export itself traced 16 tokens.
    """
    short = ("Great.", "ok", "Terrible!", "Love it", "Not worth the money.")
    review = _REVIEW_TEXTS
    long = (" ".join(_LONG_SENTENCES), " ".join(reversed(_LONG_SENTENCES)))
    over_long = (" ".join(_LONG_SENTENCES * 3),)
    non_ascii = (
        "Très bon produit, livraison rapide 👍 — 5/5",
        "Produkt kam beschädigt an. Schade!",
        "とても良い",
    )
    mixed = short[:2] + review[:3] + long[:1] + over_long + non_ascii[:1]
    return (short, review, long, over_long, non_ascii, mixed)


def encode_sample(encoder: Encoder) -> tuple[np.ndarray, ...]:
    """`encoder`'s vectors of the verification sample, one array per group (each group one call)."""
    return tuple(encoder.encode(list(group), batch_size=len(group)) for group in verification_groups())


@lru_cache(maxsize=1)
def reference_vectors() -> tuple[np.ndarray, ...]:
    """torch fp32 (CPU) vectors of the verification sample: the reference every backend is held to."""
    return encode_sample(TorchEncoder(device="cpu"))


def agreement(
    candidate: tuple[np.ndarray, ...], reference: tuple[np.ndarray, ...], reference_name: str
) -> dict[str, Any]:
    """Mean and minimum cosine between two encodings of the sample (rows are unit vectors)."""
    cosines = np.concatenate([np.sum(a * b, axis=1) for a, b in zip(candidate, reference, strict=True)])
    return {
        "mean_cosine": round(float(cosines.mean()), 6),
        "min_cosine": round(float(cosines.min()), 6),
        "texts": int(cosines.size),
        "reference": reference_name,
    }


def agreement_with_torch(candidate: Encoder) -> dict[str, Any]:
    """How closely `candidate` reproduces torch fp32 on CPU on the verification sample."""
    return agreement(encode_sample(candidate), reference_vectors(), "torch-fp32")


def agrees_exactly(measured: dict[str, Any] | None) -> bool:
    """True when an agreement is close enough to share the fp32 vector space (see the module docstring)."""
    return bool(
        measured
        and measured.get("mean_cosine", 0.0) >= EXACT_MEAN_COSINE
        and measured.get("min_cosine", 0.0) >= EXACT_MIN_COSINE
    )


def use_verified_fp16(encoder: TorchEncoder) -> dict[str, Any]:
    """Switch a GPU `encoder` to fp16 only if fp16 agrees with its own fp32 on the sample; the agreement.

    fp16 shares the fp32 space, so it must clear the same bar as any other backend; otherwise the encoder
    stays in fp32, with a warning.
    """
    reference = encode_sample(encoder)
    encoder.use_fp16(True)
    measured = agreement(encode_sample(encoder), reference, f"torch-fp32-{encoder.device}")
    if not agrees_exactly(measured):
        logger.warning(f"torch fp16 disagrees with fp32 ({measured}); embedding in fp32 on {encoder.device}")
        encoder.use_fp16(False)
    return measured
