"""The pure scope logic: parsing, registration checks and the proxy's decisions."""

from __future__ import annotations

import pytest

from smart_app.sandbox.decisions import FhirRequest, decide
from smart_app.sandbox.scopes import disallowed_scopes, narrow_scopes, parse_resource_scope
from symfhir.fhir.compartment import in_compartment

pytestmark = pytest.mark.unit

P = "pat-1"
OTHER = "pat-2"


@pytest.mark.parametrize(
    ("text", "context", "rtype", "perms"),
    [
        ("patient/Observation.rs", "patient", "Observation", "rs"),
        ("patient/*.read", "patient", "*", "rs"),
        ("patient/*.write", "patient", "*", "cud"),
        ("user/Consent.cu", "user", "Consent", "cu"),
        ("user/*.*", "user", "*", "cruds"),
        ("system/Patient.cruds", "system", "Patient", "cruds"),
        ("patient/Media.s", "patient", "Media", "s"),
    ],
)
def test_parse(text, context, rtype, perms):
    scope = parse_resource_scope(text)
    assert scope is not None
    assert (scope.context, scope.resource_type, scope.permissions) == (
        context,
        rtype,
        frozenset(perms),
    )


@pytest.mark.parametrize(
    "text",
    [
        "patient/Observation.sr",
        "patient/Observation.rr",
        "patient/Observation.x",
        "openid",
        "launch/patient",
        "patient/observation.rs",
        "practitioner/*.rs",
        "patient/Observation.",
    ],
)
def test_not_resource_scopes(text):
    assert parse_resource_scope(text) is None


@pytest.mark.parametrize(
    ("requested", "allowed", "refused"),
    [
        (["patient/*.read"], ["patient/*.cruds"], []),
        (["patient/Observation.rs"], ["patient/*.read"], []),
        (["patient/Observation.c"], ["patient/*.read"], ["patient/Observation.c"]),
        (["user/*.rs"], ["patient/*.cruds"], ["user/*.rs"]),
        (["patient/*.rs"], ["patient/Observation.rs"], ["patient/*.rs"]),
        (["openid", "launch"], ["openid"], ["launch"]),
        (["patient/*.write"], ["patient/*.cud"], []),
    ],
)
def test_disallowed(requested, allowed, refused):
    assert disallowed_scopes(requested, allowed) == refused


def req(method, path, query=None, body=None, headers=None):
    return FhirRequest(
        method, path, {k: [v] for k, v in (query or {}).items()}, body, headers or {}
    )


def obs(patient=P, ref=None):
    return {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": ref or f"Patient/{patient}"},
    }


ALLOW = [
    # patient v2 scopes
    (req("GET", f"Patient/{P}"), ["patient/Patient.r"]),
    (req("GET", f"Patient/{P}/_history/1"), ["patient/Patient.r"]),
    (req("GET", "Patient", {"_id": P}), ["patient/Patient.s"]),
    (req("GET", "Observation", {"patient": P}), ["patient/Observation.rs"]),
    (req("GET", "Observation", {"subject": f"Patient/{P}"}), ["patient/Observation.s"]),
    (req("GET", "Observation", {"subject": f"Patient/{P}", "code": "x"}), ["patient/*.rs"]),
    (req("GET", "Observation", {"patient": P, "_format": "json"}), ["patient/*.rs"]),
    (
        req("GET", "Observation", {"patient": P, "_format": "application/fhir json"}),
        ["patient/*.s"],
    ),
    (req("GET", "Observation", {"code": "x", "_format": "xml"}), ["user/*.rs"]),
    (req("DELETE", "Observation/o1", {"_cascade": "delete"}), ["user/*.cruds"]),
    (req("POST", "Observation/_search", {"patient": P}), ["patient/Observation.s"]),
    (req("GET", f"Patient/{P}/$everything"), ["patient/*.rs"]),
    (req("GET", f"Patient/{P}/Observation"), ["patient/Observation.s"]),
    (req("POST", "Observation", body=obs()), ["patient/Observation.c"]),
    (req("PUT", f"Patient/{P}", body={"resourceType": "Patient", "id": P}), ["patient/*.u"]),
    (req("DELETE", f"Patient/{P}"), ["patient/Patient.d"]),
    # v1
    (req("GET", f"Patient/{P}"), ["patient/*.read"]),
    (
        req(
            "POST",
            "Consent",
            body={"resourceType": "Consent", "patient": {"reference": f"Patient/{P}"}},
        ),
        ["patient/*.write"],
    ),
    # user scopes: no compartment
    (req("GET", f"Patient/{OTHER}"), ["user/Patient.r"]),
    (req("GET", "Observation"), ["user/*.rs"]),
    (req("POST", "Observation", body=obs(OTHER)), ["user/*.write"]),
    (req("GET", "Practitioner/x"), ["user/Practitioner.rs", "patient/*.rs"]),
    (req("DELETE", "Observation/o1"), ["user/Observation.d"]),
]


