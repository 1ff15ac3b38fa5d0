"""Review cleaning benchmark: `clean_reviews` (Daft) against the same rules written in plain pandas.

Issue 8 asks for cleaning at 3x or more the throughput of a straightforward pandas implementation of the same
rules on the same rows. `pandas_clean` is that implementation: what a competent engineer writes with pandas'
vectorised string methods (`.str.replace(regex=True)`, `.str.strip`, `duplicated`, `merge`), not a loop made
slow on purpose. Both run in the same process on the same raw frame, and the run fails unless they agree
row for row, so the ratio always compares two implementations of the same contract.

Python's `re` has no `\\p{...}` classes. The patterns that use them (noise characters: Extended_Pictographic,
Cc, Cf; the non-alphanumeric runs of the duplicate key: L, N) run on the `regex` module, applied with
`.map(pattern.sub)` because pandas' `.str.replace` only accepts `re` patterns (it runs the same per-value
`sub` loop). Spelling those classes out as explicit `re` character classes also works but is 2-5x slower
(`re` scans astral-plane ranges one by one), which would make the baseline a straw man. Whitespace is the
explicit Unicode White_Space set, as Rust's `\\s` has it. Both sides then match the same characters, except
for code points assigned in a newer Unicode version than one of the two regex engines knows.

Run: `.venv/bin/python benchmarks/clean_baseline.py [--rows 1000000] [--repeat 1]`; prints one JSON object.
Nothing here asserts a throughput threshold.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from platform_assets.defs.reviews.cleaning import (
    ENTITY_PATTERN,
    HTML_ENTITIES,
    ID_PREVIEW_CHARS,
    NOISE_PATTERN,
    TAG_PATTERN,
)
from platform_assets.defs.reviews.contract import MAX_TEXT_CHARS, MIN_TEXT_CHARS, RATING_RANGE, REJECT_REASONS

# The per-row rules, in REJECT_REASONS order (the duplicate rules come after them).
ROW_RULES = REJECT_REASONS[: REJECT_REASONS.index("duplicate_review_id")]


# Unicode White_Space: what Rust's `\s` and Daft's strip() match. Python's `\s` and str.strip() also take the
# separators \x1c-\x1f, so the baseline names the set explicitly.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)


@dataclass(frozen=True)
class _Patterns:
    """The cleaning rules' patterns for Python: `re` where it can say them, the `regex` module where not."""

    tag: re.Pattern[str]
    entity: re.Pattern[str]
    whitespace_run: re.Pattern[str]
    invalid_id_search: Callable[[str], object]
    noise_sub: Callable[[str], str]
    non_alnum_sub: Callable[[str], str]


@functools.cache
def _patterns() -> _Patterns:
    # `re` has no \p{...}; spelling those classes out for `re` works but is slow (it scans astral ranges one by
    # one), so they go to the `regex` module, whose compiled patterns pandas' .str.replace does not accept.
    import regex

    # `\x{FE0F}` is Rust regex syntax; the `regex` module spells it `\U0000FE0F`.
    noise = re.sub(r"\\x\{([0-9A-Fa-f]+)\}", lambda m: f"\\U{int(m[1], 16):08x}", NOISE_PATTERN)
    return _Patterns(
        tag=re.compile(TAG_PATTERN),
        entity=re.compile(ENTITY_PATTERN),
        whitespace_run=re.compile(f"[{re.escape(WHITE_SPACE)}]+"),
        # cleaning.INVALID_ID_PATTERN: `\s` spelled as the White_Space set, as Rust's `\s` is.
        invalid_id_search=regex.compile(rf"[{re.escape(WHITE_SPACE)}\p{{Cc}}\p{{Cf}}]").search,
        noise_sub=functools.partial(regex.compile(noise).sub, " "),
        non_alnum_sub=functools.partial(regex.compile(r"[^\p{L}\p{N}]+").sub, " "),
    )


