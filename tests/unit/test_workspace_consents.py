"""symfhir.workspace.consents: form validation, signatures, the Consent built by the mapping,
status and history, and the withdrawal Bundle."""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import replace
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from PIL import Image, ImageDraw

from symfhir.consent_kinds import ConsentKinds
from symfhir.errors import PhotoError
from symfhir.mapping.context import MappingContext
from symfhir.validation import FastValidator
from symfhir.workspace import consents as ws

pytestmark = pytest.mark.unit

KIND = ws.KIND_SYSTEM


def png(size: tuple[int, int] = (300, 100), *, blank: bool = False, mode: str = "RGBA") -> bytes:
    image = Image.new(mode, size, 0 if mode == "RGBA" else 255)
    if not blank:
        ImageDraw.Draw(image).line([(10, 80), (150, 20), (290, 90)], fill=(0, 0, 0, 255), width=3)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=_text_chunk())
    return out.getvalue()


def _text_chunk():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "somebody")
    return info


def data_url(raw: bytes) -> str:
    return ws.DATA_URL_PREFIX + base64.b64encode(raw).decode()


def form(**fields: str) -> dict[str, str]:
    return {
        "kind": "research",
        "decision": "given",
        "signer": "client",
        "signer_name": "Ada Testperson",
        "typed_signature": "Ada Testperson",
        **fields,
    }


def test_a_valid_typed_capture(ctx: MappingContext):
    capture, errors = ws.parse_capture(form(), ctx.consent_kinds, ctx, 36)
    assert errors == {} and capture is not None
    assert capture.typed and capture.policy_version == ctx.spa.privacy_policy_version
    assert capture.form.content_type == "image/png"
    assert Image.open(io.BytesIO(capture.form.data)).format == "PNG"


def test_typed_signature_renders_a_png():
    raw = ws.render_typed_signature("Ada Testperson")
    image = Image.open(io.BytesIO(raw))
    assert image.format == "PNG" and image.width > 100 and image.height > 30
    assert image.convert("L").getextrema() == (0, 255)  # black ink on white
    assert ws.render_typed_signature("Ada Testperson") == raw  # the same name, the same form


def test_drawn_signature_is_cleaned_of_metadata():
    signed, typed, problem = ws.signature_form(data_url(png()), "ignored when drawn")
    assert problem == "" and not typed and signed is not None
    assert b"somebody" not in signed.data
    digest = hashlib.sha1(signed.data, usedforsecurity=False).digest()
    assert signed.sha1_b64 == base64.b64encode(digest).decode()
    assert signed.size == len(signed.data)


@pytest.mark.parametrize(
    ("drawn", "reason"),
    [
        ("data:image/gif;base64,R0lGODlhAQABAAAAACw=", "not a PNG"),
        ("data:image/png;base64,@@@@", "base64"),
        (data_url(b"\x89PNG\r\n\x1a\n" + b"0" * 40), "corrupt"),
        (data_url(b"GIF89a" + b"0" * 40), "GIF"),
        (data_url(png(blank=True)), "blank"),
        (data_url(png((2100, 50))), "2100x50"),
        (data_url(png((2000, 1001))), "pixels"),
        ("data:image/png;base64," + "A" * (700 * 1024), "512 KiB"),
    ],
)
def test_bad_drawn_signatures(drawn: str, reason: str):
    signed, _, problem = ws.signature_form(drawn, "")
    assert signed is None
    assert reason in problem


def test_oversized_png_bytes_are_refused():
    with pytest.raises(PhotoError, match="512 KiB"):
        ws.signature_png(b"\x89PNG\r\n\x1a\n" + bytes(600 * 1024))


def test_no_signature_at_all(ctx: MappingContext):
    capture, errors = ws.parse_capture(form(typed_signature=""), ctx.consent_kinds, ctx, 40)
    assert capture is None and "Sign on the pad" in errors["signature"]


@pytest.mark.parametrize(
    ("age", "fields", "field"),
    [
        (15, {}, "signer"),
        (15, {"signer": "guardian", "signer_name": ""}, "guardian"),
        (40, {"signer": "guardian", "signer_name": "Grace"}, "guardian"),
        (
            15,
            {"signer": "guardian", "guardian": "new", "guardian_relationship": "parent"},
            "guardian-name",
        ),
        (40, {"kind": "nope"}, "kind"),
        (40, {"decision": ""}, "decision"),
        (40, {"signer": "x"}, "signer"),
        (40, {"signer_name": "a\x00b"}, "signer-name"),
        (40, {"policy_version": "1 2"}, "policy-version"),
        (40, {"typed_signature": "x" * 101}, "signature"),
    ],
)
def test_capture_errors(ctx: MappingContext, age: int, fields: dict[str, str], field: str):
    capture, errors = ws.parse_capture(form(**fields), ctx.consent_kinds, ctx, age)
    assert capture is None and field in errors


