"""Payment card numbers in free text: find them (Luhn-valid, 13–19 digits) and mask them.

The privacy policy promises that full card numbers are never stored, so every
free-text field passes through here before it can reach a FHIR resource.
"""

from __future__ import annotations

import re

CARD_MIN_LENGTH = 13  # the shortest card number: no shorter text can hold one

# Digits optionally grouped by single spaces or dashes, as people type them.
_CANDIDATE = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only 0-9) passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def find_card_numbers(text: str) -> list[tuple[int, int]]:
    """Spans of Luhn-valid 13–19 digit runs (spaces/dashes allowed) in ``text``."""
    spans = []
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(match.span())
    return spans


def has_card_number(text: str) -> bool:
    return bool(find_card_numbers(text))


def mask_card_numbers(text: str) -> tuple[str, int]:
    """Replace each card number with ``[card number removed]``; return text and count."""
    spans = find_card_numbers(text)
    if not spans:
        return text, 0
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append("[card number removed]")
        last = end
    out.append(text[last:])
    return "".join(out), len(spans)
