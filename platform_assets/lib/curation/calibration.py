"""Calibrating the near-duplicate threshold on labelled pairs the project generates, instead of guessing it.

From groups of real sentences (sentences of one topic per group), `labelled_pairs` makes:

- duplicates: a light edit (a typo: two letters swapped or one dropped), re-punctuation (punctuation and case
  changed), a word swap (two neighbouring words exchanged) and a paraphrase (synonyms substituted, clauses
  reordered) of each sentence;
- non-duplicates: every two different sentences of the same group (same topic, different review), the pairs
  a threshold set too low would merge.

`calibrate` picks the lowest threshold whose precision on those pairs reaches the target and which lies at least
a margin above every different pair (so it finds as many duplicates as it can without merging different
reviews), and reports precision, recall overall and per kind, and the whole precision/recall curve.

    pairs = labelled_pairs({"battery": [...], "shipping": [...]})
    result = calibrate(pairs, similarities_of(pairs), target_precision=0.99)
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

DUPLICATE_KINDS = ("light_edit", "repunctuation", "word_swap", "paraphrase")
DIFFERENT_KINDS = ("same_topic_different",)
# No labelled different pair may be merged, and the threshold keeps a margin above the most similar of them:
# a few hundred generated pairs cannot show the tail of a million real ones.
TARGET_PRECISION = 1.0
MARGIN = 0.05
# Words a paraphrase replaces (both directions are tried); review vocabulary, not a thesaurus.
SYNONYMS = {
    "great": "excellent",
    "very": "really",
    "fast": "quick",
    "quickly": "rapidly",
    "terrible": "awful",
    "bought": "purchased",
    "cheap": "inexpensive",
    "big": "large",
    "small": "little",
    "easy": "simple",
    "arrived": "came",
    "package": "parcel",
    "box": "carton",
    "broke": "stopped working",
    "fantastic": "amazing",
    "long": "lengthy",
    "late": "delayed",
    "never": "not once",
    "right away": "immediately",
    "rude": "impolite",
    "comfortable": "comfy",
    "bright": "vivid",
    "clear": "crisp",
    "loud": "powerful",
    "dead": "broken",
    "constantly": "all the time",
    "outstanding": "superb",
    "awful": "dreadful",
    "perfectly": "flawlessly",
}


@dataclass(frozen=True)
class LabelledPair:
    """Two texts and whether they are near-duplicates; `kind` says how the second was made from the first."""

    kind: str
    first: str
    second: str
    duplicate: bool


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and how it does on the labelled pairs."""

    threshold: float
    target_precision: float
    margin: float
    precision: float
    recall: float
    recall_by_kind: dict[str, float]
    false_positives_by_kind: dict[str, int]
    pairs_by_kind: dict[str, int]
    curve: list[dict[str, float]] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        """The figures as plain values for an asset's metadata."""
        return {
            "threshold": self.threshold,
            "target_precision": self.target_precision,
            "margin": self.margin,
            "precision": self.precision,
            "recall": self.recall,
            "recall_by_kind": self.recall_by_kind,
            "false_positives_by_kind": self.false_positives_by_kind,
            "pairs_by_kind": self.pairs_by_kind,
        }


def labelled_pairs(
    groups: Mapping[str, Sequence[str]], *, seed: int = 0, synonyms: Mapping[str, str] = SYNONYMS
) -> list[LabelledPair]:
    """Duplicates (four kinds of edit of every sentence) and non-duplicates (every two different sentences
    of a group) from `groups` of sentences; the same groups and seed always give the same pairs."""
    rng = random.Random(seed)
    pairs: list[LabelledPair] = []
    for sentences in groups.values():
        for sentence in sentences:
            edits = {
                "light_edit": _light_edit(sentence, rng),
                "repunctuation": _repunctuate(sentence, rng),
                "word_swap": _swap_words(sentence, rng),
                "paraphrase": _paraphrase(sentence, synonyms),
            }
            # An edit that changed nothing (no synonym, no clause to move) would be a free true positive.
            pairs += [
                LabelledPair(kind, sentence, edited, True)
                for kind, edited in edits.items()
                if edited != sentence
            ]
        pairs += [
            LabelledPair("same_topic_different", first, second, False)
            for first, second in combinations(sentences, 2)
        ]
    return pairs


