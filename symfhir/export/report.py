"""The human-readable report of an export: one self-contained HTML page (no scripts, no
external resources) with the client's details, intake, allergies, medications, conditions,
treatments, consents and photos. Every value from the record is HTML-escaped.

Written from the Spool section by section; photos are either embedded (``data:`` URIs,
base64-encoded while they stream from the server) or linked to the package's ``photos/``
files beside the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from html import escape
from typing import IO, Any

from symfhir.export.attachments import FileRef, attachments_of
from symfhir.export.spool import Spool
from symfhir.fhir.reading import concept_text, human_name, status_code

#: Writes what goes inside ``src="…"`` for a file (a data URI, or a relative name).
FileSource = Callable[[FileRef, IO[bytes]], None]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;margin-top:2rem}"
    "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3rem;"
    "text-align:left;vertical-align:top}figure{display:inline-block;margin:.5rem}"
    "img{max-width:18rem;max-height:18rem}.muted{color:#666}"
)
_NONE = '<p class="muted">None.</p>\n'
_SECTIONS: tuple[tuple[str, str], ...] = (
    ("AllergyIntolerance", "Allergies"),
    ("MedicationStatement", "Medications and supplements"),
    ("Condition", "Health history"),
    ("Procedure", "Treatments"),
)


def write_report(
    spool: Spool,
    dest: IO[bytes],
    *,
    patient_id: str,
    spa_name: str,
    base_url: str,
    now: datetime,
    file_source: FileSource,
    csp_images: str,
    extra_sections: Iterable[tuple[str, str]] = (),
) -> None:
    """Write the report. ``csp_images`` is the page's ``img-src`` policy (``data:`` for an
    embedded page); ``extra_sections`` are (title, already-safe HTML) pairs appended at the
    end (the accounting of disclosures)."""

    def out(text: str) -> None:
        dest.write(text.encode("utf-8"))

    patient = next(
        (p for p in spool.resources("Patient") if p.get("id") == patient_id), {"id": patient_id}
    )
    name = human_name(patient.get("name")) or "Client"
    out(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f"img-src {csp_images}; style-src 'unsafe-inline'\">"
        f"<title>Record of {escape(name)}</title><style>{_STYLE}</style></head><body>\n"
        f'<h1>Record of {escape(name)}</h1>\n<p class="muted">Held by {escape(spa_name)}; '
        f"exported {escape(now.isoformat(timespec='minutes'))}. The complete record is in the "
        "FHIR files of this package (bundle.json, ndjson/).</p>\n"
    )
    for piece in _details(patient):
        out(piece)
    for piece in _intake(spool):
        out(piece)
    for resource_type, title in _SECTIONS:
        out(f"<h2>{escape(title)}</h2>\n")
        for piece in _table(spool.resources(resource_type), _ROWS[resource_type]):
            out(piece)
    for piece in _consents(spool, base_url):
        out(piece)
    out("<h2>Photos</h2>\n")
    photos = 0
    for resource_type in ("Media", "DocumentReference"):
        for resource in spool.resources(resource_type):
            for ref in attachments_of(resource, base_url):
                if ref.folder != "photos" or not ref.is_image:
                    continue
                photos += 1
                out('<figure><img alt="photo" src="')
                file_source(ref, dest)
                caption = _photo_caption(resource)
                out(f'"><figcaption>{escape(caption)}</figcaption></figure>\n')
    if not photos:
        out(_NONE)
    if spool.counts.get("DocumentReference"):
        for piece in _documents(spool, base_url):
            out(piece)
    out("<h2>Everything in this record</h2>\n<table><tr><th>Kind of record</th><th>Count</th>")
    out("</tr>\n")
    for resource_type in spool.types():
        out(f"<tr><td>{escape(resource_type)}</td><td>{spool.counts[resource_type]}</td></tr>\n")
    out("</table>\n")
    for title, body in extra_sections:
        out(f"<h2>{escape(title)}</h2>\n{body}\n")
    out("</body></html>\n")


def _details(patient: dict[str, Any]) -> Iterator[str]:
    rows = [
        ("Name", human_name(patient.get("name"))),
        ("Date of birth", str(patient.get("birthDate", ""))),
        ("Sex", str(patient.get("gender", ""))),
    ]
    for telecom in patient.get("telecom") or []:
        if isinstance(telecom, dict) and telecom.get("value"):
            rows.append((str(telecom.get("system", "contact")).capitalize(), telecom["value"]))
    for address in patient.get("address") or []:
        if isinstance(address, dict):
            parts = [*address.get("line", []), address.get("city"), address.get("state")]
            parts.append(address.get("postalCode"))
            rows.append(("Address", ", ".join(str(p) for p in parts if p)))
    for ident in patient.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            rows.append(("Client number", str(ident["value"])))
    yield "<h2>Your details</h2>\n"
    yield from _pairs(rows)


def _intake(spool: Spool) -> Iterator[str]:
    yield "<h2>Intake</h2>\n"
    empty = True
    for response in spool.resources("QuestionnaireResponse"):
        empty = False
        yield f"<h3>Intake form {escape(str(response.get('authored', '')))}</h3>\n"
        yield from _pairs(_answers(response.get("item") or []))
    if spool.counts.get("Observation"):
        empty = False
        yield "<h3>Observations</h3>\n"
        observations = spool.resources("Observation")
        yield from _pairs((concept_text(o.get("code")), _value(o)) for o in observations)
    if empty:
        yield _NONE


def _answers(items: list[Any], depth: int = 0) -> Iterable[tuple[str, str]]:
    for item in items:
        if not isinstance(item, dict):
            continue
        label = str(item.get("text") or item.get("linkId") or "")
        answers = [a for a in item.get("answer") or [] if isinstance(a, dict)]
        if answers:
            yield label, "; ".join(_value(a) for a in answers)
        yield from _answers(item.get("item") or [], depth + 1)
        for answer in answers:
            yield from _answers(answer.get("item") or [], depth + 1)


def _value(node: dict[str, Any]) -> str:
    """What a ``value[x]`` says, whichever type it is."""
    for key, value in node.items():
        if not key.startswith("value"):
            continue
        if isinstance(value, dict):
            if "coding" in value or "text" in value:
                return concept_text(value)
            if "code" in value or "display" in value:
                return str(value.get("display") or value.get("code"))
            if "value" in value:
                return f"{value['value']} {value.get('unit', '')}".strip()
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)
    return ""


def _period(node: object) -> str:
    if isinstance(node, dict):
        return " – ".join(str(node[k]) for k in ("start", "end") if node.get(k))
    return str(node or "")


_ROWS: dict[str, tuple[tuple[str, Callable[[dict[str, Any]], str]], ...]] = {
    "AllergyIntolerance": (
        ("Allergy", lambda r: concept_text(r.get("code"))),
        ("Status", lambda r: status_code(r, "clinicalStatus")),
        (
            "Reaction",
            lambda r: "; ".join(
                concept_text(m)
                for x in r.get("reaction") or []
                for m in (x.get("manifestation") or [] if isinstance(x, dict) else [])
            ),
        ),
        ("Recorded", lambda r: str(r.get("recordedDate", ""))),
    ),
    "MedicationStatement": (
        ("Medication", lambda r: concept_text(r.get("medicationCodeableConcept"))),
        ("Status", lambda r: str(r.get("status", ""))),
        (
            "Dosage",
            lambda r: "; ".join(
                str(d.get("text", "")) for d in r.get("dosage") or [] if isinstance(d, dict)
            ),
        ),
        ("When", lambda r: _period(r.get("effectivePeriod") or r.get("effectiveDateTime"))),
    ),
    "Condition": (
        ("Condition", lambda r: concept_text(r.get("code"))),
        ("Status", lambda r: status_code(r, "clinicalStatus")),
        ("Since", lambda r: _period(r.get("onsetDateTime") or r.get("onsetPeriod"))),
    ),
    "Procedure": (
        ("Treatment", lambda r: concept_text(r.get("code"))),
        ("Date", lambda r: _period(r.get("performedDateTime") or r.get("performedPeriod"))),
        ("Status", lambda r: str(r.get("status", ""))),
        (
            "Area",
            lambda r: ", ".join(concept_text(b) for b in r.get("bodySite") or []),
        ),
        (
            "Notes",
            lambda r: " ".join(
                str(n.get("text", "")) for n in r.get("note") or [] if isinstance(n, dict)
            ),
        ),
    ),
}


def _consents(spool: Spool, base_url: str) -> Iterator[str]:
    def rows() -> Iterator[list[str]]:
        for consent in spool.resources("Consent"):
            what = ", ".join(concept_text(c) for c in consent.get("category") or [])
            provision = consent.get("provision")
            provision = provision if isinstance(provision, dict) else {}
            purposes = ", ".join(
                str(p.get("display") or p.get("code", ""))
                for p in provision.get("purpose") or []
                if isinstance(p, dict)
            )
            yield [
                (what or concept_text(consent.get("scope")))
                + (f" ({purposes})" if purposes else ""),
                str(consent.get("status", "")),
                str(provision.get("type", "")),
                str(consent.get("dateTime", "")),
                _period(provision.get("period")),
                ", ".join(ref.name for ref in attachments_of(consent, base_url)),
            ]

    head = ("Consent", "Status", "Decision", "Signed", "Valid", "Signed form (in the ZIP package)")
    yield "<h2>Consents</h2>\n"
    yield from _grid(head, rows())


def _documents(spool: Spool, base_url: str) -> Iterator[str]:
    # Documents other than photos (signed forms kept as documents): listed with their file.
    def rows() -> Iterator[list[str]]:
        for document in spool.resources("DocumentReference"):
            refs = [r for r in attachments_of(document, base_url) if r.folder == "forms"]
            if refs:
                yield [
                    str(document.get("description") or concept_text(document.get("type"))),
                    str(document.get("date", "")),
                    ", ".join(r.name for r in refs),
                ]

    yield "<h2>Documents</h2>\n"
    yield from _grid(("Document", "Date", "File (in the ZIP package)"), rows())


def _photo_caption(resource: dict[str, Any]) -> str:
    parts = [
        concept_text(resource.get("bodySite")),
        concept_text(resource.get("view")),
        str(resource.get("createdDateTime") or resource.get("date") or ""),
    ]
    return " · ".join(p for p in parts if p)


def _table(
    resources: Iterable[dict[str, Any]],
    columns: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...],
) -> Iterator[str]:
    rows = ([get(r) for _, get in columns] for r in resources)
    return _grid(tuple(title for title, _ in columns), rows)


def _grid(head: tuple[str, ...], rows: Iterable[list[str]]) -> Iterator[str]:
    """A table, a row at a time ("None." when there are no rows)."""
    empty = True
    for row in rows:
        if empty:
            yield "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>\n"
            empty = False
        yield "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>\n"
    yield _NONE if empty else "</table>\n"


def _pairs(rows: Iterable[tuple[str, str]]) -> Iterator[str]:
    empty = True
    for key, value in rows:
        if empty:
            yield "<table>"
            empty = False
        yield f"<tr><th>{escape(str(key))}</th><td>{escape(str(value))}</td></tr>\n"
    yield _NONE if empty else "</table>\n"