@pytest.mark.parametrize(("request_", "scopes"), ALLOW)
def test_allowed(request_, scopes):
    decision = decide(request_, scopes, P)
    assert decision.allowed, decision.reason


DENY = [
    (req("GET", f"Patient/{OTHER}"), ["patient/Patient.rs"], "outside"),
    (req("GET", f"Patient/{P}"), ["patient/Patient.s"], "no granted scope"),
    (req("GET", f"Patient/{P}"), ["patient/Observation.rs"], "no granted scope"),
    (req("GET", "Patient"), ["patient/Patient.rs"], "outside"),
    (req("GET", "Patient", {"_id": OTHER}), ["patient/Patient.rs"], "outside"),
    (req("GET", "Patient", {"_id": f"{P},{OTHER}"}), ["patient/Patient.rs"], "outside"),
    (req("GET", "Observation"), ["patient/Observation.rs"], "outside"),
    (req("GET", "Observation", {"patient": OTHER}), ["patient/*.rs"], "outside"),
    (req("GET", "Observation", {"patient": P}), ["patient/Observation.r"], "no granted scope"),
    (req("GET", "Observation", {"code": "x"}), ["patient/*.read"], "outside"),
    (req("GET", f"Patient/{OTHER}/$everything"), ["patient/*.rs"], "outside"),
    (req("GET", f"Patient/{OTHER}/Observation"), ["patient/*.rs"], "outside"),
    (req("POST", "Observation", body=obs(OTHER)), ["patient/Observation.c"], "outside"),
    (req("POST", "Observation", body=obs()), ["patient/Observation.rs"], "no granted scope"),
    (req("POST", "Observation", body=obs()), ["patient/*.read"], "no granted scope"),
    (req("POST", "Patient", body={"resourceType": "Patient"}), ["patient/*.cruds"], "outside"),
    (req("PUT", f"Patient/{OTHER}", body={"resourceType": "Patient"}), ["patient/*.u"], "outside"),
    (req("PUT", "Observation/o1", body=obs(OTHER)), ["patient/*.cud"], "outside"),
    (req("DELETE", f"Patient/{OTHER}"), ["patient/*.d"], "outside"),
    (req("DELETE", "Observation/o1"), ["patient/Observation.rs"], "no granted scope"),
    (req("GET", "Observation/o1"), ["system/Patient.rs"], "no granted scope"),
    (req("GET", ""), ["user/*.cruds"], "not allowed"),
    (req("GET", "$export"), ["user/*.cruds"], "not allowed"),
    (req("GET", "Observation/$lastn", {"patient": P}), ["patient/*.rs"], "not allowed"),
    (req("POST", "", body={"resourceType": "Patient"}), ["user/*.cruds"], "Bundle"),
    (req("GET", f"Patient/{P}"), [], "no granted scope"),
    (req("GET", f"Patient/{P}"), ["openid", "launch"], "no granted scope"),
    # only plain, exact parameters bind a search to the patient
    (req("GET", "Observation", {"subject:Patient": P}), ["patient/*.rs"], "outside"),
    (req("GET", "Observation", {"subject.link": f"Patient/{P}"}), ["patient/*.rs"], "outside"),
    (req("GET", "Observation", {"patient:not": P}), ["patient/*.rs"], "outside"),
    (req("GET", "Observation", {"subject": P}), ["patient/*.rs"], "outside"),
    (req("GET", "Patient", {"_id:not": P}), ["patient/*.rs"], "outside"),
    (
        req("GET", "Observation", {"patient": f"http://h/fhir/Patient/{P}"}),
        ["patient/*.s"],
        "outside",
    ),
    # conditional update and delete: bound by the match URL, not by the body alone
    (req("PUT", "Observation", {"_id": "o9"}, obs()), ["patient/*.cruds"], "outside"),
    (req("DELETE", "Observation", {"_id": "o9"}), ["patient/*.cruds"], "outside"),
    (req("PATCH", "Observation", {"patient": P}, []), ["patient/*.cruds"], "outside"),
    # the owner element of the type, not any patient-like field
    (
        req("POST", "Observation", body={**obs(OTHER), "patient": {"reference": f"Patient/{P}"}}),
        ["patient/*.c"],
        "outside",
    ),
    (
        req(
            "POST",
            "Coverage",
            body={"resourceType": "Coverage", "beneficiary": {"reference": f"Patient/{P}"}},
        ),
        ["patient/*.c"],
        "outside",
    ),
    (req("PUT", "Observation/o1", body={**obs(), "id": "o2"}), ["patient/*.u"], "outside"),
    # cascades and formats the proxy cannot filter
    (req("DELETE", f"Patient/{P}", {"_cascade": "delete"}), ["patient/*.d"], "cascad"),
    (req("GET", "Observation", {"patient": P, "_format": "xml"}), ["patient/*.rs"], "JSON"),
]

