"""symfhir.sharing.summary_render: the printable HTML page (escaped, no script, strict CSP,
print stylesheet) and the PDF (its text, Unicode names, the honest fallback without a
TrueType font), from documents of ours and from hostile ones."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import SharingError
from symfhir.sharing.summary import patient_summary
from symfhir.sharing.summary_render import (
    CSP,
    REPLACED_NOTICE,
    STYLE,
    pdf_fonts,
    summary_html,
    summary_pdf,
)
from tests.unit.pdf_text import pdf_text
from tests.unit.summary_record import PID, record

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 4, 19, 30, tzinfo=ZoneInfo("America/Chicago"))
DOC_ID = "6e1c1a7e-8a3b-4c2d-9e0f-112233445566"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'
# Polish, Cyrillic, Greek and Vietnamese letters: none of them is Latin-1
UNICODE_NAME = "Zofia Łukasiewicz-Жукова Ἀθηνᾶ Nguyễn"
NO_FONT = {"SYMFHIR_PDF_FONT": "/nonexistent/font.ttf"}

needs_font = pytest.mark.skipif(
    pdf_fonts() is None, reason="no TrueType font (install fonts-dejavu-core)"
)


def squeezed(text):
    """Text without whitespace: a PDF wraps long lines, even inside a word."""
    return "".join(text.split())


def document(resources=None, **kw):
    return patient_summary(
        record() if resources is None else resources,
        patient_id=PID,
        now=NOW,
        author=kw.pop("author", "Jo Practitioner"),
        document_id=DOC_ID,
    )


def hostile_document():
    resources = record()
    next(r for r in resources if r["resourceType"] == "AllergyIntolerance")["code"] = {
        "text": HOSTILE
    }
    return document(resources)


def unicode_document():
    resources = record()
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    given, family = UNICODE_NAME.split(" ", 1)
    patient["name"] = [{"given": [given], "family": family}]
    return document(resources)


# --- HTML -------------------------------------------------------------------------------


def test_html_is_a_standalone_page_with_every_section():
    page = summary_html(document())
    assert page.startswith("<!DOCTYPE html>")
    for heading in (
        "Allergies and intolerances",
        "Medications and supplements",
        "Conditions and problems",
        "Procedures",
        "Results and findings",
        "Aesthetic treatments at the spa",
        "Contraindication warnings",
        "Consents",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert "Avery Quillfeather" in page and "Lidocaine" in page and "Warfarin 5 mg" in page
    assert re.search(r"<th scope=\"col\">Substance</th>", page)


def test_html_loads_and_runs_nothing():
    page = summary_html(document())
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert f'content="{CSP}"' in page
    assert "default-src 'none'" in CSP and "unsafe-inline" not in CSP
    # the one stylesheet the policy allows is exactly the page's own
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CSP
    assert f"<style>{STYLE}</style>" in page


def test_html_has_a_print_stylesheet():
    assert "@media print" in STYLE and "table-header-group" in STYLE


def test_html_escapes_the_records_text():
    page = summary_html(hostile_document())
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&amp; &quot;quotes&quot;" in page


def test_html_of_a_tampered_narrative_keeps_only_text():
    doc = document()
    comp = doc["entry"][0]["resource"]
    comp["title"] = "<b>Summary</b>"
    comp["section"][0]["title"] = "</h2><script>bad()</script>"
    comp["section"][0]["text"]["div"] = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">Kept <a href="http://evil">'
        "link</a></p><script>steal()</script><style>p{}</style><img src=x>"
        '<table><tr><td style="x">cell &amp; more</td></tr></table></div>'
    )
    page = summary_html(doc)
    assert "<script" not in page and "onclick" not in page and "href" not in page
    assert "steal()" not in page and "<img" not in page and 'style="x"' not in page
    assert "<p>Kept link</p>" in page
    assert "<td>cell &amp; more</td>" in page
    assert "&lt;/h2&gt;&lt;script&gt;bad()&lt;/script&gt;" in page
    assert "<title>&lt;b&gt;Summary&lt;/b&gt;</title>" in page


def test_html_keeps_unicode_names():
    assert UNICODE_NAME in summary_html(unicode_document())


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"resourceType": "Patient"},
        {"resourceType": "Bundle", "entry": []},
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]},
        {"resourceType": "Bundle", "entry": "x"},
    ],
)
def test_not_a_summary_document_is_refused(bad):
    with pytest.raises(SharingError, match="document"):
        summary_html(bad)
    with pytest.raises(SharingError, match="document"):
        summary_pdf(bad)


def test_sparse_document_renders():
    doc = document()
    comp = doc["entry"][0]["resource"]
    for section in comp["section"]:
        del section["text"]
    comp["section"].append("junk")
    del comp["title"]
    page = summary_html(doc)
    assert "<h1>Patient summary</h1>" in page
    assert pdf_text(summary_pdf(doc)).startswith("Patient summary")


# --- PDF --------------------------------------------------------------------------------


def test_pdf_starts_with_pdf_and_holds_the_text():
    pdf = summary_pdf(document())
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    for expected in (
        "Patient summary",
        "Avery Quillfeather",
        "Allergies and intolerances",
        "Lidocaine",
        "Warfarin 5 mg",
        "Contraindication warnings",
        "Consent to treatment",
        "Page 1/",
    ):
        assert expected in text, expected
    assert REPLACED_NOTICE not in text


def test_pdf_is_reproducible():
    assert summary_pdf(document()) == summary_pdf(document())


@needs_font
def test_pdf_draws_a_non_latin1_name():
    text = pdf_text(summary_pdf(unicode_document()))
    assert squeezed(UNICODE_NAME) in squeezed(text)
    assert "?" not in text
    assert REPLACED_NOTICE not in text


@needs_font
def test_pdf_says_so_when_the_font_lacks_a_character():
    resources = record()
    next(r for r in resources if r["resourceType"] == "Patient")["name"] = [
        {"given": ["美玲"], "family": "Chen"}
    ]
    text = pdf_text(summary_pdf(document(resources)))
    assert "?? Chen" in text
    assert squeezed(REPLACED_NOTICE) in squeezed(text)


def test_pdf_without_a_truetype_font_falls_back_to_latin1_honestly():
    assert pdf_fonts(NO_FONT) is None
    text = pdf_text(summary_pdf(unicode_document(), environ=NO_FONT))
    latin1 = "".join(c if ord(c) < 256 else "?" for c in UNICODE_NAME)
    assert latin1.startswith("Zofia ?ukasiewicz-")
    assert squeezed(latin1) in squeezed(text)
    assert squeezed(REPLACED_NOTICE) in squeezed(text)
    latin = pdf_text(summary_pdf(document(), environ=NO_FONT))
    assert "Avery Quillfeather" in latin and REPLACED_NOTICE not in latin


def test_pdf_prints_hostile_text_as_text():
    text = pdf_text(summary_pdf(hostile_document()))
    assert squeezed(HOSTILE) in squeezed(text)


def test_pdf_of_many_rows_pages_on():
    resources = record()
    resources += [
        {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": "final",
            "subject": {"reference": f"Patient/{PID}"},
            "code": {"text": f"Finding {i}"},
            "valueString": "x",
        }
        for i in range(300)
    ]
    text = pdf_text(summary_pdf(document(copy.deepcopy(resources))))
    assert "Finding 299" in text
    pages = int(re.findall(r"Page \d+/\s*(\d+)", text)[0])
    assert pages > 3
    # the table's header row is drawn again on every page it runs onto
    assert text.count("\nValue\n") >= pages - 2


def test_pdf_table_wraps_a_long_cell_and_keeps_every_word():
    resources = record()
    long = " ".join(f"word{i}" for i in range(80)) + " " + "x" * 150
    next(r for r in resources if r["resourceType"] == "Condition")["code"] = {"text": long}
    text = pdf_text(summary_pdf(document(resources)))
    assert squeezed(long) in squeezed(text)


def test_font_settings_from_the_environment(tmp_path):
    regular = tmp_path / "r.ttf"
    regular.write_bytes(b"x")
    assert pdf_fonts({"SYMFHIR_PDF_FONT": str(regular)}) == (regular, regular)
    bold = tmp_path / "b.ttf"
    env = {"SYMFHIR_PDF_FONT": str(regular), "SYMFHIR_PDF_FONT_BOLD": str(bold)}
    assert pdf_fonts(env) == (regular, bold)
