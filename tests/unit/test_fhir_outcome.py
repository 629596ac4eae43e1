import pytest

from symfhir.fhir.outcome import log_text, parse_outcome, reason_text, redact

pytestmark = pytest.mark.unit


def test_parses_issues_with_expression_location_and_details_fallbacks():
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "value",
                "diagnostics": "Invalid date",
                "expression": ["Patient.birthDate", "Patient.deceasedDateTime"],
            },
            {
                "severity": "warning",
                "code": "invalid",
                "details": {"text": "Unknown code"},
                "location": ["/f:Patient/f:gender"],
            },
            {"severity": "information"},
            "junk",
        ],
    }
    assert parse_outcome(outcome) == [
        ("error", "value", "Invalid date", "Patient.birthDate, Patient.deceasedDateTime"),
        ("warning", "invalid", "Unknown code", "/f:Patient/f:gender"),
        ("information", "", "", ""),
    ]


@pytest.mark.parametrize(
    "resource", [None, "text", [], {"resourceType": "Bundle"}, {"resourceType": "OperationOutcome"}]
)
def test_anything_else_has_no_issues(resource):
    assert parse_outcome(resource) == []


def test_reason_is_the_first_error_issue_with_its_expression():
    issues = [
        ("warning", "informational", "just a note", ""),
        ("error", "required", "Missing status", "Consent.status"),
        ("error", "value", "second problem", ""),
    ]
    assert reason_text(issues) == "Missing status (at Consent.status)"


def test_reason_without_error_issue_takes_the_first_and_without_issues_is_empty():
    assert reason_text([("warning", "processing", "", "")]) == "warning (processing)"
    assert reason_text([]) == ""


def test_reason_is_one_short_line():
    reason = reason_text([("error", "processing", "word\n  " * 200, "")])
    assert "\n" not in reason
    assert len(reason) <= 200
    assert reason.endswith("…")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Invalid date "1990-13-45"', 'Invalid date "***"'),
        ("Unknown code 'botox-xl' in system", "Unknown code '***' in system"),
        ("value “Avery” rejected", "value “***” rejected"),
        ("doesn't match 'x'", "doesn't match '***'"),
        ("born 1985-04-12 at 09:30, 3 sites", "born ### at ###, 3 sites"),
        ("call (337) 555-0101 now", "call (### now"),
        ("card 4111111111111111", "card ###"),
        ("mail avery.q@example.com please", "mail ***@*** please"),
        ("HAPI-0929: Failed to process", "HAPI-0929: Failed to process"),
        ("element [0] and 123 are fine", "element [0] and 123 are fine"),
        ("FHIR 4.0.1", "FHIR 4.0.1"),
    ],
)
def test_redaction(text, expected):
    assert redact(text) == expected


def test_log_text_keeps_structure_and_drops_values():
    issues = [
        (
            "error",
            "value",
            'HAPI-1821: [element="birthDate"] Invalid attribute value "1990-13-45"',
            "Patient.birthDate",
        ),
        ("warning", "code-invalid", "Code 'Quillfeather' for MRN 00012345", "Patient.name[0]"),
    ]
    line = log_text("create Patient", 400, issues)
    assert line == (
        "create Patient: HTTP 400; "
        "error/value at Patient.birthDate: "
        'HAPI-1821: [element="***"] Invalid attribute value "***"; '
        "warning/code-invalid at Patient.name[0]: Code '***' for MRN ###"
    )


def test_log_text_is_one_bounded_line():
    issues = [("error", "processing", "x\ny " * 500, "")] * 5
    line = log_text("transaction (5 entries)", 422, issues)
    assert "\n" not in line
    assert line.endswith("+2 more issues")
    assert len(line) < 700


def test_log_text_without_answer():
    assert log_text("read Patient/1", None, []) == "read Patient/1: no answer"
