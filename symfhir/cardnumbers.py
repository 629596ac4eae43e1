"""Payment card numbers in free text: find them (Luhn-valid, 13–19 digits) and mask them.

The privacy policy promises that full card numbers are never stored, so every
free-text field passes through here before it can reach a FHIR resource, every rejects
file before it is written, and every log record (``mask_log_records``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

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


MASK = "[card number removed]"


def mask_card_numbers(text: str) -> tuple[str, int]:
    """Replace each card number with ``[card number removed]``; return text and count."""
    spans = find_card_numbers(text)
    if not spans:
        return text, 0
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(MASK)
        last = end
    out.append(text[last:])
    return "".join(out), len(spans)


def masked(text: str) -> str:
    """``text`` with every card number masked (cheap for text too short to hold one)."""
    if len(text) < CARD_MIN_LENGTH:
        return text
    return mask_card_numbers(text)[0]


def masked_values(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` whose text values (and texts inside lists and dicts, as a JSON row
    holds them) have every card number masked; keys and other values are kept."""
    return {key: _masked_value(value) for key, value in row.items()}


def _masked_value(value: Any) -> Any:
    if isinstance(value, str):
        return masked(value)
    if isinstance(value, dict):
        return masked_values(value)
    if isinstance(value, list):
        return [_masked_value(v) for v in value]
    return value


def mask_log_records() -> None:
    """Mask card numbers in every log record created from now on, whatever its logger or
    handler (a record factory, so a handler added later by a server is covered too).
    Records below a logger's level are never created, so their cost is nothing."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_card_numbers", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: the handler reports it
            return record
        text = masked(message)
        if text != message:
            record.msg, record.args = text, ()
        return record

    factory.masks_card_numbers = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
