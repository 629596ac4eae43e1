"""Withdrawal of a given consent: the Consent updated to ``inactive`` (pure).

A withdrawal is a new status with ``provision.period.end``, never a delete; the update is
If-Match on the version the page showed, so a concurrent change is refused, not overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import digest
from symfhir.workspace.consents.status import ConsentEvent, KindStatus
from symfhir.workspace.consents.writes import check_valid, provenance_entry

CHANGED_MEANWHILE = (
    "This consent was changed meanwhile (by someone else, or in another window). "
    "Reload the page to see its current status, then try again."
)


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
