"""Data minimisation (pure): personal and payment data masked before decision inputs and audit details are stored.

Found in any string, at any depth of a JSON-like value: e-mail addresses, phone numbers (international or with at
least nine digits), payment card numbers (13 to 19 digits passing the Luhn check) and IBANs (passing the ISO 7064
mod-97 check). Fields named in ``fields`` (compared without case, at any depth) are masked whole. Each kind is
replaced by a marker such as ``[email]``, so a reader still sees what was there; checksums keep order numbers and
timestamps from being taken for cards or IBANs, and digits joined to letters (identifiers such as run ids and
idempotency keys, which are hexadecimal) are never taken for cards or phone numbers.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
# Digits joined to letters or underscores are part of an identifier (``run_01a2511662430135fcf0e704`` holds 13 digits
# that pass the Luhn check), never a card number written out.
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
_PHONE = re.compile(r"(?<![\w+:-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?![\w:-])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}[./-]\d{2}[./-]\d{4}")

REDACTED = "[redacted]"


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def _iban(match: re.Match[str]) -> str:
    return "[iban]" if _iban_valid(match.group(0)) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        return "[phone]" if 8 <= len(digits) <= 15 else text
    # A national number is written in groups (spaces, dots, dashes, an area code in brackets); a bare run of digits
    # is more often an order or ticket number, and dates are digit groups too.
    groups = len(re.findall(r"[ .()-]+", text))
    if groups >= 2 and 9 <= len(digits) <= 12 and not _DATE.search(text):
        return "[phone]"
    return text


def redact_text(text: str) -> str:
    """``text`` with e-mail addresses, IBANs, card numbers and phone numbers masked."""
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub(_iban, text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


def redact(value: Any, fields: Collection[str] = ()) -> Any:
    """A copy of a JSON-like value with personal data masked in every string and named fields masked whole."""
    named = {field.lower() for field in fields}
    return _redact(value, named)


def _redact(value: Any, named: set[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if str(key).lower() in named and item is not None else _redact(item, named)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(item, named) for item in value]
    return value
