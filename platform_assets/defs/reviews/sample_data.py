"""Deterministic sample reviews with the dirt real review feeds have.

The same (rows, seed) always writes byte-identical files, so `make run` is repeatable and tests can plant
known cases. Dirt: null, empty and whitespace-only text, HTML tags and entities, emoji and control characters,
runs of whitespace, too-short text, ratings out of range, a wrong type in the rating column, exact
re-deliveries of a review (duplicate review_id), and the same user posting the same text twice on a product.
For curation: personal data in some texts (e-mail addresses, phone numbers, card numbers, IP addresses) and a
few texts that are no review at all (keyboard mashing, another language, a spam template).
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from platform_assets.lib.config import get_settings
from platform_assets.lib.domains import SampleSize

# Topic → (positive sentences, negative sentences). Sentences are whole thoughts so that semantic search has
# something real to find; "battery" is the planted topic the tests search for.
TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "battery": (
        [
            "The battery easily lasts two full days on a single charge.",
            "Battery life is outstanding, I charge it once a week.",
            "It holds a charge for a very long time, great battery.",
        ],
        [
            "The battery dies after barely two hours of use.",
            "Battery drains way too fast, it is empty by lunchtime.",
            "It will not hold a charge anymore, the battery is dead within a day.",
            "Terrible battery life, I have to recharge it constantly.",
        ],
    ),
    "shipping": (
        [
            "Arrived two days early and the box was perfectly packed.",
            "Fast delivery, the parcel came the next morning.",
        ],
        [
            "Shipping took three weeks and the box arrived crushed.",
            "The package was lost in transit and delivery was very late.",
        ],
    ),
    "screen": (
        [
            "The display is bright and sharp, colors look fantastic.",
            "Gorgeous screen, easy to read even in direct sunlight.",
        ],
        [
            "The screen cracked after a small drop from the table.",
            "Dead pixels on the display right out of the box.",
        ],
    ),
    "sound": (
        [
            "Sound quality is rich with deep bass and clear highs.",
            "The speakers are loud and crisp, great for music.",
        ],
        [
            "The audio crackles and the left speaker buzzes.",
            "Tinny sound with no bass at all, music sounds awful.",
        ],
    ),
    "fit": (
        [
            "Fits perfectly and the fabric feels soft and comfortable.",
            "True to size and very comfortable to wear all day.",
        ],
        [
            "Runs two sizes too small, the seams split on first wear.",
            "Uncomfortable fit and the material is scratchy.",
        ],
    ),
    "support": (
        [
            "Customer service replied within an hour and solved my issue.",
            "Support was friendly and sent a replacement right away.",
        ],
        [
            "Customer support never answered my emails about the refund.",
            "Support was rude and refused to honor the warranty.",
        ],
    ),
}

OPENERS = ["", "Honestly, ", "Overall ", "Update: ", "I have to say ", "After a month, "]
CLOSERS = [
    "",
    " Would recommend.",
    " Not worth the money.",
    " Five stars from me.",
    " Returning it.",
    " Meh.",
]
EMOJI = ["😀", "👍", "🔥", "😡", "💯", "🙄"]
HTML_WRAPPERS = ["<p>{}</p>", "<b>{}</b><br/>", "<div class='review'>{} &amp; more</div>", "{}<br><br>"]

# Appended to about 1 % of the texts: what curation must mask.
PERSONAL_DATA = [
    " Questions? Mail me at jane.doe42@example.com.",
    " Call me on +1 415-555-0134 if you want details.",
    " Refund went to my card 4111 1111 1111 1111.",
    " Logged in from 192.168.20.14 to write this.",
    " Reach me: mark.s@mailbox.org or +44 20 7946 0958.",
]
# About 0.5 % of the texts: not reviews of the product at all.
NOT_REVIEWS = [
    "asdkjh qwpeoiru zxmcnv lkjasdf poiuqwer mnbvcxz",
    "Der Akku hält kaum zwei Stunden, ich bin sehr enttäuscht von diesem Gerät.",
    "WIN A FREE IPHONE!!! Click the link in my profile to claim your prize now!!!",
    "La batería dura muy poco y el envío llegó tarde, no lo recomiendo.",
]

REVIEW_COLUMNS = ["review_id", "product_id", "user_id", "rating", "text", "created_at", "channel"]


def _sentence(rng: random.Random, positive: bool) -> tuple[str, str]:
    topic = rng.choice(sorted(TOPICS))
    good, bad = TOPICS[topic]
    body = rng.choice(good if positive else bad)
    opener = rng.choice(OPENERS)
    text = opener + (body[0].lower() + body[1:] if opener else body) + rng.choice(CLOSERS)
    return topic, text


def generate_reviews(rows: int, seed: int = 42) -> pd.DataFrame:
    """Generate `rows` reviews (before re-deliveries are appended) as delivered by a source system.

    Columns: review_id, product_id, user_id, rating (as delivered: mostly int, sometimes out of range or a
    word), text, created_at (ISO-8601 string), channel (an extra column the platform keeps).
    """
    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    records: list[dict] = []
    for index in range(rows):
        positive = rng.random() < 0.6
        _, text = _sentence(rng, positive)
        rating: object = rng.choice([4, 5]) if positive else rng.choice([1, 2, 3])
        dirt = rng.random()
        if dirt < 0.02:
            text = rng.choice([None, "", "   ", "\t\n "])
        elif dirt < 0.05:
            text = rng.choice(HTML_WRAPPERS).format(text)
        elif dirt < 0.07:
            text = f"{text} {rng.choice(EMOJI)}{rng.choice(EMOJI)}"
        elif dirt < 0.09:
            text = "   " + text.replace(" ", "   \t", 2) + "  \u200b"
        elif dirt < 0.105:
            text = rng.choice(["ok", "good", "bad!!", "meh", "👍"])
        elif dirt < 0.12:
            rating = rng.choice([0, 6, -1, 10])
        elif dirt < 0.125:
            rating = rng.choice(["five", "n/a"])
        created = base + timedelta(minutes=rng.randrange(0, 60 * 24 * 90))
        records.append(
            {
                "review_id": f"R{index + 1:07d}",
                "product_id": f"P{rng.randrange(1, max(2, rows // 20) + 1):05d}",
                "user_id": f"U{rng.randrange(1, max(2, rows // 4) + 1):06d}",
                "rating": rating,
                "text": text,
                "created_at": created.isoformat().replace("+00:00", "Z"),
                "channel": rng.choice(["web", "app", "store"]),
            }
        )
    # A generator of its own, so the planted rows do not change the rest of the sample.
    planted = random.Random(seed + 1)
    for record in records:
        if not isinstance(record["text"], str) or len(record["text"].strip()) <= 20:
            continue
        draw = planted.random()
        if draw < 0.01:
            record["text"] += planted.choice(PERSONAL_DATA)
        elif draw < 0.015:
            record["text"] = planted.choice(NOT_REVIEWS)
    # Exact re-deliveries: the same review arrives again (duplicate review_id).
    for original in rng.sample(records, k=max(1, rows // 100)):
        records.append(dict(original))
    # The same user posts the same words on the same product again, differently formatted.
    candidates = [r for r in records[:rows] if isinstance(r["text"], str) and len(r["text"].strip()) > 20]
    for number, original in enumerate(rng.sample(candidates, k=max(1, rows // 100))):
        copy = dict(original)
        copy["review_id"] = f"R{rows + number + 1:07d}"
        copy["text"] = "  " + original["text"].upper().replace(" ", "  ") + " "
        records.append(copy)
    return pd.DataFrame(records, columns=REVIEW_COLUMNS)


def write_sample_reviews(landing_dir: Path, rows: int = 2000, seed: int = 42) -> list[Path]:
    """Write the sample as three files (CSV, JSON Lines, Parquet) into `landing_dir`; return their paths.

    Existing sample files are overwritten (same content for the same arguments), other files are left alone.
    """
    landing_dir.mkdir(parents=True, exist_ok=True)
    frame = generate_reviews(rows, seed)
    csv_part = frame.iloc[: len(frame) // 2]
    jsonl_part = frame.iloc[len(frame) // 2 : (len(frame) * 4) // 5]
    parquet_part = frame.iloc[(len(frame) * 4) // 5 :]

    paths = [
        landing_dir / "reviews_sample_001.csv",
        landing_dir / "reviews_sample_002.jsonl",
        landing_dir / "reviews_sample_003.parquet",
    ]
    _write_if_changed(paths[0], csv_part.to_csv(index=False).encode())
    lines = [json.dumps(record, ensure_ascii=False) + "\n" for record in jsonl_part.to_dict(orient="records")]
    _write_if_changed(paths[1], "".join(lines).encode())
    # Parquet carries real types, so a word in the rating column cannot travel in it.
    typed = parquet_part.copy()
    typed["rating"] = pd.to_numeric(typed["rating"], errors="coerce").astype("Int64")
    typed["created_at"] = pd.to_datetime(typed["created_at"], utc=True)
    buffer = io.BytesIO()
    typed.to_parquet(buffer, index=False)
    _write_if_changed(paths[2], buffer.getvalue())
    return paths


def _write_if_changed(path: Path, content: bytes) -> None:
    # Rewriting identical bytes would still bump the mtime and wake the landing sensor for nothing.
    if path.exists() and path.read_bytes() == content:
        return
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_bytes(content)
    staging.replace(path)


def write_sample(size: SampleSize) -> None:
    """`make run`'s sample: `size.rows` reviews in landing/reviews (unchanged files are left alone)."""
    write_sample_reviews(get_settings().landing_dir_for("reviews"), rows=size.rows)
