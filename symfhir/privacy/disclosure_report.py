"""The accounting of disclosures rendered: a self-contained HTML page (readable offline, every
value escaped), a CSV (cells that a spreadsheet would run as a formula are defused), and a
FHIR Bundle (type collection) of the AuditEvents it was read from."""

from __future__ import annotations

import csv
import io
import json
from html import escape
from typing import Any

from symfhir.privacy.disclosures import Accounting, Disclosure

FORMATS = ("html", "csv", "bundle")
CSV_COLUMNS = (
    "date",
    "recipient",
    "recipient_reference",
    "purpose_code",
    "purpose",
    "disclosed",
    "by",
    "outcome",
    "event",
)
# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets (OWASP
# "CSV injection"): it is prefixed with an apostrophe, which they show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1b1b;max-width:60rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #bbb;padding:.4rem;
text-align:left;vertical-align:top}th{background:#eee}.none{font-style:italic}
"""


def render(accounting: Accounting, fmt: str, *, spa_name: str, base_url: str = "") -> str:
    """The accounting in ``fmt`` (one of FORMATS) as text; the Bundle as JSON.
    Raises ValueError for another format."""
    if fmt == "html":
        return accounting_html(accounting, spa_name)
    if fmt == "csv":
        return accounting_csv(accounting)
    if fmt == "bundle":
        return json.dumps(accounting_bundle(accounting, base_url), indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def _when(disclosure: Disclosure) -> str:
    return disclosure.when.strftime("%Y-%m-%d %H:%M %Z").strip()


def _outcome(disclosure: Disclosure) -> str:
    return "completed" if disclosure.success else "failed"


def accounting_html(accounting: Accounting, spa_name: str) -> str:
    """One HTML page, no scripts and nothing fetched: it reads the same offline."""
    rows = []
    for item in accounting.disclosures:
        cells = (
            _when(item),
            item.recipient,
            item.purpose,
            ", ".join(item.disclosed) or "not recorded",
            _outcome(item),
        )
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    if not rows:
        rows.append('<tr><td colspan="5" class="none">No disclosures in this period.</td></tr>')
    period = f"{accounting.start.isoformat()} to {accounting.end.isoformat()}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Accounting of disclosures, {escape(period)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>Accounting of disclosures — {escape(spa_name)}</h1>",
            f"<p>Every disclosure of your information recorded from {escape(period)} "
            "(the dates are the spa's local time): who received it, when, why, and which "
            "kinds of records. Prepared on "
            f"{escape(accounting.produced.date().isoformat())}.</p>",
            "<table><thead><tr>"
            '<th scope="col">Date</th><th scope="col">Recipient</th>'
            '<th scope="col">Purpose</th><th scope="col">What was disclosed</th>'
            '<th scope="col">Outcome</th></tr></thead><tbody>',
            *rows,
            "</tbody></table>",
            "</body></html>",
            "",
        ]
    )


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def accounting_csv(accounting: Accounting) -> str:
    """One row per disclosure under a header of CSV_COLUMNS (RFC 4180 quoting)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for item in accounting.disclosures:
        writer.writerow(
            _cell(v)
            for v in (
                item.when.isoformat(timespec="seconds"),
                item.recipient,
                item.recipient_reference,
                item.purpose_code,
                item.purpose,
                ";".join(item.disclosed),
                item.by,
                _outcome(item),
                f"AuditEvent/{item.event_id}" if item.event_id else "",
            )
        )
    return out.getvalue()


def accounting_bundle(accounting: Accounting, base_url: str = "") -> dict[str, Any]:
    """A Bundle (type collection) of the disclosures' AuditEvents, oldest first; each
    entry's fullUrl is the event's address on ``base_url`` when given."""
    entries = []
    for event in accounting.events:
        entry: dict[str, Any] = {"resource": event}
        if base_url and event.get("id"):
            entry["fullUrl"] = f"{base_url.rstrip('/')}/AuditEvent/{event['id']}"
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": accounting.produced.isoformat(timespec="seconds"),
        "entry": entries,
    }