def test_a_minor_signed_for_by_the_guardian(ctx: MappingContext):
    fields = form(
        signer="guardian",
        signer_name="",
        guardian="new",
        guardian_name="Grace Testperson",
        guardian_relationship="guardian",
    )
    capture, errors = ws.parse_capture(fields, ctx.consent_kinds, ctx, 15)
    assert errors == {} and capture is not None
    entries = ws.capture_entries(capture, "p1", "Practitioner/dr1", ctx.consent_kinds, ctx)
    (related, consent, _) = entries
    assert consent.resource["performer"] == [
        {
            "type": "RelatedPerson",
            "display": "Grace Testperson (parent or guardian)",
            "reference": related.full_url,
        }
    ]


@pytest.mark.parametrize(
    ("decision", "status", "provision"),
    [("given", "active", "permit"), ("declined", "rejected", "deny")],
)
def test_consent_built_by_the_mapping(ctx: MappingContext, decision, status, provision):
    capture, _ = ws.parse_capture(form(decision=decision), ctx.consent_kinds, ctx, 36)
    assert capture is not None
    consent, prov = ws.capture_entries(capture, "p1", "Practitioner/dr1", ctx.consent_kinds, ctx)
    resource = consent.resource
    assert resource["status"] == status and resource["provision"]["type"] == provision
    assert resource["patient"] == {"reference": "Patient/p1"}
    assert {"system": KIND, "code": "research", "display": "Research and case studies"} in [
        c for cat in resource["category"] for c in cat["coding"]
    ]
    assert resource["scope"]["coding"][0]["code"] == "research"  # the kind's template
    assert resource["policy"] == [
        {"uri": f"http://symfhir.org/fhir/policy/research-consent/{ctx.spa.privacy_policy_version}"}
    ]
    assert resource["dateTime"] == ctx.now.isoformat()
    assert resource["performer"] == [
        {"reference": "Patient/p1", "type": "Patient", "display": "Ada Testperson"}
    ]
    attachment = resource["sourceAttachment"]
    assert attachment["contentType"] == "image/png"
    assert base64.b64decode(attachment["data"]) == capture.form.data
    assert attachment["hash"] == capture.form.sha1_b64 and attachment["size"] == capture.form.size
    assert attachment["title"].startswith("Signed form: Research") and attachment["creation"]
    assert prov.resource["target"] == [{"reference": consent.full_url}]
    assert prov.resource["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    assert consent.if_none_exist.startswith("identifier=") and prov.if_none_exist
    validator = FastValidator()
    assert validator.validate(resource) == [] and validator.validate(prov.resource) == []
    bundle = ws.capture_bundle([consent, prov])
    assert [e["request"]["method"] for e in bundle["entry"]] == ["POST", "POST"]


def test_the_same_form_twice_has_the_same_identifier(ctx: MappingContext):
    kinds = ctx.consent_kinds
    first = ws.capture_entries(ws.parse_capture(form(), kinds, ctx, 36)[0], "p1", None, kinds, ctx)
    again = ws.capture_entries(ws.parse_capture(form(), kinds, ctx, 36)[0], "p1", None, kinds, ctx)
    declined = ws.parse_capture(form(decision="declined"), kinds, ctx, 36)[0]
    other = ws.capture_entries(declined, "p1", None, kinds, ctx)
    assert first[0].if_none_exist == again[0].if_none_exist != other[0].if_none_exist
    capture = ws.parse_capture(form(), kinds, ctx, 36)[0]
    after_withdrawal = ws.capture_entries(capture, "p1", None, kinds, ctx, basis="c1/2")
    assert after_withdrawal[0].if_none_exist != first[0].if_none_exist


def _consent(kind: str, status: str, when: str, cid: str, deny: bool = False, end: str = ""):
    period = {"start": when[:10], **({"end": end} if end else {})}
    return {
        "resourceType": "Consent",
        "id": cid,
        "meta": {"versionId": "2"},
        "status": status,
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "patient": {"reference": "Patient/p1"},
        "dateTime": when,
        "category": [{"coding": [{"system": KIND, "code": kind}]}],
        "policy": [{"uri": f"http://symfhir.org/fhir/policy/doc/{when[:4]}"}],
        "performer": [{"reference": "Patient/p1", "display": "Ada"}],
        "provision": {"type": "deny" if deny else "permit", "period": period},
    }


def test_overview_groups_by_kind_newest_first(ctx: MappingContext):
    consents = [
        _consent("marketing_sms", "active", "2025-01-01T10:00:00Z", "a"),
        _consent("marketing_sms", "inactive", "2026-01-01T10:00:00Z", "b", end="2026-02-01"),
        _consent("research", "rejected", "2026-03-01T10:00:00Z", "c", deny=True),
        _consent("treatment", "entered-in-error", "2026-03-01T10:00:00Z", "d"),
        {**_consent("treatment", "active", "2026-03-01T10:00:00Z", "e"), "category": []},
    ]
    overview = {s.key: s for s in ws.consent_overview(consents, ctx.consent_kinds)}
    assert list(overview) == list(ctx.consent_kinds.kinds)
    sms = overview["marketing_sms"]
    assert [e.id for e in sms.history] == ["b", "a"]
    assert sms.status == "withdrawn" and sms.current.withdrawn_on == "2026-02-01"
    assert sms.current.policy_version == "2026" and sms.current.signer == "client"
    assert overview["research"].status == "declined" and not overview["research"].withdrawable
    assert overview["treatment"].status == "never asked"


def test_patient_age(ctx: MappingContext):
    assert ws.patient_age({"birthDate": "2010-11-26"}, date(2026, 11, 25)) == 15
    assert ws.patient_age({"birthDate": "2008-11-25"}, date(2026, 11, 25)) == 18
    assert ws.patient_age({"birthDate": "1990"}, date(2026, 11, 25)) == 35  # surely adult
    assert ws.patient_age({"birthDate": "2008"}, date(2026, 11, 25)) is None  # 17 or 18
    assert ws.patient_age(None, date(2026, 11, 25)) is None
    assert ws.is_minor(17) and not ws.is_minor(18) and not ws.is_minor(None)


def test_withdrawal_bundle(ctx: MappingContext):
    consent = _consent("marketing_sms", "active", "2026-01-01T10:00:00Z", "s1")
    overview = ws.consent_overview([consent], ctx.consent_kinds)
    current, problem = ws.find_withdrawable(overview, "marketing_sms")
    assert problem == "" and current is not None and current.version == "2"
    bundle = ws.withdrawal_bundle(consent, current.version, "p1", "Practitioner/dr1", ctx)
    put, prov = bundle["entry"]
    assert bundle["type"] == "transaction"
    assert put["request"] == {"method": "PUT", "url": "Consent/s1", "ifMatch": 'W/"2"'}
    resource = put["resource"]
    assert resource["status"] == "inactive" and "meta" not in resource
    assert resource["provision"]["period"] == {"start": "2026-01-01", "end": "2026-11-25"}
    assert resource["provision"]["type"] == "permit"  # what was given, now ended
    assert consent["status"] == "active"  # the input is not changed
    assert prov["request"]["method"] == "POST" and prov["request"]["ifNoneExist"]
    assert prov["resource"]["target"] == [
        {"reference": "Consent/s1"},
        {"reference": "Patient/p1"},
    ]
    assert prov["resource"]["activity"]["coding"][0]["code"] == "UPDATE"


@pytest.mark.parametrize("kind", ["research", "marketing_sms", "nope"])
def test_withdrawing_what_is_not_given(ctx: MappingContext, kind: str):
    consents = [
        _consent("marketing_sms", "inactive", "2026-01-01T10:00:00Z", "b", end="2026-02-01")
    ]
    overview = ws.consent_overview(consents, ctx.consent_kinds)
    current, problem = ws.find_withdrawable(overview, kind)
    assert current is None and problem


def test_an_evening_capture_shows_the_spa_local_day(ctx: MappingContext):
    from datetime import UTC, datetime

    # 19:30 in Chicago on Nov 25 is 01:30 UTC on Nov 26; the app's clock is UTC.
    evening = replace(ctx, now=datetime(2026, 11, 26, 1, 30, tzinfo=UTC))
    assert evening.today == date(2026, 11, 25)
    capture, errors = ws.parse_capture(form(), ctx.consent_kinds, evening, 36)
    assert errors == {}
    consent, _ = ws.capture_entries(capture, "p1", None, ctx.consent_kinds, evening)
    resource = {**consent.resource, "id": "cap", "meta": {"versionId": "1"}}
    assert resource["dateTime"].startswith("2026-11-26T01:30")
    (status,) = [s for s in ws.consent_overview([resource], ctx.consent_kinds) if s.history]
    assert status.current.date == "2026-11-25"


@pytest.mark.parametrize("imported_on", ["2026-11-26", "2026-11-26T00:00:00-06:00"])
def test_latest_consent_is_chosen_by_instant_not_text(ctx: MappingContext, imported_on: str):
    # Imported consents are local dates (start of the day in the spa's zone); a capture the
    # evening before, in UTC, reads later as text but is earlier.
    captured = _consent("research", "active", "2026-11-26T01:30:00+00:00", "cap")
    imported = _consent("research", "rejected", imported_on, "imp", deny=True)
    for order in ([captured, imported], [imported, captured]):
        (research,) = [s for s in ws.consent_overview(order, ctx.consent_kinds) if s.history]
        assert [e.id for e in research.history] == ["imp", "cap"]
        assert research.status == "declined"
        assert [e.date for e in research.history] == ["2026-11-26", "2026-11-25"]


def test_photo_uses_follow_the_latest_consent_by_instant():
    from symfhir.workspace.photos.consents import consent_states

    zone = ZoneInfo("America/Chicago")
    given = _consent("photos_clinical", "active", "2026-11-26T01:30:00+00:00", "cap")
    declined = _consent("photos_clinical", "rejected", "2026-11-26", "imp", deny=True)
    for order in ([given, declined], [declined, given]):
        assert consent_states(order, zone)["photos_clinical"].status == "declined"


def _kinds_with_versions(ctx: MappingContext, **spec: object) -> ConsentKinds:
    research = replace(ctx.consent_kinds.kinds["research"], **spec)
    kinds = {**ctx.consent_kinds.kinds, "research": research}
    return ConsentKinds(ctx.consent_kinds.policy_uri, kinds)


@pytest.mark.parametrize(
    ("spec", "posted", "accepted"),
    [
        ({}, "", "2026-01-01"),  # the spa's policy version by default
        ({}, "2026-01-01", "2026-01-01"),
        ({}, "1999-01-01", None),  # any other string is refused
        ({"version": "r3"}, "", "r3"),  # the kind's own version
        ({"version": "r3"}, "2026-01-01", None),  # ...replaces the spa's for that kind
        ({"version": "r3", "earlier_versions": ("r2",)}, "r2", "r2"),
        ({"version": "r3", "earlier_versions": ("r2",)}, "r1", None),
    ],
)
def test_capture_accepts_only_the_versions_the_kind_knows(
    ctx: MappingContext, spec: dict, posted: str, accepted: str | None
):
    kinds = _kinds_with_versions(ctx, **spec)
    capture, errors = ws.parse_capture(form(policy_version=posted), kinds, ctx, 36)
    if accepted is None:
        assert capture is None
        assert f"no policy version {posted}" in errors["policy-version"]
    else:
        assert errors == {} and capture.policy_version == accepted
        (consent, _) = ws.capture_entries(capture, "p1", None, kinds, ctx)
        assert consent.resource["policy"][0]["uri"].endswith(f"/research-consent/{accepted}")


def test_consent_kinds_data_reads_versions_and_refuses_the_guardian_switch():
    from symfhir.consent_kinds import parse_consent_kinds
    from symfhir.errors import ConfigError

    base = {"scope": {"system": "s", "code": "c"}, "provision": {}}
    kinds = parse_consent_kinds(
        {
            "policy_uri": "u/{document}/{version}",
            "kinds": {"k": {**base, "version": "v2", "earlier_versions": ["v1"]}},
        }
    )
    assert kinds.kinds["k"].known_versions("spa") == ("v2", "v1")
    with pytest.raises(ConfigError, match="required_for_minor_guardian"):
        parse_consent_kinds(
            {"policy_uri": "u", "kinds": {"k": {**base, "required_for_minor_guardian": False}}}
        )


@pytest.mark.parametrize(
    ("general", "expected"),
    [
        (
            [{"reference": "Practitioner/d1", "display": "Dr. A"}],
            {"reference": "Practitioner/d1", "display": "Dr. A"},
        ),
        (
            [{"display": "Dr. A"}, {"reference": "http://ehr.example/fhir/Practitioner/d2"}],
            {"reference": "Practitioner/d2"},
        ),
        ([{"reference": "Organization/o1"}, {"reference": "PractitionerRole/r1"}], None),
        ([{"reference": "Practitioner/../Patient/p2"}], None),
        (None, None),
    ],
)
def test_physician_on_file(general, expected):
    patient = {"resourceType": "Patient", "id": "p1"}
    if general is not None:
        patient["generalPractitioner"] = general
    assert ws.physician_on_file(patient) == expected


def test_physician_sharing_capture_names_the_practitioner(ctx: MappingContext):
    capture, errors = ws.parse_capture(
        form(kind="physician_sharing"), ctx.consent_kinds, ctx, 36, physician_on_file=True
    )
    assert errors == {}
    doctor = {"reference": "Practitioner/d1", "display": "Dr. A"}
    consent, _ = ws.capture_entries(capture, "p1", None, ctx.consent_kinds, ctx, physician=doctor)
    (actor,) = consent.resource["provision"]["actor"]
    assert actor["reference"] == doctor
    research, _ = ws.parse_capture(form(), ctx.consent_kinds, ctx, 36)
    other, _ = ws.capture_entries(research, "p1", None, ctx.consent_kinds, ctx, physician=doctor)
    assert "Practitioner/d1" not in str(other.resource)  # only the physician-sharing kind