HEADER_DENY = [
    (req("DELETE", f"Patient/{P}", headers={"x-cascade": "delete"}), "cascad"),
    (req("GET", f"Patient/{P}", headers={"accept": "application/fhir+xml"}), "JSON"),
    (req("GET", f"Patient/{P}", headers={"accept": "text/html,*/*;q=0.8"}), "JSON"),
]


@pytest.mark.parametrize(("request_", "reason"), HEADER_DENY)
def test_denied_by_headers_for_a_patient_token(request_, reason):
    decision = decide(request_, ["patient/*.cruds"], P)
    assert not decision.allowed
    assert reason in decision.reason
    assert decide(request_, ["user/*.cruds"], P).allowed


@pytest.mark.parametrize(("request_", "scopes", "reason"), DENY)
def test_denied(request_, scopes, reason):
    decision = decide(request_, scopes, P)
    assert not decision.allowed
    assert reason in decision.reason


def test_read_by_id_needs_owner_check_under_patient_scope():
    decision = decide(req("GET", "Observation/o1"), ["patient/Observation.rs"], P)
    assert decision.allowed and decision.owner_checks == ("Observation/o1",)
    decision = decide(req("GET", "Observation/o1"), ["user/Observation.rs"], P)
    assert decision.allowed and decision.owner_checks == ()


def test_patient_scope_without_launched_patient():
    assert not decide(req("GET", "Patient/x"), ["patient/*.rs"], None).allowed
    assert not decide(req("GET", "Observation", {"patient": "x"}), ["patient/*.rs"], None).allowed


def bundle(*entries, kind="transaction"):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(method, url, resource=None, full_url=None):
    item = {"request": {"method": method, "url": url}}
    if resource is not None:
        item["resource"] = resource
    if full_url:
        item["fullUrl"] = full_url
    return item


BUNDLE_CASES = [
    (bundle(entry("POST", "Observation", obs())), ["patient/Observation.c"], True),
    (bundle(entry("POST", "Observation", obs()), kind="batch"), ["patient/*.write"], True),
    (bundle(entry("POST", "Observation", obs(OTHER))), ["patient/Observation.c"], False),
    (bundle(entry("POST", "Observation", obs())), ["patient/Observation.rs"], False),
    (
        bundle(
            entry("POST", "Observation", obs()),
            entry(
                "POST",
                "Consent",
                {"resourceType": "Consent", "patient": {"reference": f"Patient/{P}"}},
            ),
        ),
        ["patient/Observation.c"],
        False,
    ),
    (
        bundle(
            entry(
                "POST",
                "Media",
                {"resourceType": "Media", "subject": {"reference": f"Patient/{P}"}},
                "urn:uuid:1",
            ),
            entry("POST", "Observation", obs(ref="urn:uuid:1"), "urn:uuid:2"),
        ),
        ["patient/Media.c", "patient/Observation.c"],
        True,
    ),
    (bundle(entry("POST", "Observation", obs(ref="urn:uuid:9"))), ["patient/*.c"], False),
    (
        bundle(entry("GET", f"Patient/{P}"), entry("GET", "Observation?patient=" + P)),
        ["patient/*.rs"],
        True,
    ),
    (bundle(entry("GET", "Observation?patient=" + OTHER)), ["patient/*.rs"], False),
    # Entry URLs are decoded as the server decodes them.
    (
        bundle(entry("GET", f"AllergyIntolerance?patient=Patient%2F{P}&identifier=s%7C")),
        ["patient/*.rs"],
        True,
    ),
    (bundle(entry("GET", f"Observation?patient=Patient%2F{OTHER}")), ["patient/*.rs"], False),
    (bundle(entry("GET", f"Observation?patient={P}%2C{OTHER}")), ["patient/*.rs"], False),
    (bundle(entry("POST", "Patient", {"resourceType": "Patient"})), ["patient/*.c"], False),
    (bundle(entry("POST", "Patient", {"resourceType": "Patient"})), ["user/*.c"], True),
    (bundle(entry("DELETE", f"Patient/{OTHER}")), ["patient/*.d"], False),
    (bundle({"resource": obs()}), ["patient/*.c"], False),  # no request
    (bundle(), ["patient/*.c"], True),
]


