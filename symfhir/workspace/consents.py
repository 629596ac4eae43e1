"""Consents of the practitioner's workspace: status and history, capture, withdrawal (pure).

Form fields in, FHIR R4 resources out (hl7.org/fhir/R4/consent.html), no I/O and no clock
reads: ``now`` comes in through the MappingContext. The Consent itself is built by
``symfhir.mapping.consent`` from a ``ConsentRecord`` (the templates of
``mappings/consent-kinds.yaml``); this module adds what a capture at the desk has and an
import has not: the exact capture instant, who signed, and the signed form (a PNG of the
drawn or typed signature). A withdrawal updates the active Consent to ``inactive`` with
``provision.period.end``: it is a new status, never a delete.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageFont

from symfhir.consent_kinds import ConsentKind, ConsentKinds
from symfhir.errors import FhirValidationError, PhotoError
from symfhir.mapping import consent as consent_mapping
from symfhir.mapping.bundle import transaction
from symfhir.mapping.context import SYMFHIR_VERSION, MappingContext
from symfhir.mapping.refs import Entry, digest, entry, organization_ref, tagged_entry
from symfhir.model import ConsentRecord, SpaRecord
from symfhir.model.client import Client
from symfhir.model.consent import SignedForm
from symfhir.model.record import ADULT_AGE, age_on
from symfhir.photos.clean import PNG, ImageLimits, clean_image
from symfhir.validation import FastValidator

KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/consent-kind"
AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
DATA_URL_PREFIX = "data:image/png;base64,"
SIGNATURE_MAX_BYTES = 512 * 1024
SIGNATURE_MAX_WIDTH = 2000
SIGNATURE_MAX_HEIGHT = 1000
SIGNATURE_LIMITS = ImageLimits(
    max_bytes=SIGNATURE_MAX_BYTES,
    max_pixels=SIGNATURE_MAX_WIDTH * SIGNATURE_MAX_HEIGHT,
    allowed_types=frozenset({PNG}),
)
NAME_MAX = 100
TYPED_FONT_SIZE = 40
TYPED_PADDING = 24
# A policy version ends up in Consent.policy.uri: keep it to URL-safe characters.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VALIDATOR = FastValidator()

Decision = Literal["given", "declined"]
Signer = Literal["client", "guardian"]
CHANGED_MEANWHILE = (
    "This consent was changed meanwhile (by someone else, or in another window). "
    "Reload the page to see its current status, then try again."
)
DECISIONS: tuple[str, ...] = ("given", "declined")
SIGNERS: tuple[str, ...] = ("client", "guardian")


# -- status and history --------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentEvent:
    """One Consent of a kind, as the history lists it."""

    id: str
    version: str
    status: str  # given | declined | withdrawn | <the FHIR status>
    date: str
    policy_version: str
    signer: str  # client | guardian | ""
    signer_name: str
    withdrawn_on: str
    has_form: bool
    form_data_url: str = ""


@dataclass(frozen=True)
class KindStatus:
    """A consent kind with its current status (from its latest Consent) and its history."""

    key: str
    label: str
    history: list[ConsentEvent] = field(default_factory=list)

    @property
    def current(self) -> ConsentEvent | None:
        return self.history[0] if self.history else None

    @property
    def status(self) -> str:
        return self.current.status if self.current else "never asked"

    @property
    def withdrawable(self) -> bool:
        return self.status == "given"


def patient_age(patient: Mapping[str, Any] | None, today: date) -> int | None:
    """The age in years on ``today`` from Patient.birthDate, or None when it is unknown
    (absent, or only a year or year-month)."""
    birth = (patient or {}).get("birthDate")
    if not isinstance(birth, str) or len(birth) != 10:
        return None
    try:
        return age_on(date.fromisoformat(birth), today)
    except ValueError:
        return None


def is_minor(age: int | None) -> bool:
    return age is not None and age < ADULT_AGE


def consent_kind_of(consent: Mapping[str, Any], kinds: ConsentKinds) -> str | None:
    """The consent kind a Consent's category names (system ``KIND_SYSTEM``), if known."""
    for category in consent.get("category") or []:
        for coding in (category or {}).get("coding") or []:
            if coding.get("system") == KIND_SYSTEM and coding.get("code") in kinds.kinds:
                return str(coding["code"])
    return None


