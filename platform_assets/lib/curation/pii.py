"""Personal data in free text: e-mail addresses, phone numbers, payment card numbers and IP addresses, found,
counted and masked.

    from platform_assets.lib.curation.pii import PiiScanner

    scanner = PiiScanner()                       # phone numbers as dialled in the default regions
    found = scanner.find("mail me: jo@example.com")   # [PiiMatch(kind="email", start=9, end=23)]
    masked, counts = scanner.mask(text)          # "mail me: [EMAIL]", {"email": 1}
    column, counts, rows = scanner.mask_column(pyarrow_strings)

What counts as each kind:
- `email`: local@domain.tld (RFC 5322's common form; quoted local parts are not looked for).
- `phone`: what Google's libphonenumber (`phonenumbers`) accepts as a *valid* number in international form or
  as dialled in one of `regions`, so order numbers and prices are not taken for phones.
- `card`: 13 to 19 digits, optionally grouped by single spaces or dashes, that pass the Luhn check
  (`python-stdnum`): a 16-digit order id fails it nine times in ten.
- `ip`: IPv4 dotted quads with every octet 0-255, and IPv6 addresses, as Python's `ipaddress` parses them.

Matches are masked as `[EMAIL]`, `[PHONE]`, `[CARD]`, `[IP]`; overlapping matches keep the first-starting,
longest one (a card number is not also a phone number). Presidio would do this with a spaCy model, which is
not on PyPI and cannot be installed here: the detectors are the libraries above plus two regular expressions.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

KINDS = ("email", "phone", "card", "ip")
MASKS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "ip": "[IP]"}
# Regions whose national dialling formats count as phone numbers (international +… numbers always do).
DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "CN", "IN")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}(?![\w-])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


class PiiPolicy(StrEnum):
    """What the curated layer does with a row whose text holds personal data."""

    MASK = "mask"  # replace each match with its kind's mask
    DROP = "drop"  # quarantine the row (reason `pii`)
    KEEP = "keep"  # leave the text as it is (counted all the same)


@dataclass(frozen=True, order=True)
class PiiMatch:
    """One piece of personal data: its kind and where it is in the text (`text[start:end]`)."""

    start: int
    end: int
    kind: str


class PiiScanner:
    """Finds and masks personal data; `regions` are the countries whose national phone formats count."""

    def __init__(self, regions: Sequence[str] = DEFAULT_REGIONS) -> None:
        self.regions = tuple(regions)

    def find(self, text: str) -> list[PiiMatch]:
        """Every match in `text`, in order, without overlaps."""
        if not text:
            return []
        candidates = [PiiMatch(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]
        candidates += [
            PiiMatch(m.start(), m.end(), "card") for m in _CARD.finditer(text) if _luhn_valid(m.group())
        ]
        candidates += [PiiMatch(m.start(), m.end(), "ip") for m in _IPV4.finditer(text) if _is_ip(m.group())]
        candidates += [
            PiiMatch(m.start(), m.end(), "ip")
            for m in _IPV6.finditer(text)
            if m.group().count(":") >= 2 and _is_ip(m.group())
        ]
        candidates += self._phones(text)
        return _without_overlaps(candidates)

    def _phones(self, text: str) -> list[PiiMatch]:
        import phonenumbers

        # Cheap pre-filter: libphonenumber is slow, and most texts have no run of 7 digits at all.
        if sum(ch.isdigit() for ch in text) < 7:
            return []
        found = set()
        for region in self.regions:
            for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
                found.add(PiiMatch(match.start, match.end, "phone"))
        return sorted(found)

    def mask(self, text: str) -> tuple[str, Counter[str]]:
        """`text` with every match replaced by its mask, and the count of matches by kind."""
        matches = self.find(text)
        counts = Counter(match.kind for match in matches)
        for match in reversed(matches):
            text = text[: match.start] + MASKS[match.kind] + text[match.end :]
        return text, counts

    def mask_column(self, texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, Counter[str], list[bool]]:
        """Mask a column of strings: the masked column (nulls stay null), counts by kind, and which rows held
        personal data."""
        import pyarrow as pa

        masked, flagged, totals = [], [], Counter()
        for value in texts.to_pylist():
            if value is None:
                masked.append(None)
                flagged.append(False)
                continue
            text, counts = self.mask(value)
            masked.append(text)
            flagged.append(bool(counts))
            totals.update(counts)
        return pa.array(masked, type=pa.string()), totals, flagged


def _luhn_valid(candidate: str) -> bool:
    from stdnum import luhn

    digits = re.sub(r"[ -]", "", candidate)
    # A card number is one group pattern: no mixed separators like "1234-5678 9012 3456".
    return len(set(re.findall(r"[ -]", candidate))) <= 1 and luhn.is_valid(digits)


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _without_overlaps(matches: list[PiiMatch]) -> list[PiiMatch]:
    """The first-starting, then longest, of overlapping matches."""
    kept: list[PiiMatch] = []
    for match in sorted(matches, key=lambda m: (m.start, -(m.end - m.start))):
        if kept and match.start < kept[-1].end:
            continue
        kept.append(match)
    return kept
