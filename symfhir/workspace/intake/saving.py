"""The intake workflows: the form pre-filled from the client's latest QuestionnaireResponse
(``read_intake``), and a submission saved (``save_intake``): in one transaction the response,
its extracted Observations, the history resources extracted from it (allergies, medications,
conditions, prior treatments: created, or updated with If-Match when the form changed them or
no longer lists them) and a Provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from symfhir.audit import AuditTrail
from symfhir.errors import FhirAuthError, FhirServerError, FhirValidationError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import batch_resources
from symfhir.mapping.context import MappingContext, load_questionnaire
from symfhir.mapping.refs import identifier
from symfhir.validation import FastValidator
from symfhir.workspace.actor import Actor
from symfhir.workspace.intake.fields import Field, build_form
from symfhir.workspace.intake.history import Extracted, extract_history
from symfhir.workspace.intake.questionnaire import Errors, Values
from symfhir.workspace.intake.reconcile import history_reads
from symfhir.workspace.intake.response import questionnaire_response
from symfhir.workspace.intake.submission import HistoryState, submission
from symfhir.workspace.intake.values import values_from_form, values_from_response
from symfhir.workspace.photos.upload import client_key

log = logging.getLogger(__name__)

Outcome = Literal["saved", "invalid", "failed"]
_validator = FastValidator()


@dataclass(frozen=True)
class IntakeForm:
    """The intake form to show: its title, its fields (with values and errors), and whether
    the values came from an earlier response."""

    title: str
    fields: list[Field]
    errors: Errors = field(default_factory=dict)
    prefilled: bool = False


@dataclass(frozen=True)
class IntakeSaved:
    """What became of a submission: ``saved`` (one transaction, ``created`` and ``updated``
    name its types), ``invalid`` (answers refused: ``form`` shows why, nothing written) or
    ``failed`` (the server could not read the history or refused the transaction: nothing
    written, ``form`` keeps what was entered)."""

    outcome: Outcome
    form: IntakeForm
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


def latest_response_search(patient_id: str, questionnaire_url: str) -> dict[str, str]:
    """The search for a patient's newest response to a Questionnaire."""
    return {
        "subject": f"Patient/{check_id(patient_id)}",
        "questionnaire": questionnaire_url,
        # authored has whole seconds: two saves in one second go to the one written last.
        "_sort": "-authored,-_lastUpdated",
        "_count": "1",
    }


def latest_response(
    client: FhirClient, patient_id: str, questionnaire: dict[str, Any]
) -> dict[str, Any] | None:
    """The patient's most recent QuestionnaireResponse to ``questionnaire`` (first page only)."""
    params = latest_response_search(patient_id, questionnaire["url"])
    for bundle in client.search_bundles("QuestionnaireResponse", params):
        for item in bundle.get("entry") or []:
            resource = item.get("resource") if isinstance(item, dict) else None
            mode = (item.get("search") or {}).get("mode", "match")
            if (
                isinstance(resource, dict)
                and mode == "match"
                and in_compartment(resource, patient_id)
            ):
                return resource
        break  # one page: the newest is on it
    return None


def _form(
    questionnaire: dict[str, Any], values: Values, errors: Errors, prefilled: bool = False
) -> IntakeForm:
    title = str(questionnaire.get("title") or "Intake")
    return IntakeForm(title, build_form(questionnaire, values, errors), errors, prefilled)


def read_intake(
    client: FhirClient, actor: Actor, patient_id: str, *, audit: AuditTrail
) -> IntakeForm:
    """The intake form pre-filled from the client's latest response (audited as a search).
    Raises FhirServerError when the search fails."""
    questionnaire = load_questionnaire()
    latest = latest_response(client, patient_id, questionnaire)
    audit("search", description="intake form read QuestionnaireResponse")
    values = values_from_response(questionnaire, latest)
    return _form(questionnaire, values, {}, prefilled=latest is not None)


def save_intake(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    posted: Mapping[str, Sequence[str]],
    *,
    audit: AuditTrail,
    now: datetime | None = None,
) -> IntakeSaved:
    """Save the answers ``posted`` (each form field's values) as the client's intake.

    Raises NotAllowedError (read-only before anything is read; a type the save would create
    or update and may not, before anything is written), FhirValidationError when a built
    resource breaks the FHIR rules (a bug: nothing written), FhirAuthError when the server
    refuses the credentials.
    """
    actor.require(())
    questionnaire = load_questionnaire()
    answers = {name: list(values) for name, values in posted.items()}
    ctx = MappingContext.load(now or datetime.now(UTC))
    response, errors = questionnaire_response(
        questionnaire,
        answers,
        patient_id=patient_id,
        author=actor.fhir_user,
        authored=ctx.now.astimezone(ctx.spa.zone).isoformat(timespec="seconds"),
        today=ctx.today,
    )
    values = values_from_form(questionnaire, answers)
    facts: list[Extracted] = []
    if not errors:
        facts, errors = extract_history(questionnaire, response, ctx, values)
    if errors:
        return IntakeSaved("invalid", _form(questionnaire, values, errors))
    kept = _form(questionnaire, values, {})
    try:
        state = _history_state(client, patient_id, questionnaire, facts, ctx, audit)
    except FhirAuthError:
        raise
    except FhirServerError as exc:
        log.warning("intake not saved, history not read: %s", exc.log_text)
        state = None
    if state is None:
        audit("search", success=False, description="intake not saved: history not read")
        return IntakeSaved("failed", kept)
    plan = submission(questionnaire, response, patient_id, ctx, facts, state)
    actor.require((t, method) for method in ("c", "u") for t in plan.types(method))
    problems = [p for r in plan.resources() for p in _validator.validate_fhir_json(r)]
    if problems:
        # A bug of ours, not of the answers.
        raise FhirValidationError([(p.path, p.message) for p in problems])
    try:
        client.transaction(plan.bundle())
    except FhirAuthError:
        raise
    except FhirServerError as exc:
        # One transaction: nothing was written (a version conflict included).
        log.warning("intake not saved: %s", exc.log_text)  # log_text is PHI-free
        audit("create", success=False, description="intake not saved: server error")
        return IntakeSaved("failed", kept)
    created, updated = plan.types("c"), plan.types("u")
    audit("create", description="intake saved " + ", ".join(created))
    if plan.updates:
        audit("update", description="intake updated " + ", ".join(updated))
    return IntakeSaved("saved", kept, created, updated)


def _history_state(
    client: FhirClient,
    patient_id: str,
    questionnaire: dict[str, Any],
    facts: list[Extracted],
    ctx: MappingContext,
    audit: AuditTrail,
) -> HistoryState | None:
    """What the history extraction is compared with: the previous intake's facts and the
    server's history resources symfhir identified, keyed by the Patient's spa client id.
    None when a read failed (then nothing is written: a removal must not be missed)."""
    previous = latest_response(client, patient_id, questionnaire)
    earlier, _ = extract_history(questionnaire, previous, ctx)
    types = {f.resource_type for f in [*facts, *earlier]}
    if not types:
        return HistoryState(patient_id)
    labels = ["Patient", *sorted(types)]
    found = batch_resources(client.batch(history_reads(patient_id, types, ctx)), labels)
    audit("search", description="intake read Patient, " + ", ".join(sorted(types)))
    if found.failed or found.truncated:
        return None
    own = [r for r in found.resources if in_compartment(r, patient_id)]
    patient = next((r for r in own if r.get("resourceType") == "Patient"), None)
    if patient is None:
        return None
    system = identifier(ctx, "client-id", "")["system"]
    key = client_key(patient, system, patient_id)
    return HistoryState(key, earlier, found.resources)