def consent_overview(consents: list[dict[str, Any]], kinds: ConsentKinds) -> list[KindStatus]:
    """Every consent kind (in the order of the consent-kinds data) with its history, newest
    first (by dateTime, then lastUpdated); the current status is the newest one's.
    Entered-in-error, draft and proposed Consents are left out."""
    grouped: dict[str, list[dict[str, Any]]] = {key: [] for key in kinds.kinds}
    for consent in consents:
        if consent.get("resourceType") != "Consent":
            continue
        if consent.get("status") in ("entered-in-error", "draft", "proposed"):
            continue
        kind = consent_kind_of(consent, kinds)
        if kind is not None:
            grouped[kind].append(consent)
    out = []
    for key, kind_spec in kinds.kinds.items():
        ordered = sorted(
            grouped[key],
            key=lambda c: (
                str(c.get("dateTime", "")),
                str((c.get("meta") or {}).get("lastUpdated", "")),
            ),
            reverse=True,
        )
        history = [_event(c, with_form=index == 0) for index, c in enumerate(ordered)]
        out.append(KindStatus(key, kind_spec.label, history))
    return out


def _event(consent: Mapping[str, Any], *, with_form: bool) -> ConsentEvent:
    provision = consent.get("provision") or {}
    performer = (consent.get("performer") or [{}])[0] or {}
    reference = str(performer.get("reference", ""))
    if performer.get("type") == "RelatedPerson" or reference.startswith("RelatedPerson/"):
        signer = "guardian"
    elif reference.startswith("Patient/") or performer.get("type") == "Patient":
        signer = "client"
    else:
        signer = ""
    attachment = consent.get("sourceAttachment") or {}
    form_url = ""
    if with_form and attachment.get("contentType") == PNG and attachment.get("data"):
        form_url = DATA_URL_PREFIX + str(attachment["data"])
    return ConsentEvent(
        id=str(consent.get("id", "")),
        version=str((consent.get("meta") or {}).get("versionId", "")),
        status=consent_status(consent),
        date=str(consent.get("dateTime", ""))[:10],
        policy_version=policy_version(consent),
        signer=signer,
        signer_name=str(performer.get("display", "")),
        withdrawn_on=str((provision.get("period") or {}).get("end", ""))[:10],
        has_form=bool(attachment),
        form_data_url=form_url,
    )


def consent_status(consent: Mapping[str, Any]) -> str:
    """given (active permit), declined (rejected or deny), withdrawn (inactive)."""
    status = consent.get("status")
    if status == "inactive":
        return "withdrawn"
    if status == "rejected" or (consent.get("provision") or {}).get("type") == "deny":
        return "declined"
    if status == "active":
        return "given"
    return str(status or "unknown")


def policy_version(consent: Mapping[str, Any]) -> str:
    """The last path segment of policy[].uri (policy_uri is .../{document}/{version})."""
    for policy in consent.get("policy") or []:
        uri = policy.get("uri")
        if isinstance(uri, str) and "/" in uri:
            return uri.rstrip("/").rsplit("/", 1)[1]
    return ""


def current_policy_version(kind: ConsentKind, ctx: MappingContext) -> str:
    """The policy version a new consent of ``kind`` is given under: the kind's own
    ``version`` when the consent-kinds data has one, else the spa's privacy policy version."""
    return str(getattr(kind, "version", None) or ctx.spa.privacy_policy_version)


# -- capture ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """A validated capture form."""

    kind: str
    decision: Decision
    signer: Signer
    signer_name: str
    policy_version: str
    form: SignedForm
    typed: bool  # the signature was typed, not drawn


