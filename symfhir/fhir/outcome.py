"""OperationOutcome parsing: issues for exceptions, a short reason, and a PHI-free log line.

https://hl7.org/fhir/R4/operationoutcome.html

An issue is a ``(severity, code, diagnostics, expression)`` tuple, ``expression`` being the
issue's ``expression`` list (or the deprecated ``location``) joined with ", ". Servers echo
submitted values in ``diagnostics`` (HAPI: ``Invalid date "1990-13-45"``), so ``log_text``
redacts quoted substrings, e-mail addresses and runs of four or more digits before anything
reaches a log; ``reason_text`` (for the exception message shown to the operator) only shortens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Issue = tuple[str, str, str, str]

REASON_MAX = 200
LOG_DIAGNOSTICS_MAX = 160
LOG_ISSUES_MAX = 3
_SEVERE = ("fatal", "error")

# HAPI message codes ("HAPI-0929") say which check failed and hold no data: they are kept.
# Quoted text: "…", '…' (an opening ' must not follow a letter: "doesn't" is no quote), “…”.
# Digit runs: digits with separators (dates, phones, times) holding four digits or more.
_REDACT = re.compile(
    r"(?P<code>\bHAPI-\d+)"
    r"|(?P<dq>\"[^\"\n]*\")"
    r"|(?P<sq>(?<![\w'])'[^'\n]*'(?!\w))"
    r"|(?P<cq>“[^”\n]*”)"
    r"|(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    r"|(?P<digits>\d(?:[\d\-/.:()+ ]*\d)?)"
)


def parse_outcome(resource: object) -> list[Issue]:
    """The issues of an OperationOutcome; [] for anything else (a Bundle, None, junk)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
        return []
    issues: list[Issue] = []
    for issue in resource.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        diagnostics = _text(issue.get("diagnostics"))
        if not diagnostics:
            details = issue.get("details")
            diagnostics = _text(details.get("text")) if isinstance(details, dict) else ""
        where = issue.get("expression") or issue.get("location") or []
        expression = (
            ", ".join(_text(e) for e in where if _text(e)) if isinstance(where, list) else ""
        )
        issues.append(
            (_text(issue.get("severity")), _text(issue.get("code")), diagnostics, expression)
        )
    return issues


def reason_text(issues: Iterable[Issue]) -> str:
    """The first error issue (else the first issue) as one short line; "" when there is none."""
    chosen = _first_severe(list(issues))
    if chosen is None:
        return ""
    severity, code, diagnostics, expression = chosen
    text = _one_line(diagnostics) or f"{severity or 'error'} ({code or 'unknown'})"
    if expression:
        text = f"{text} (at {_one_line(expression)})"
    return _shorten(text, REASON_MAX)


def log_text(operation: str, status: int | None, issues: Iterable[Issue]) -> str:
    """A one-line, PHI-free summary of a failed request, safe to write to logs.

    Keeps the operation, the status, each issue's severity, code and expression; keeps
    diagnostics only after ``redact``.
    """
    issues = list(issues)
    parts = [f"{operation}: " + (f"HTTP {status}" if status is not None else "no answer")]
    for severity, code, diagnostics, expression in issues[:LOG_ISSUES_MAX]:
        item = f"{severity or '?'}/{code or '?'}"
        if expression:
            item += f" at {redact(_one_line(expression))}"
        if diagnostics:
            item += f": {_shorten(redact(_one_line(diagnostics)), LOG_DIAGNOSTICS_MAX)}"
        parts.append(item)
    if len(issues) > LOG_ISSUES_MAX:
        parts.append(f"+{len(issues) - LOG_ISSUES_MAX} more issues")
    return "; ".join(parts)


def redact(text: str) -> str:
    """``text`` with quoted substrings, e-mail addresses and 4+-digit runs replaced."""
    return _REDACT.sub(_replacement, text)


def _replacement(match: re.Match[str]) -> str:
    kind = match.lastgroup
    value = match.group()
    if kind == "code":
        return value
    if kind in ("dq", "sq", "cq"):
        return f"{value[0]}***{value[-1]}"
    if kind == "email":
        return "***@***"
    if sum(ch.isdigit() for ch in value) >= 4:
        return "###"
    return value


def _first_severe(issues: list[Issue]) -> Issue | None:
    for issue in issues:
        if issue[0] in _SEVERE:
            return issue
    return issues[0] if issues else None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
