"""SMART scopes: parsing, what they allow (filters deny by default), and what a launch asks."""

import pytest

from smart_app.config import DEFAULT_SCOPES
from symfhir.smart.launch import launch_scope
from symfhir.smart.scopes import Scope, allows, allows_any, can_write, granted_scopes, with_fallback

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "context", "resource_type", "letters"),
    [
        ("patient/Observation.rs", "patient", "Observation", "rs"),
        ("user/Consent.cu", "user", "Consent", "cu"),
        ("system/AuditEvent.c", "system", "AuditEvent", "c"),
        ("patient/*.cruds", "patient", "*", "cruds"),
        ("patient/Patient.read", "patient", "Patient", "rs"),
        ("user/Media.write", "user", "Media", "cud"),
        ("patient/*.*", "patient", "*", "cruds"),
    ],
)
def test_parse(text, context, resource_type, letters):
    scope = Scope.parse(text)
    assert scope == Scope(context, resource_type, frozenset(letters))


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "launch/patient",
        "patient/Observation.",
        "patient/Observation.sr",  # v2 letters come in the spec's order
        "patient/Observation.rr",
        "patient/Observation.x",
        "practitioner/Observation.rs",
        "patient/observation.rs",
        "patient/Observation.rs?",
        "patient/Observation.rs?category",
        "patient/Observation.rs?category=",
        "patient/Observation.rs?=laboratory",
    ],
)
def test_unreadable_scopes_grant_nothing(text):
    assert Scope.parse(text) is None
    assert not allows([text], "Observation", "r")
    assert not allows([text], "Observation", "s", {"category": "laboratory"})


def test_filter_is_parsed_into_pairs():
    scope = Scope.parse("patient/Observation.rs?category=laboratory&status=final")
    assert scope is not None
    assert scope.filter == {("category", "laboratory"), ("status", "final")}


def test_unfiltered_scopes():
    assert allows(["patient/AuditEvent.c"], "AuditEvent", "c")
    assert allows(["patient/*.cruds"], "AuditEvent", "c")
    assert not allows(["patient/Patient.r"], "AuditEvent", "c")
    assert allows(["patient/*.write"], "Consent", "u")
    assert not allows(["patient/*.write"], "Consent", "r")
    assert allows(["user/Observation.rs"], "Observation", "s", {"code": "x"})


FILTERED = ["patient/Observation.rs?category=laboratory"]


def test_filtered_scope_allows_only_searches_carrying_its_filter():
    assert allows(FILTERED, "Observation", "s", {"category": "laboratory"})
    assert allows(FILTERED, "Observation", "s", {"category": ["laboratory"], "code": "x"})


@pytest.mark.parametrize(
    ("interaction", "query"),
    [
        ("s", None),  # a search without the filter would return every category
        ("s", {}),
        ("s", {"category": "vital-signs"}),
        ("s", {"category": "laboratory,vital-signs"}),  # OR: wider than the filter
        ("s", {"category:not": "laboratory"}),
        ("s", {"Category": "laboratory"}),
        ("r", None),  # a read by id cannot be known to stay inside the filter
        ("r", {"category": "laboratory"}),
        ("c", None),
        ("u", {"category": "laboratory"}),
    ],
)
def test_filtered_scope_denies_everything_else(interaction, query):
    assert not allows(FILTERED, "Observation", interaction, query)


def test_filtered_wildcard_scope_is_held_to_its_filter():
    scopes = ["patient/*.rs?category=laboratory"]
    assert not allows(scopes, "Condition", "s")
    assert allows(scopes, "Condition", "s", {"category": "laboratory"})


def test_a_filtered_scope_does_not_make_the_type_writable_or_listed():
    scopes = ["patient/Observation.crus?category=laboratory"]
    assert allows_any(scopes, "cu") == []
    assert not can_write(scopes)
    assert allows_any(["patient/Observation.crus", *scopes], "cu") == ["Observation"]


def test_system_scopes_do_not_count_for_a_launch_unless_asked():
    assert not allows(["system/AuditEvent.c"], "AuditEvent", "c")
    assert allows(["system/AuditEvent.c"], "AuditEvent", "c", contexts=("system",))


def test_unknown_interaction_is_a_programming_error():
    with pytest.raises(ValueError, match="interaction"):
        allows(["patient/*.cruds"], "Patient", "rs")


@pytest.mark.parametrize(
    ("scopes", "writable"),
    [
        (["patient/Observation.rs"], False),
        (["patient/Observation.cu"], True),
        (["patient/*.write"], True),
        (["patient/*.read"], False),
        (["openid", "launch"], False),
    ],
)
def test_can_write(scopes, writable):
    assert can_write(scopes) is writable


def test_granted_scopes():
    assert granted_scopes({"scope": "openid patient/*.rs"}) == ["openid", "patient/*.rs"]
    assert granted_scopes({}) == []
    assert granted_scopes({"scope": ["not", "a", "string"]}) == []


def test_the_default_scopes_ask_for_document_reference_only_to_file_statements():
    # A statement of disagreement (a correction denied) is a DocumentReference: create and
    # read it, never update or delete one.
    assert [s for s in DEFAULT_SCOPES.split() if "DocumentReference" in s] == [
        "patient/DocumentReference.crs"
    ]


def test_document_reference_is_asked_for_only_where_the_server_needs_the_fallback():
    def cannot_create_consent(resource_type: str) -> bool:
        return resource_type != "Consent"

    scope = with_fallback(DEFAULT_SCOPES, cannot_create_consent)
    assert scope.split()[: len(DEFAULT_SCOPES.split())] == DEFAULT_SCOPES.split()
    assert scope.split()[len(DEFAULT_SCOPES.split()) :] == ["patient/DocumentReference.crus"]
    assert with_fallback(DEFAULT_SCOPES, lambda _: True) == DEFAULT_SCOPES
    both = with_fallback("patient/Consent.crus patient/Media.crs", lambda _: False).split()
    assert both[2:] == ["patient/DocumentReference.crus", "patient/DocumentReference.crs"]


def test_launch_scope_without_a_capability_statement_adds_nothing():
    assert launch_scope(DEFAULT_SCOPES, None) == DEFAULT_SCOPES
    # Media's fallback needs nothing the statements' scope does not give; Consent's needs u.
    assert launch_scope(DEFAULT_SCOPES, lambda t: t != "Media") == DEFAULT_SCOPES
    assert launch_scope(DEFAULT_SCOPES, lambda t: t != "Consent").endswith(
        "patient/DocumentReference.crus"
    )
