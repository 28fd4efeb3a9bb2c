"""Data minimisation: personal and payment data masked, look-alikes (dates, order numbers, versions) kept."""

from __future__ import annotations

import pytest

from opsrail.governance import REDACTED, redact, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+ops@acme.co.uk now", "mail [email] now"),
        ("card 4111 1111 1111 1111 ok", "card [card] ok"),
        ("card 5500-0000-0000-0004", "card [card]"),
        ("iban DE89 3704 0044 0532 0130 00 pay", "iban [iban] pay"),
        ("IBAN GB82WEST12345698765432", "IBAN [iban]"),
        ("call +44 20 7946 0958 today", "call [phone] today"),
        ("call (415) 555-2671", "call [phone]"),
        ("call 020 7946 0958", "call [phone]"),
    ],
)
def test_personal_and_payment_data_is_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 shipped",  # fails the Luhn check and has no phone grouping
        "card-like 4111 1111 1111 1112",  # fails the Luhn check
        "iban-like DE00 3704 0044 0532 0130 00",  # fails mod 97
        "opened 2026-11-30 12:00, amount 1,234.56",
        "ticket 2012-04-03 16:55:38",
        "INC-12345 severity 1, version 1.2.3, host 10.0.0.1",
    ],
)
def test_look_alikes_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_nested_values_and_named_fields() -> None:
    value = {
        "Customer_Name": "Jane Doe",
        "notes": ["reach me at jane@acme.com", {"phone": "+1 415 555 2671"}],
        "severity": 1,
        "missing": None,
    }
    assert redact(value, fields=["customer_name", "missing"]) == {
        "Customer_Name": REDACTED,
        "notes": ["reach me at [email]", {"phone": "[phone]"}],
        "severity": 1,
        "missing": None,
    }
    assert value["Customer_Name"] == "Jane Doe"  # the input is not changed


@pytest.mark.parametrize(
    "text",
    [
        "run_01a2511662430135fcf0e704",  # 13 digits that pass the Luhn check, inside an identifier
        "run_01a2511662430135fcf0e704:defect",
        "dec_01a2511662458748d9ea80ee",
        "ref4111111111111111",
    ],
)
def test_identifiers_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_no_generated_identifier_is_masked() -> None:
    """Ids are milliseconds then random bits in hexadecimal: thousands of them, as audit details carry them."""
    from opsrail.wiring import RandomIds

    ids = RandomIds()
    changed = [i for i in (ids.new("run") for _ in range(20_000)) if redact_text(f"{i}:step") != f"{i}:step"]
    assert changed == []