def parse_capture(
    form: Mapping[str, str],
    kinds: ConsentKinds,
    ctx: MappingContext,
    age: int | None,
) -> tuple[Capture | None, dict[str, str]]:
    """The capture form's fields, checked: (Capture, {}) or (None, {field: message}).

    Fields: kind, decision (given|declined), signer (client|guardian), signer_name,
    signature_data (a PNG data URL drawn on the pad) or typed_signature (a typed name,
    rendered to a PNG), policy_version (default: the kind's current version). A minor
    (``age`` < 18) must be signed for by the guardian, whose name is required. Error keys
    are the ids' suffixes of the page's error spans (``err-<key>``).
    """
    errors: dict[str, str] = {}
    kind = (form.get("kind") or "").strip()
    if kind not in kinds.kinds:
        errors["kind"] = "Choose a consent kind."
    decision = (form.get("decision") or "").strip()
    if decision not in DECISIONS:
        errors["decision"] = "Choose whether the consent is given or declined."
    signer = (form.get("signer") or "").strip()
    name = _text(form.get("signer_name"))
    if signer not in SIGNERS:
        errors["signer"] = "Choose who signs: the client or a parent or guardian."
    elif is_minor(age) and signer != "guardian":
        errors["signer"] = f"The client is under {ADULT_AGE}: a parent or guardian must sign."
    if name is None:
        errors["signer-name"] = "The name has control characters or is too long."
    elif not name and signer == "guardian":
        errors["signer-name"] = "Enter the parent's or guardian's full name."
    version = (form.get("policy_version") or "").strip()
    if not version and kind in kinds.kinds:
        version = current_policy_version(kinds.kinds[kind], ctx)
    if not _VERSION.fullmatch(version):
        errors["policy-version"] = (
            "Enter the policy version (letters, digits, dots, dashes; up to 40 characters)."
        )
    signed, typed, problem = signature_form(
        form.get("signature_data") or "", form.get("typed_signature") or ""
    )
    if problem:
        errors["signature"] = problem
    if errors or signed is None:
        return None, errors
    return (
        Capture(
            kind=kind,
            decision=decision,  # type: ignore[arg-type]  # checked against DECISIONS
            signer=signer,  # type: ignore[arg-type]  # checked against SIGNERS
            signer_name=name or "",
            policy_version=version,
            form=signed,
            typed=typed,
        ),
        {},
    )


def _text(value: str | None) -> str | None:
    """Stripped text, or None when it has control characters or is over NAME_MAX."""
    text = (value or "").strip()
    if _CONTROL.search(text) or len(text) > NAME_MAX:
        return None
    return text