def pandas_clean(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The review cleaning rules in plain pandas: (cleaned, quarantine), as `clean_reviews` returns them."""
    patterns = _patterns()
    raw = raw.reset_index(drop=True)

    clean = raw["text"].str.replace(patterns.tag, " ", regex=True)
    for entity, char in HTML_ENTITIES.items():
        clean = clean.str.replace(entity, char, regex=False)
    clean = clean.str.replace(patterns.entity, " ", regex=True)
    clean = clean.map(patterns.noise_sub, na_action="ignore")
    clean = clean.str.replace(patterns.whitespace_run, " ", regex=True).str.strip(WHITE_SPACE)
    length = clean.str.len()

    def blank(column: str) -> pd.Series:
        values = raw[column]
        return values.isna() | values.str.strip(WHITE_SPACE).eq("").fillna(False)

    low, high = RATING_RANGE
    rating = raw["rating"]
    failures = [
        raw["_ingest_error"].notna(),
        blank("review_id"),
        raw["review_id"].fillna("").map(lambda v: patterns.invalid_id_search(v) is not None).astype(bool),
        blank("product_id"),
        blank("user_id"),
        raw["created_at"].isna(),
        blank("text"),
        rating.isna(),
        ((rating < low) | (rating > high)).fillna(False),
        (length < MIN_TEXT_CHARS).fillna(False),
        (length > MAX_TEXT_CHARS).fillna(False),
    ]
    reason = pd.Series(None, index=raw.index, dtype=object)
    for code, failed in zip(ROW_RULES, failures, strict=True):
        reason = reason.mask(reason.isna() & failed.astype(bool), code)

    # Duplicates among the otherwise valid rows; raw is in delivery order, so keep="first" keeps the first.
    valid = raw.loc[reason.isna()]
    id_copy = valid.duplicated("review_id", keep="first")
    reason[id_copy[id_copy].index] = "duplicate_review_id"
    first_delivery = valid.loc[~id_copy].set_index("review_id")[["_source_file", "_source_line"]]

    keys = ["user_id", "product_id", "_text_norm"]
    valid = raw.loc[reason.isna(), ["review_id", "user_id", "product_id"]]
    valid["_text_norm"] = (
        clean[valid.index].str.lower().map(patterns.non_alnum_sub, na_action="ignore").str.strip(WHITE_SPACE)
    )
    content_copy = valid.duplicated(keys, keep="first")
    reason[content_copy[content_copy].index] = "duplicate_content"
    copies = valid.loc[content_copy, keys]
    firsts = valid.loc[~content_copy, [*keys, "review_id"]]
    first_content_id = copies.merge(firsts, on=keys, how="left")["review_id"].set_axis(copies.index)

    rejected = reason.notna()
    quarantine = raw.loc[rejected].copy()
    quarantine["reject_reason"] = reason[rejected]
    quarantine["reject_detail"] = _details(quarantine, length[rejected], first_delivery, first_content_id)

    cleaned = raw.loc[~rejected].drop(columns=["_ingest_error"])
    cleaned["text"] = clean[~rejected].astype("string")
    cleaned["rating"] = cleaned["rating"].astype("int64")
    return cleaned.reset_index(drop=True), quarantine.reset_index(drop=True)


def _details(
    quarantine: pd.DataFrame, length: pd.Series, first_delivery: pd.DataFrame, first_content_id: pd.Series
) -> pd.Series:
    """`reject_detail` for the quarantined rows, one vectorised expression per reason."""
    reason = quarantine["reject_reason"]
    low, high = RATING_RANGE
    # Rows that are not id duplicates find no first delivery here (NaN); their values are masked out below.
    first = first_delivery.reindex(quarantine["review_id"]).set_axis(quarantine.index)
    first_line = first["_source_line"].astype("Int64")
    characters = "text has " + length.astype(str) + " characters after cleaning, "
    detail = reason.str.replace("_", " ")
    for code, text in (
        ("invalid_type", quarantine["_ingest_error"].astype(object)),
        (
            "invalid_review_id",
            "review_id "
            + quarantine["review_id"]
            .astype(object)
            .map(lambda v: repr(v[:ID_PREVIEW_CHARS]), na_action="ignore")
            + " contains whitespace, a control or a format character",
        ),
        ("empty_text", pd.Series("text is null, empty or only whitespace", index=quarantine.index)),
        ("rating_out_of_range", "rating " + quarantine["rating"].astype(str) + f" outside {low}..{high}"),
        ("text_too_short", characters + f"minimum {MIN_TEXT_CHARS}"),
        ("text_too_long", characters + f"maximum {MAX_TEXT_CHARS}"),
        (
            "duplicate_review_id",
            "review_id "
            + quarantine["review_id"].astype(str)
            + " first delivered in "
            + first["_source_file"].astype(str)
            + " line "
            + first_line.astype(str),
        ),
        (
            "duplicate_content",
            "same user, product and text as review " + first_content_id.reindex(quarantine.index).astype(str),
        ),
    ):
        detail = detail.mask(reason == code, text)
    return detail.astype("string")


def differences(
    ours: tuple[pd.DataFrame, pd.DataFrame], theirs: tuple[pd.DataFrame, pd.DataFrame]
) -> list[str]:
    """Where two (cleaned, quarantine) results disagree; empty when they hold the same rows row for row.

    Compared: the cleaned review_ids (as a set and in order), each cleaned text, and each quarantined raw row
    (identified by file and line) with its reject_reason and reject_detail.
    """
    problems: list[str] = []
    (our_cleaned, our_quarantine), (their_cleaned, their_quarantine) = ours, theirs
    our_ids, their_ids = set(our_cleaned["review_id"]), set(their_cleaned["review_id"])
    if our_ids != their_ids:
        problems.append(
            f"cleaned review_ids differ: {len(our_ids - their_ids)} only in ours "
            f"(e.g. {sorted(our_ids - their_ids)[:5]}), {len(their_ids - our_ids)} only in theirs "
            f"(e.g. {sorted(their_ids - our_ids)[:5]})"
        )
    if len(our_cleaned) == len(their_cleaned):
        ours_rows = our_cleaned[["review_id", "text"]].astype(object).to_numpy()
        theirs_rows = their_cleaned[["review_id", "text"]].astype(object).to_numpy()
        differing = np.flatnonzero((ours_rows != theirs_rows).any(axis=1))
        if len(differing):
            at = differing[0]
            problems.append(
                f"{len(differing)} cleaned rows differ, first at {at}: {list(ours_rows[at])} vs {list(theirs_rows[at])}"
            )
    else:
        problems.append(f"cleaned rows: {len(our_cleaned)} vs {len(their_cleaned)}")

    def by_row(quarantine: pd.DataFrame) -> pd.DataFrame:
        columns = ["_source_file", "_source_line", "reject_reason", "reject_detail"]
        return quarantine[columns].astype(object).set_index(["_source_file", "_source_line"])

    mine, other = by_row(our_quarantine), by_row(their_quarantine)
    if not mine.index.equals(other.index):
        problems.append(
            f"quarantined rows differ: {len(mine.index.difference(other.index))} only in ours, "
            f"{len(other.index.difference(mine.index))} only in theirs"
        )
    else:
        differing_rows = mine.index[(mine != other).any(axis=1)]
        if len(differing_rows):
            key = differing_rows[0]
            problems.append(
                f"{len(differing_rows)} quarantined rows differ in reason or detail, first {key}: "
                f"{mine.loc[key].tolist()} vs {other.loc[key].tolist()}"
            )
    return problems


def _best_time(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_clean_stage(raw: pd.DataFrame, repeat: int = 1) -> dict[str, Any]:
    """Time `clean_reviews` and `pandas_clean` on `raw` (best of `repeat`); raise unless they agree row for row.

    Both are warmed up on a slice first (imports, Daft's runner, compiled patterns), so the figures are
    steady-state throughput.
    """
    from platform_assets.defs.reviews.cleaning import clean_reviews

    def ours() -> tuple[pd.DataFrame, pd.DataFrame]:
        result = clean_reviews(raw)
        return result.cleaned, result.quarantine

    warm_up = raw.iloc[: min(len(raw), 2000)]
    clean_reviews(warm_up)
    pandas_clean(warm_up)
    clean_s, our_result = _best_time(ours, repeat)
    pandas_s, their_result = _best_time(lambda: pandas_clean(raw), repeat)
    problems = differences(our_result, their_result)
    if problems:
        raise AssertionError("clean_reviews and the pandas baseline disagree: " + "; ".join(problems))
    rows = len(raw)
    return {
        "rows": rows,
        "cleaned_rows": len(our_result[0]),
        "quarantined_rows": len(our_result[1]),
        "clean_s": round(clean_s, 3),
        "pandas_s": round(pandas_s, 3),
        "clean_rows_per_s": round(rows / clean_s),
        "pandas_rows_per_s": round(rows / pandas_s),
        "clean_vs_pandas": round(pandas_s / clean_s, 2),
        "target_clean_vs_pandas": 3.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Generate sample reviews, read them as `raw/reviews` does, and print the clean stage's figures as JSON."""
    from platform_assets.defs.reviews.contract import RAW_REVIEWS
    from platform_assets.defs.reviews.sample_data import write_sample_reviews
    from platform_assets.lib.landing import read_landing

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="sample reviews to generate")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each (the best is reported)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="clean_bench_") as landing:
        write_sample_reviews(Path(landing), rows=args.rows)
        raw, _ = read_landing(Path(landing), RAW_REVIEWS.reader_schema())
    print(json.dumps(run_clean_stage(raw, repeat=args.repeat), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
