"""The deletion report (symfhir/privacy/deletion_report.py): status, summary and JSON."""

from __future__ import annotations

import json
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
