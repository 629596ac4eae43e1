"""symfhir.privacy.disclosures and disclosure_report: the accounting keeps only the client's
disclosures in the range, lists types not content, and renders escaped HTML, defused CSV and
a valid R4 Bundle."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle

from symfhir.audit import audit_event, disclosure_event
from symfhir.errors import NotAllowedError, RecordError
from symfhir.privacy.disclosure_report import accounting_bundle, accounting_csv, render
from symfhir.privacy.disclosures import accounting_of_disclosures, check_range
from symfhir.workspace.actor import Actor

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)
ACTOR = Actor("Practitioner/officer1")


class Searches:
    """A client answering one AuditEvent search with the events given, recording it."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.asked: list[tuple[str, dict]] = []

    def search(self, resource_type: str, params: dict) -> list[dict[str, Any]]:
        self.asked.append((resource_type, params))
        return self.events


class Trail:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, subtype: str, **kwargs: Any) -> None:
        self.calls.append((subtype, kwargs))


def disclosed(
    event_id: str, when: datetime, patient: str = "p1", **overrides: Any
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "recipient": "Dr. Dana Ashgrove",
        "recipient_reference": "Practitioner/doc1",
        "purpose": "TREAT",
        "disclosed": ["Binary/pkg1", "Observation"],
        "fhir_user": "Practitioner/nurse1",
        "now": when,
    }
    args.update(overrides)
    return {"id": event_id, **disclosure_event(patient, **args)}


def run(events: list[dict[str, Any]], start=date(2026, 11, 1), end=date(2026, 11, 30)):
    client = Searches(events)
    trail = Trail()
    accounting = accounting_of_disclosures(
        client, ACTOR, "p1", start=start, end=end, now=NOW, audit=trail
    )
    return accounting, client, trail


def test_only_the_clients_disclosures_in_the_range_oldest_first():
    nov3 = datetime(2026, 11, 3, 10, 0, tzinfo=ZONE)
    events = [
        disclosed("late", nov3 + timedelta(days=5), purpose="PATRQT", recipient="Avery Q."),
        disclosed("early", nov3),
        {"id": "read", **audit_event("read", "p1", "Practitioner/nurse1", now=nov3)},
        disclosed("other-client", nov3, patient="p2"),
        # Both ends: the first instant of Nov 1 and the last of Nov 30, Chicago time, are in;
        # a minute before and midnight after are not.
        disclosed("first", datetime(2026, 11, 1, 0, 0, tzinfo=ZONE)),
        disclosed("last", datetime(2026, 11, 30, 23, 59, tzinfo=ZONE)),
        disclosed("before", datetime(2026, 10, 31, 23, 59, tzinfo=ZONE)),
        disclosed("after", datetime(2026, 12, 1, 0, 0, tzinfo=ZONE)),
    ]
    accounting, client, trail = run(events)
    assert [d.event_id for d in accounting.disclosures] == ["first", "early", "late", "last"]
    assert [e["id"] for e in accounting.events] == ["first", "early", "late", "last"]
    ((kind, params),) = client.asked
    assert kind == "AuditEvent"
    assert params["patient"] == "Patient/p1"
    assert params["date"] == ["ge2026-11-01T00:00:00-05:00", "lt2026-12-01T00:00:00-06:00"]
    assert trail.calls == [("search", {"description": "accounting of disclosures read AuditEvent"})]
    late = accounting.disclosures[2]
    assert (late.recipient, late.purpose_code, late.purpose) == (
        "Avery Q.",
        "PATRQT",
        "patient requested",
    )
    assert late.disclosed == ("Binary", "Observation")  # types only, never ids
    assert late.by == "Practitioner/nurse1"
    assert late.when.tzinfo == ZONE


def test_a_disclosure_naming_another_patient_too_is_not_listed():
    event = disclosed("both", datetime(2026, 11, 3, tzinfo=ZONE))
    event["entity"].append({"what": {"reference": "Patient/p2"}})
    accounting, _, _ = run([event])
    assert accounting.disclosures == ()


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (date(2026, 11, 2), date(2026, 11, 1), "ends before"),
        (date(2020, 11, 24), date(2026, 11, 25), "longer than 6 years"),
        (date(2018, 2, 27), date(2024, 2, 29), "longer than 6 years"),
    ],
)
def test_bad_ranges_are_refused(start, end, reason):
    with pytest.raises(RecordError, match=reason):
        check_range(start, end)