@pytest.mark.parametrize(("body", "scopes", "allowed"), BUNDLE_CASES)
def test_transaction_bundles(body, scopes, allowed):
    decision = decide(req("POST", "", body=body), scopes, P)
    assert decision.allowed is allowed, decision.reason


def test_bundle_denial_names_the_entry():
    body = bundle(entry("POST", "Observation", obs()), entry("POST", "Observation", obs(OTHER)))
    decision = decide(req("POST", "", body=body), ["patient/*.c"], P)
    assert "Bundle entry 1" in decision.reason


def test_bundle_collects_owner_checks():
    body = bundle(entry("GET", "Observation/o1"), entry("DELETE", "Observation/o2"))
    decision = decide(req("POST", "", body=body), ["patient/*.cruds"], P)
    assert decision.owner_checks == ("Observation/o1", "Observation/o2")


@pytest.mark.parametrize(
    ("resource", "inside"),
    [
        ({"resourceType": "Patient", "id": P}, True),
        ({"resourceType": "Patient", "id": OTHER}, False),
        (obs(), True),
        (obs(OTHER), False),
        ({"resourceType": "Consent", "patient": {"reference": f"Patient/{P}"}}, True),
        ({"resourceType": "Task", "for": {"reference": f"Patient/{P}"}}, True),
        ({"resourceType": "Practitioner", "id": "x"}, False),
        ({"resourceType": "Observation", "subject": {"reference": f"Group/{P}"}}, False),
        ({"resourceType": "Binary", "securityContext": {"reference": f"Patient/{P}"}}, True),
        ({"resourceType": "Binary", "securityContext": {"reference": f"Patient/{OTHER}"}}, False),
        ({"resourceType": "Binary", "contentType": "image/png"}, False),
        ({"resourceType": "Provenance", "target": [{"reference": f"Patient/{P}"}]}, True),
        ({"resourceType": "Provenance", "target": [{"reference": "Observation/1"}]}, False),
        (
            {
                "resourceType": "AuditEvent",
                "entity": [{"description": "x"}, {"what": {"reference": f"Patient/{P}"}}],
            },
            True,
        ),
        ({"resourceType": "AuditEvent", "entity": [{"what": {"reference": "Patient/z"}}]}, False),
        ({"resourceType": "AuditEvent", "subject": {"reference": f"Patient/{P}"}}, False),
    ],
)
def test_compartment(resource, inside):
    assert in_compartment(resource, P) is inside


def test_photo_transaction_like_the_app_writes():
    body = bundle(
        entry(
            "POST",
            "Binary",
            {"resourceType": "Binary", "securityContext": {"reference": f"Patient/{P}"}},
            "urn:uuid:b",
        ),
        entry(
            "POST",
            "Media",
            {
                "resourceType": "Media",
                "subject": {"reference": f"Patient/{P}"},
                "content": {"url": "urn:uuid:b"},
            },
            "urn:uuid:m",
        ),
        entry(
            "POST",
            "Provenance",
            {"resourceType": "Provenance", "target": [{"reference": "urn:uuid:m"}]},
            "urn:uuid:p",
        ),
    )
    scopes = ["patient/Binary.cr", "patient/Media.crs", "patient/Provenance.cr"]
    assert decide(req("POST", "", body=body), scopes, P).allowed
    assert not decide(req("POST", "", body=body), scopes[:2], P).allowed


@pytest.mark.parametrize(
    ("requested", "allowed", "granted"),
    [
        (["patient/Consent.crus"], ["patient/*.rs"], ["patient/Consent.rs"]),
        (["patient/Consent.crus"], ["patient/*.read"], ["patient/Consent.rs"]),
        (["patient/Observation.rs"], ["patient/Observation.cruds"], ["patient/Observation.rs"]),
        (["patient/AuditEvent.c"], ["patient/*.rs"], []),
        (["user/Patient.r"], ["patient/*.rs"], []),
        (["openid", "fhirUser", "launch"], ["openid", "launch"], ["openid", "launch"]),
        (["patient/Media.crs"], ["patient/Media.c", "patient/*.s"], ["patient/Media.cs"]),
    ],
)
def test_narrow_scopes_grants_the_overlap(requested, allowed, granted):
    assert narrow_scopes(requested, allowed) == granted
