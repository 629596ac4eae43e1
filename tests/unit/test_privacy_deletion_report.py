"""The deletion report (symfhir/privacy/deletion_report.py): status, summary and JSON."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.privacy.deletion_report import DeletionItem, DeletionReport

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))


def report(*items: DeletionItem) -> DeletionReport:
    return DeletionReport("p1", AT, "request", False, items, ("Patient/p1",), date(2025, 6, 1))


def test_only_the_record_of_the_deletion_kept_is_complete() -> None:
    done = report(
        DeletionItem("Consent/k1", "deleted", "marketing-consent"),
        DeletionItem("AuditEvent/e1", "kept", "audit-trail"),
        DeletionItem("Task/r1", "kept", "privacy-request"),
        DeletionItem("Patient/p1", "kept", "referenced-by-kept", None, "AuditEvent/e1"),
    )
    assert done.complete
    assert done.scheduled is None
    assert done.summary() == "1 deleted, 3 kept"


@pytest.mark.parametrize(
    "kept",
    [
        DeletionItem("Procedure/t1", "kept", "medical-record", date(2032, 6, 1)),
        DeletionItem("Patient/p1", "kept", "referenced-by-kept", date(2032, 6, 1), "Procedure/t1"),
        DeletionItem("Media/m1", "kept", "referenced-by-kept", None, "AuditEvent/e1"),
        DeletionItem("Flag/f1", "kept", "no-rule"),
    ],
)
def test_anything_else_kept_is_partial(kept: DeletionItem) -> None:
    partial = report(DeletionItem("AuditEvent/e1", "kept", "audit-trail"), kept)
    assert not partial.complete


def test_json_and_lines_name_types_ids_rules_and_dates_only() -> None:
    partial = report(
        DeletionItem("Consent/k1", "deleted", "marketing-consent"),
        DeletionItem("Procedure/t1", "kept", "medical-record", date(2032, 6, 1)),
        DeletionItem("Patient/p1", "kept", "referenced-by-kept", date(2032, 6, 1), "Procedure/t1"),
        DeletionItem("Flag/f1", "kept", "no-rule"),
    )
    data = json.loads(partial.to_json())
    assert data["patient"] == "Patient/p1"
    assert data["scheduled"] == "2032-06-01"
    assert data["deleted"] == 1 and data["kept"] == 3
    assert data["items"][1] == {
        "resource": "Procedure/t1",
        "outcome": "kept",
        "rule": "medical-record",
        "until": "2032-06-01",
    }
    assert partial.summary() == "1 deleted, 3 kept; next deletion on or after 2032-06-01"
    assert [i.line() for i in partial.items] == [
        "Consent/k1: deleted (marketing-consent)",
        "Procedure/t1: kept until 2032-06-01 because medical-record",
        "Patient/p1: kept until 2032-06-01 because referenced by Procedure/t1",
        "Flag/f1: kept: no rule allows deleting it",
    ]


def split(text: str) -> list[str]:
    """The summary's sentences that open a part (the counts, deleted, each kept group)."""
    return re.split(r"(?<=\.) (?=Deleted now|There was|Kept )", text)


def test_the_requesters_summary_stands_on_its_own_in_plain_words() -> None:
    partial = report(
        DeletionItem("Consent/k1", "deleted", "marketing-consent"),
        DeletionItem("Consent/k2", "deleted", "marketing-consent"),
        DeletionItem("Media/m9", "deleted", "marketing-photo"),
        DeletionItem("Procedure/t1", "kept", "medical-record", date(2032, 6, 1)),
        DeletionItem("Observation/o1", "kept", "medical-record", date(2032, 6, 1)),
        DeletionItem("Consent/c1", "kept", "medical-consent", date(2032, 6, 1)),
        DeletionItem("Patient/p1", "kept", "referenced-by-kept", date(2032, 6, 1), "Procedure/t1"),
        DeletionItem("AuditEvent/e1", "kept", "audit-trail"),
    )
    assert split(partial.requester_summary()) == [
        "3 deleted, 5 kept; next deletion on or after 2032-06-01.",
        "Deleted now: your marketing consents (2 items); "
        "photos you allowed us to use for marketing (1 item).",
        "Kept until 2032-06-01, then deleted: "
        "your medical records (intake forms, history, treatment records) (2 items); "
        "your consents to treatment and privacy notices you signed (1 item); "
        "your name and date of birth, with your contact details removed (1 item). "
        "Why: the law requires us to keep medical records for 7 years after your last "
        "treatment; records we must keep refer to it.",
        "Kept as long as required: the log of who accessed your information (1 item). "
        "Why: the law requires us to keep a log of who accessed your information.",
    ]
    # No resource ids, no rule codes, no pointer to a report the requester cannot see.
    text = partial.requester_summary()
    for hidden in ("Consent/", "Procedure/", "Patient/", "medical-record", "see the report"):
        assert hidden not in text


def test_nothing_deleted_and_unknown_rules_still_read_plainly() -> None:
    kept = report(
        DeletionItem("Flag/f1", "kept", "no-rule"),
        DeletionItem("Basic/b1", "kept", "spa-own-rule", date(2030, 1, 1)),
    )
    lines = split(kept.requester_summary())
    assert lines[1] == "There was nothing we could delete now."
    assert lines[2] == (
        "Kept until 2030-01-01, then deleted: other information (1 item). "
        "Why: another of our retention rules."
    )
    assert lines[3].startswith("Kept as long as required: other information (1 item). Why: no")
    with pytest.raises(ValueError):
        DeletionReport("p1", AT, "request", True, ()).requester_summary()