def test_six_years_exactly_is_allowed():
    check_range(date(2020, 11, 25), date(2026, 11, 25))
    check_range(date(2018, 2, 28), date(2024, 2, 29))


def test_refused_without_auditevent_search():
    actor = Actor("Practitioner/x", permits=lambda t, i: t != "AuditEvent")
    with pytest.raises(NotAllowedError):
        accounting_of_disclosures(
            Searches([]),
            actor,
            "p1",
            start=date(2026, 11, 1),
            end=date(2026, 11, 2),
            now=NOW,
            audit=Trail(),
        )


HOSTILE = '<script>alert("x")</script> & Co'


class Texts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_every_value_and_needs_nothing_online():
    accounting, _, _ = run(
        [disclosed("e1", datetime(2026, 11, 3, 10, tzinfo=ZONE), recipient=HOSTILE)]
    )
    page = render(accounting, "html", spa_name="Spa <b>")
    parser = Texts()
    parser.feed(page)
    assert "script" not in parser.tags and "b" not in parser.tags
    assert HOSTILE in "".join(parser.text)
    assert "Spa <b>" in "".join(parser.text)
    assert "http" not in page.replace('charset="utf-8"', "")  # nothing fetched
    assert "2026-11-03 10:00 CST" in page
    assert "Observation" in page and "treatment" in page


def test_html_says_when_there_is_nothing():
    accounting, _, _ = run([])
    assert "No disclosures in this period." in render(accounting, "html", spa_name="Spa")


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t"])
def test_csv_quotes_and_defuses_formulas(start):
    name = f'{start}HYPERLINK("http://example.com"), "Dr" Ash\ngrove'
    event = disclosed("e1", datetime(2026, 11, 3, tzinfo=ZONE))
    event["agent"][-1]["name"] = name  # as another system may write it, unstripped
    accounting, _, _ = run([event])
    rows = list(csv.reader(io.StringIO(accounting_csv(accounting))))
    assert rows[0] == [
        "date",
        "recipient",
        "recipient_reference",
        "purpose_code",
        "purpose",
        "disclosed",
        "by",
        "outcome",
        "event",
    ]
    assert rows[1][1] == "'" + name
    assert rows[1][0] == "2026-11-03T00:00:00-06:00"
    assert rows[1][5] == "Binary;Observation"
    assert rows[1][8] == "AuditEvent/e1"


def test_bundle_is_a_valid_r4_collection_of_the_events():
    events = [disclosed("e1", datetime(2026, 11, 3, tzinfo=ZONE))]
    accounting, _, _ = run(events)
    bundle = accounting_bundle(accounting, "http://fhir.example.com/fhir/")
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    assert bundle["entry"][0]["fullUrl"] == "http://fhir.example.com/fhir/AuditEvent/e1"
    assert bundle["entry"][0]["resource"] == events[0]
    assert json.loads(render(accounting, "bundle", spa_name="Spa")) == accounting_bundle(accounting)


def test_unknown_format_refused():
    accounting, _, _ = run([])
    with pytest.raises(ValueError, match="unknown format"):
        render(accounting, "pdf", spa_name="Spa")


def test_the_apps_own_exports_are_listed_and_failed_attempts_are_not():
    when = datetime(2026, 11, 3, 10, 0, tzinfo=ZONE)
    exported = audit_event(
        "export",
        "p1",
        "Practitioner/nurse1",
        description="export zip: 7 resources (Consent 2, Media 1, Observation 4); "
        "1 photos, 1 files; sha256 ab12",
        now=when,
    )
    failed = audit_event(
        "export",
        "p1",
        "Practitioner/nurse1",
        success=False,
        description="export zip failed",
        now=when,
    )
    failed_disclosure = disclosed("f", when, success=False)
    accounting, _, _ = run([{"id": "x", **exported}, {"id": "y", **failed}, failed_disclosure])
    (item,) = accounting.disclosures
    assert item.event_id == "x"
    assert item.disclosed == ("Consent", "Media", "Observation")
    assert (item.recipient, item.purpose) == ("recipient not recorded", "not recorded")
    assert item.by == "Practitioner/nurse1"