def calibrate(
    pairs: Sequence[LabelledPair],
    similarities: np.ndarray,
    *,
    target_precision: float = TARGET_PRECISION,
    margin: float = MARGIN,
) -> Calibration:
    """The lowest threshold (among the pairs' similarities) whose precision is at least `target_precision` and
    which lies `margin` or more above every different pair.

    A pair is predicted a duplicate when its similarity is at or above the threshold. When no threshold
    qualifies, the most similar different pair plus the margin is the threshold, and recall says what it costs.
    """
    similarities = np.asarray(similarities, dtype=np.float64)
    if len(similarities) != len(pairs):
        raise ValueError(f"{len(pairs)} pairs but {len(similarities)} similarities")
    labels = np.array([pair.duplicate for pair in pairs], dtype=bool)
    if not labels.any() or labels.all():
        raise ValueError("calibration needs both duplicate and different pairs")
    curve = []
    for threshold in np.unique(similarities):
        predicted = similarities >= threshold
        true_positives = int((predicted & labels).sum())
        precision = true_positives / max(int(predicted.sum()), 1)
        recall = true_positives / int(labels.sum())
        curve.append({"threshold": float(threshold), "precision": precision, "recall": recall})
    floor = float(similarities[~labels].max()) + margin
    qualifying = [
        point for point in curve if point["precision"] >= target_precision and point["threshold"] >= floor
    ]
    chosen = min(point["threshold"] for point in qualifying) if qualifying else floor
    # Round down to 3 decimals (not below the floor), so the recorded threshold keeps what the exact one kept.
    threshold = max(float(np.floor(chosen * 1000) / 1000), float(np.ceil(floor * 1000) / 1000))
    threshold = min(threshold, 1.0)
    predicted = similarities >= threshold
    kinds = sorted({pair.kind for pair in pairs})
    by_kind = {kind: np.array([pair.kind == kind for pair in pairs]) for kind in kinds}
    return Calibration(
        threshold=threshold,
        target_precision=target_precision,
        margin=margin,
        precision=round(float((predicted & labels).sum() / max(predicted.sum(), 1)), 4),
        recall=round(float((predicted & labels).sum() / labels.sum()), 4),
        recall_by_kind={
            kind: round(float(predicted[mask].mean()), 4)
            for kind, mask in by_kind.items()
            if kind in DUPLICATE_KINDS
        },
        false_positives_by_kind={
            kind: int(predicted[mask].sum()) for kind, mask in by_kind.items() if kind not in DUPLICATE_KINDS
        },
        pairs_by_kind={kind: int(mask.sum()) for kind, mask in by_kind.items()},
        curve=[{k: round(v, 4) for k, v in point.items()} for point in curve],
    )


def pair_similarities(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two matrices of unit vectors."""
    return np.einsum("ij,ij->i", np.asarray(first, np.float64), np.asarray(second, np.float64))


def _light_edit(sentence: str, rng: random.Random) -> str:
    words = [i for i, word in enumerate(sentence.split(" ")) if len(word) > 4 and word.isalpha()]
    parts = sentence.split(" ")
    if not words:
        return sentence + "."
    index = rng.choice(words)
    word = parts[index]
    position = rng.randrange(1, len(word) - 2)
    if rng.random() < 0.5:
        parts[index] = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    else:
        parts[index] = word[:position] + word[position + 1 :]
    return " ".join(parts)


def _repunctuate(sentence: str, rng: random.Random) -> str:
    bare = re.sub(r"[.,!?;:]", "", sentence)
    ending = rng.choice(["!", "!!", " ...", ""])
    return (bare.lower() if rng.random() < 0.5 else bare) + ending


def _swap_words(sentence: str, rng: random.Random) -> str:
    parts = sentence.split(" ")
    if len(parts) < 3:
        return sentence
    index = rng.randrange(0, len(parts) - 2)
    parts[index], parts[index + 1] = parts[index + 1], parts[index]
    return " ".join(parts)


def _paraphrase(sentence: str, synonyms: Mapping[str, str]) -> str:
    text = sentence
    for word, other in synonyms.items():
        pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)
        if pattern.search(text):
            text = pattern.sub(other, text)
            continue
        reverse = re.compile(rf"\b{re.escape(other)}\b", re.IGNORECASE)
        text = reverse.sub(word, text)
    # Two clauses change places ("A, B." → "B, A."), as a paraphrase often does.
    body = text.rstrip(".!?")
    if ", " in body:
        first, second = body.split(", ", 1)
        text = f"{second[0].upper()}{second[1:]}, {first[0].lower()}{first[1:]}."
    return text
