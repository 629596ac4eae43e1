"""A correction request (HIPAA amendment, 45 CFR 164.526): the requester proposes a change to
their record; a practitioner decides (``symfhir.privacy.correction_review``).

The request's inputs: ``resource`` (what is wrong: ``Type/id`` of a record of the client, or
a field of their Patient such as ``Patient.telecom``), ``proposed`` (the corrected text) and
``reason``. The handler changes nothing: it checks the target is the client's own and
amendable by ``mappings/corrections.yaml`` (deny by default), records it on the Task and
leaves the request in progress, awaiting practitioner review.

The change itself is built here (pure): a Patient field replaced, or a clinical record
amended by an appended note (and marked entered-in-error when wrong as a whole), never
rewritten.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.cardnumbers import has_card_number
from symfhir.contacts import normalize_email, normalize_phone
from symfhir.errors import FhirNotFoundError, PrivacyRequestError, RecordError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment
from symfhir.privacy.correction_rules import (
    ENTERED_IN_ERROR,
    NOTE,
    REPLACE,
    CorrectionRules,
    load_rules,
)
from symfhir.privacy.model import (
    IDENTITY_VERIFIED,
    IN_PROGRESS,
    Outcome,
    PrivacyRequest,
    TaskOutput,
)
from symfhir.workspace.actor import Actor

RESOURCE_INPUT = "resource"
PROPOSED_INPUT = "proposed"
REASON_INPUT = "reason"
#: Task outputs the handler writes and the review reads.
TARGET_OUTPUT = "correction-target"
FIELD_OUTPUT = "correction-field"
AWAITING = "awaiting practitioner review"
#: The portal's and the desk's forms take what is wrong as free text (the details): the
#: practitioner names the record when accepting.
AWAITING_TARGET = f"{AWAITING}: the practitioner names the record to amend"
RECORD = "correction"
MAX_VALUE = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TYPED_ID = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
_FIELD = re.compile(r"^Patient\.([A-Za-z]+)$")


@dataclass(frozen=True)
class Target:
    """What a correction amends: a resource of the client, and for their Patient the field."""

    resource_type: str
    resource_id: str
    field: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    @property
    def label(self) -> str:
        """How notices and pages name it: ``Patient.telecom`` or ``Condition/12``."""
        return f"Patient.{self.field}" if self.field else self.reference


@dataclass(frozen=True)
class Change:
    """What the practitioner applies: the corrected text (the proposal, or their wording of
    it) and the action: ``replace`` for a Patient field (the default there), ``note`` (the
    default for a clinical record) or ``entered-in-error``."""

    value: str
    action: str | None = None
    #: The record to amend (``Patient.telecom``, ``Condition/12``), named by the practitioner
    #: when the request named none; refused when it names another than the request's.
    target: str | None = None


def parse_target(text: str, patient_id: str, rules: CorrectionRules) -> Target:
    """The target a request names, if the rules let a request amend it. Raises
    PrivacyRequestError (deny by default) naming only the type or field, never the value."""
    text = (text or "").strip()
    field = _FIELD.match(text)
    if field:
        if rules.field_form(field.group(1)) is None:
            raise PrivacyRequestError(f"Patient.{field.group(1)} cannot be amended by a request")
        return Target("Patient", patient_id, field.group(1))
    typed = _TYPED_ID.match(text)
    if not typed:
        raise PrivacyRequestError("a correction names Type/id of a record or a Patient field")
    if typed.group(1) == "Patient":
        raise PrivacyRequestError("a correction of the client's details names the field")
    if rules.type_rule(typed.group(1)) is None:
        raise PrivacyRequestError(f"{typed.group(1)} records cannot be amended by a request")
    return Target(typed.group(1), typed.group(2))


def read_target(client: FhirClient, target: Target, patient_id: str) -> dict[str, Any]:
    """The target as it is now. Raises PrivacyRequestError when it is not the client's own
    record (another client's, or none at all: both answer the same)."""
    try:
        resource = client.read(target.resource_type, target.resource_id)
    except FhirNotFoundError:
        resource = {}
    if not resource or not in_compartment(resource, patient_id):
        raise PrivacyRequestError(f"{target.resource_type}: not a record of this client")
    return resource


def check_value(value: str, field: str = "value") -> str:
    """The corrected text, stripped. Raises RecordError naming ``field`` (never the text)."""
    text = (value or "").strip()
    if not text:
        raise RecordError(RECORD, field, "is required")
    if len(text) > MAX_VALUE:
        raise RecordError(RECORD, field, f"is longer than {MAX_VALUE} characters")
    if _CONTROL.search(text):
        raise RecordError(RECORD, field, "holds control characters")
    if has_card_number(text):
        raise RecordError(RECORD, field, "holds what looks like a payment card number")
    return text


def proposal(request: PrivacyRequest) -> str:
    """The proposed correction: the ``proposed`` input, else what the requester wrote."""
    return request.inputs.get(PROPOSED_INPUT) or request.details


def awaits_review(request: PrivacyRequest) -> bool:
    """The handler has recorded the proposal and nobody has answered it yet."""
    return request.business_status == IN_PROGRESS and any(
        o.label == "progress" and (o.text or "").startswith(AWAITING) for o in request.outputs
    )


def handle(
    client: FhirClient,
    actor: Actor,
    request: PrivacyRequest,
    *,
    now: datetime,
    audit: AuditTrail,
) -> Outcome:
    """Record a correction's proposal for a practitioner's review: nothing is changed.

    A request naming no record (the portal's and the desk's forms take free text) awaits the
    practitioner naming it. Raises PrivacyRequestError for a request not verified or not
    matched, a target the rules do not let a request amend, or one that is not the client's
    own record (the request stays in progress: deny it with a reason); RecordError for an
    empty or unusable proposal.
    """
    if request.patient_id is None:
        raise PrivacyRequestError("the request is not matched to a client yet")
    if request.business_status not in (IDENTITY_VERIFIED, IN_PROGRESS) or not request.verifications:
        raise PrivacyRequestError("the requester's identity is not verified yet")
    check_value(proposal(request), PROPOSED_INPUT)
    if not request.inputs.get(RESOURCE_INPUT, "").strip():
        return Outcome(IN_PROGRESS, (), AWAITING_TARGET)
    target = parse_target(request.inputs.get(RESOURCE_INPUT, ""), request.patient_id, load_rules())
    read_target(client, target, request.patient_id)
    audit(
        "read",
        description="correction proposal checked against the record",
        resources=[f"Patient/{request.patient_id}", target.reference],
    )
    outputs = [TaskOutput(TARGET_OUTPUT, reference=target.reference)]
    if target.field:
        outputs.append(TaskOutput(FIELD_OUTPUT, text=target.field))
    return Outcome(IN_PROGRESS, tuple(outputs), AWAITING)


# -- the change, built on a copy of the target as read (pure) --------------------------------


def amended(
    resource: dict[str, Any],
    target: Target,
    change: Change,
    rules: CorrectionRules,
    *,
    note: str,
    author: str | None,
    now: datetime,
    phone_region: str,
) -> tuple[dict[str, Any], str]:
    """The target with the change applied, and the action taken. ``note`` is the Annotation
    text a clinical record gets. Raises PrivacyRequestError for an action the rules do not
    allow, RecordError for a value the field cannot take."""
    value = check_value(change.value)
    changed = copy.deepcopy(resource)
    changed.pop("meta", None)
    changed.pop("text", None)  # the narrative would still show the old value
    if target.field:
        if change.action not in (None, REPLACE):
            raise PrivacyRequestError("a Patient field is corrected by replacing it")
        form = rules.field_form(target.field)
        if form is None:
            raise PrivacyRequestError(f"Patient.{target.field} cannot be amended by a request")
        _replace_field(changed, target.field, form, value, phone_region)
        return changed, REPLACE
    rule = rules.type_rule(target.resource_type)
    action = change.action or NOTE
    if rule is None or action not in rule.actions:
        raise PrivacyRequestError(f"{target.resource_type}: {action} is not allowed")
    annotation: dict[str, Any] = {
        "time": now.isoformat(timespec="seconds"),
        "text": f"{note}\nCorrected text: {value}",
    }
    if author:
        annotation["authorReference"] = {"reference": author}
    changed.setdefault("note", []).append(annotation)
    if action == ENTERED_IN_ERROR:
        if rule.status_system:
            changed[rule.status_element] = {
                "coding": [{"system": rule.status_system, "code": ENTERED_IN_ERROR}]
            }
        else:
            changed[rule.status_element] = ENTERED_IN_ERROR
    return changed, action


def _replace_field(
    patient: dict[str, Any], field: str, form: str, value: str, phone_region: str
) -> None:
    if form == "contact":
        system = "email" if "@" in value else "phone"
        text = (
            normalize_email(value, record=RECORD)
            if system == "email"
            else normalize_phone(value, phone_region, record=RECORD)
        )
        telecom = patient.setdefault("telecom", [])
        current = next((t for t in telecom if t.get("system") == system), None)
        if current is None:
            telecom.append({"system": system, "value": text})
        else:
            current["value"] = text
    elif form == "human-name":
        parts = value.split()
        if len(parts) < 2:
            raise RecordError(RECORD, "value", "a name needs a given and a family name")
        names = patient.setdefault("name", [])
        index = next((i for i, n in enumerate(names) if n.get("use") == "official"), 0)
        new = {"family": parts[-1], "given": parts[:-1]}
        if names:
            new = {"use": names[index]["use"], **new} if names[index].get("use") else new
            names[index] = new
        else:
            names.append(new)
    elif form == "address":
        addresses = patient.setdefault("address", [])
        index = next((i for i, a in enumerate(addresses) if a.get("use") == "home"), 0)
        new = {"text": value}
        if addresses:
            new = {"use": addresses[index]["use"], **new} if addresses[index].get("use") else new
            addresses[index] = new
        else:
            addresses.append(new)
    else:
        try:
            patient[field] = date.fromisoformat(value).isoformat()
        except ValueError:
            raise RecordError(RECORD, "value", "must be a date YYYY-MM-DD") from None
