"""PII in review text: e-mails, phone numbers, Luhn-valid card numbers and IP addresses are found and masked;
look-alikes (order ids, prices, versions, dates) are left alone."""

import pyarrow as pa
import pytest

from platform_assets.lib.curation.pii import MASKS, PiiPolicy, PiiScanner

SCANNER = PiiScanner()


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to jane.doe+shop@mail.example.co.uk please", "email", "jane.doe+shop@mail.example.co.uk"),
        ("call +1 415-555-0132 after six", "phone", "+1 415-555-0132"),
        ("ring (020) 7946 0958 any time", "phone", "(020) 7946 0958"),
        ("my card 4111 1111 1111 1111 was charged twice", "card", "4111 1111 1111 1111"),
        ("card 5500-0000-0000-0004 declined", "card", "5500-0000-0000-0004"),
        ("amex 378282246310005 works", "card", "378282246310005"),
        ("from 203.0.113.42 it fails", "ip", "203.0.113.42"),
        ("v6 2001:db8::8a2e:370:7334 too", "ip", "2001:db8::8a2e:370:7334"),
    ],
)
def test_each_kind_is_found_where_it_is(text: str, kind: str, value: str) -> None:
    (match,) = SCANNER.find(text)
    assert (match.kind, text[match.start : match.end]) == (kind, value)
    masked, counts = SCANNER.mask(text)
    assert masked == text.replace(value, MASKS[kind]) and counts == {kind: 1}


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 arrived late",  # 16 digits, fails the Luhn check
        "costs $1,299.99 and weighs 2.5 kg",
        "version 1.2.3.4000 of the app",  # not an IP: an octet over 255
        "delivered 2024-01-15 at 10:30",
        "rated it 5/5, model XJ-4000",
        "batch 12345 of 67890",
        "not an email: user@localhost or @handle",
    ],
)
def test_look_alikes_are_not_personal_data(text: str) -> None:
    assert SCANNER.find(text) == []
    assert SCANNER.mask(text) == (text, {})


def test_several_kinds_in_one_text_and_no_double_masking() -> None:
    text = "Refund 4111-1111-1111-1111 to bob@example.com, or call +44 20 7946 0958 (from 10.0.0.7)."
    masked, counts = SCANNER.mask(text)
    assert masked == "Refund [CARD] to [EMAIL], or call [PHONE] (from [IP])."
    assert counts == {"card": 1, "email": 1, "phone": 1, "ip": 1}
    # Masked text holds nothing more to find.
    assert SCANNER.find(masked) == []


def test_a_column_is_masked_row_by_row_and_counted() -> None:
    texts = pa.chunked_array([["fine product", None, "mail me a@b.io or c@d.io"], ["ip 8.8.8.8"]])
    masked, counts, flagged = SCANNER.mask_column(texts)
    assert masked.to_pylist() == ["fine product", None, "mail me [EMAIL] or [EMAIL]", "ip [IP]"]
    assert counts == {"email": 2, "ip": 1}
    assert flagged == [False, False, True, True]


def test_phone_regions_are_configurable_and_policies_are_named() -> None:
    national = "ruf mich an: 030 901820"  # a Berlin number as dialled in Germany
    assert [m.kind for m in PiiScanner(regions=["DE"]).find(national)] == ["phone"]
    assert PiiScanner(regions=["US"]).find(national) == []
    assert PiiPolicy("drop") is PiiPolicy.DROP and {p.value for p in PiiPolicy} == {"mask", "drop", "keep"}