def signature_form(drawn: str, typed: str) -> tuple[SignedForm | None, bool, str]:
    """The signed form as a clean PNG: (form, typed?, "") or (None, False, why not).

    A drawn signature (a ``data:image/png;base64,`` URL) wins over a typed one.
    """
    drawn = drawn.strip()
    if drawn:
        try:
            return signature_png(decode_data_url(drawn)), False, ""
        except PhotoError as err:
            return None, False, f"The drawn signature cannot be used: {err.reason}."
    name = _text(typed)
    if name is None:
        return None, False, "The typed signature has control characters or is too long."
    if not name:
        return None, False, "Sign on the pad, or type the signer's name as the signature."
    return signature_png(render_typed_signature(name)), True, ""


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 PNG data URL. Raises PhotoError (field "signature")."""
    if not url.startswith(DATA_URL_PREFIX):
        raise PhotoError("signature", "signature", "it is not a PNG image")
    payload = url[len(DATA_URL_PREFIX) :]
    # base64 grows by 4/3: refuse an oversized payload before decoding it.
    if len(payload) > (SIGNATURE_MAX_BYTES * 4) // 3 + 4:
        raise PhotoError("signature", "signature", "it is larger than 512 KiB")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise PhotoError("signature", "signature", "it is not valid base64 data") from None


def signature_png(raw: bytes) -> SignedForm:
    """A signature PNG decoded and re-encoded without metadata (``symfhir.photos.clean``).

    Raises PhotoError for anything but a PNG, over 512 KiB or 2000x1000 pixels, corrupt,
    or blank (no mark at all).
    """
    try:
        image = clean_image(raw, record="signature", limits=SIGNATURE_LIMITS)
    except PhotoError as err:
        raise PhotoError("signature", "signature", _short_reason(err.reason)) from None
    if image.width > SIGNATURE_MAX_WIDTH or image.height > SIGNATURE_MAX_HEIGHT:
        raise PhotoError(
            "signature",
            "signature",
            f"it is {image.width}x{image.height} pixels, over "
            f"{SIGNATURE_MAX_WIDTH}x{SIGNATURE_MAX_HEIGHT}",
        )
    if _blank(image.data):
        raise PhotoError("signature", "signature", "it is blank")
    return SignedForm(
        content_type=image.content_type, data=image.data, size=image.size, sha1_b64=image.sha1_b64
    )


def _short_reason(reason: str) -> str:
    if "larger than" in reason:
        return "it is larger than 512 KiB"
    return reason


def _blank(png: bytes) -> bool:
    with Image.open(io.BytesIO(png)) as image:
        if "A" in image.getbands():
            return image.getchannel("A").getextrema()[1] == 0
        low, high = image.convert("L").getextrema()
        return bool(low == high)


def render_typed_signature(name: str) -> bytes:
    """The typed name drawn black on white with Pillow's default font, as PNG bytes."""
    font = ImageFont.load_default(size=TYPED_FONT_SIZE)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), name, font=font
    )
    width = min(SIGNATURE_MAX_WIDTH, int(right - left) + 2 * TYPED_PADDING)
    height = min(SIGNATURE_MAX_HEIGHT, int(bottom - top) + 2 * TYPED_PADDING)
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).text((TYPED_PADDING - left, TYPED_PADDING - top), name, fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class _Logical(Entry):
    """An Entry for a resource that is not in the Bundle: its reference is given as is."""

    ref: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> dict[str, Any]:
        return self.ref


def capture_entries(
    capture: Capture,
    patient_id: str,
    fhir_user: str | None,
    kinds: ConsentKinds,
    ctx: MappingContext,
    basis: str = "",
) -> list[Entry]:
    """The Consent (built by ``symfhir.mapping.consent`` from a ConsentRecord) and its
    Provenance, as conditional creates: a double submit of the same form writes nothing new.
    ``basis`` names the kind's current Consent as the page showed it (``id/version``): the
    same consent given again after a withdrawal is a new Consent, not the withdrawn one.

    Raises FhirValidationError when a resource is not valid R4.
    """
    record = ConsentRecord.model_validate(
        {
            "kind": capture.kind,
            "status": capture.decision,
            "date": ctx.today,
            "signer": capture.signer,
            "policy_version": capture.policy_version,
            "form": capture.form,
        },
        context={"today": ctx.today, "consent_kinds": kinds},
    )
    # Only the client id (for the identifier) and physician (an actor of physician_sharing)
    # are read by the mapping; the rest of a spa record has no part in one consent.
    client = Client.model_construct(client_id=patient_id, physician=None)
    spa_record = SpaRecord.model_construct(client=client, consents={capture.kind: record})
    patient = Entry({}, f"Patient/{patient_id}", "")
    org = _Logical({}, "", "", ref=organization_ref(ctx))
    mapping_ctx = replace(ctx, consent_kinds=kinds)
    (mapped,) = consent_mapping.consents(spa_record, patient, None, org, mapping_ctx)
    resource = dict(mapped.resource)
    captured_at = ctx.now.isoformat()
    key = digest(capture.kind, capture.decision, capture.signer, capture.form.sha1_b64, basis)
    ident = dict(resource["identifier"][0])
    ident["value"] = f"{ident['value']}-{key}"
    resource["identifier"] = [ident]
    resource["dateTime"] = captured_at
    resource["performer"] = [_performer(capture, patient_id)]
    attachment = dict(resource["sourceAttachment"])
    attachment["creation"] = captured_at
    if capture.typed:
        attachment["title"] = f"{attachment['title']} (typed signature)"
    resource["sourceAttachment"] = attachment
    consent_entry = entry(resource, ident)
    prov = provenance_entry(
        [consent_entry.reference],
        "CREATE",
        fhir_user,
        ctx,
        key=f"consent-capture-{digest(ident['value'])}",
    )
    entries = [consent_entry, prov]
    check_valid([e.resource for e in entries])
    return entries


def _performer(capture: Capture, patient_id: str) -> dict[str, Any]:
    if capture.signer == "guardian":
        return {"type": "RelatedPerson", "display": f"{capture.signer_name} (parent or guardian)"}
    performer: dict[str, Any] = {"reference": f"Patient/{patient_id}", "type": "Patient"}
    if capture.signer_name:
        performer["display"] = capture.signer_name
    return performer


def provenance_entry(
    targets: list[dict[str, Any]],
    activity: str,
    fhir_user: str | None,
    ctx: MappingContext,
    *,
    key: str,
) -> Entry:
    """A Provenance (hl7.org/fhir/R4/provenance.html) of a workspace write: the practitioner
    (fhirUser) as author, symfhir as assembler, the spa as custodian."""
    author: dict[str, Any] = {
        "type": {"coding": [{"system": AGENT_TYPE, "code": "author", "display": "Author"}]},
        "who": {"reference": fhir_user} if fhir_user else {"display": "unknown practitioner"},
    }
    resource = {
        "resourceType": "Provenance",
        "target": targets,
        "recorded": ctx.now.isoformat(),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": activity}]},
        "agent": [
            author,
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "assembler"}]},
                "who": {"display": f"symfhir {SYMFHIR_VERSION}"},
            },
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "custodian"}]},
                "who": organization_ref(ctx),
            },
        ],
    }
    return tagged_entry(resource, key)


