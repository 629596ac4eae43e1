"""Statements of disagreement shown with the records they dispute: which records a statement
names (symfhir.workspace.disputes) and the summary's "disputed by the client" marker."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from symfhir.consent_kinds import load_consent_kinds
from symfhir.workspace.disputes import DISAGREEMENT_CODE, DOCUMENT_SYSTEM, disputed_references
from symfhir.workspace.summary import build_summary
from tests.app.resources import sample_resources

pytestmark = pytest.mark.unit


def statement(pid: str, *related: str, status: str = "current") -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "id": f"s-{len(related)}",
        "status": status,
        "type": {"coding": [{"system": DOCUMENT_SYSTEM, "code": DISAGREEMENT_CODE}]},
        "subject": {"reference": f"Patient/{pid}"},
        "context": {"related": [{"reference": r} for r in related]},
    }


def test_a_statement_disputes_the_records_it_names_not_the_task() -> None:
    found = disputed_references(
        [
            statement("p1", "AllergyIntolerance/a1/_history/2", "Task/t1"),
            statement("p1", "Condition/c1", status="entered-in-error"),
            {**statement("p1", "Procedure/x"), "type": {"text": "other document"}},
        ]
    )
    assert found == frozenset({"AllergyIntolerance/a1"})


def test_the_summary_marks_the_disputed_record_and_the_clients_details() -> None:
    record = sample_resources("p1")
    for i, resource in enumerate(record):
        resource.setdefault("id", f"r{i}")
    allergy = next(r for r in record if r["resourceType"] == "AllergyIntolerance")
    other = statement("p2", "Patient/p1")  # another client's statement names nothing here
    summary = build_summary(
        [*record, statement("p1", f"AllergyIntolerance/{allergy['id']}", "Patient/p1"), other],
        "p1",
        load_consent_kinds(),
        today=date(2026, 11, 25),
    )
    assert summary.disputed == {f"AllergyIntolerance/{allergy['id']}", "Patient/p1"}
    assert [a.ref for a in summary.allergies] == [f"AllergyIntolerance/{allergy['id']}"]


def test_an_allergy_marked_entered_in_error_is_not_shown() -> None:
    record = sample_resources("p1")
    allergy = next(r for r in record if r["resourceType"] == "AllergyIntolerance")
    allergy["verificationStatus"] = {"coding": [{"code": "entered-in-error"}]}
    summary = build_summary(record, "p1", load_consent_kinds(), today=date(2026, 11, 25))
    assert summary.allergies == []