def check_valid(resources: list[dict[str, Any]]) -> None:
    """Raise FhirValidationError when any resource is not valid R4 (FastValidator)."""
    problems = [
        (f"{r.get('resourceType')}.{p.path}", p.message)
        for r in resources
        for p in _VALIDATOR.validate(r)
    ]
    if problems:
        raise FhirValidationError(problems)


def capture_bundle(entries: list[Entry]) -> dict[str, Any]:
    """The transaction Bundle of a capture (conditional creates)."""
    return transaction(entries)


# -- withdrawal ------------------------------------------------------------------------------


def basis_of(overview: list[KindStatus], kind: str) -> str:
    """``id/version`` of the current Consent of ``kind`` ("" when never asked)."""
    status = next((s for s in overview if s.key == kind), None)
    current = status.current if status else None
    return f"{current.id}/{current.version}" if current else ""


def find_withdrawable(overview: list[KindStatus], kind: str) -> tuple[ConsentEvent | None, str]:
    """The current given Consent of ``kind``: (event, "") or (None, why it cannot be)."""
    status = next((s for s in overview if s.key == kind), None)
    if status is None:
        return None, "Choose a consent kind."
    if not status.withdrawable or status.current is None:
        return None, (f"{status.label} cannot be withdrawn: it is {status.status}, not given.")
    return status.current, ""


def withdrawal_bundle(
    consent: Mapping[str, Any],
    version: str,
    patient_id: str,
    fhir_user: str | None,
    ctx: MappingContext,
) -> dict[str, Any]:
    """A transaction: PUT the Consent as ``inactive`` with provision.period.end = today,
    If-Match on ``version`` (409/412 when it changed meanwhile), and POST its Provenance.

    Raises FhirValidationError when a resource is not valid R4.
    """
    resource = withdrawn_consent(consent, ctx.today)
    consent_id = str(resource["id"])
    prov = provenance_entry(
        [{"reference": f"Consent/{consent_id}"}, {"reference": f"Patient/{patient_id}"}],
        "UPDATE",
        fhir_user,
        ctx,
        key=f"consent-withdrawal-{digest(consent_id, version)}",
    )
    check_valid([resource, prov.resource])
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource,
                "request": {
                    "method": "PUT",
                    "url": f"Consent/{consent_id}",
                    "ifMatch": f'W/"{version}"',
                },
            },
            {
                "fullUrl": prov.full_url,
                "resource": prov.resource,
                "request": {
                    "method": "POST",
                    "url": "Provenance",
                    "ifNoneExist": prov.if_none_exist,
                },
            },
        ],
    }


def withdrawn_consent(consent: Mapping[str, Any], today: date) -> dict[str, Any]:
    """A copy of an active Consent, now ``inactive`` with its provision ending ``today``."""
    resource = {k: v for k, v in consent.items() if k not in ("meta", "text")}
    resource["status"] = "inactive"
    provision = dict(resource.get("provision") or {})
    period = dict(provision.get("period") or {})
    start = str(period.get("start", ""))
    end = today.isoformat()
    # provision.period.end must not precede its start (a start may carry a time).
    period["end"] = max(end, start[:10]) if start else end
    provision["period"] = period
    resource["provision"] = provision
    return resource
