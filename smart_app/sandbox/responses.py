"""What of an upstream answer a patient-context token gets to see.

Every Bundle answer to a request that only `patient/` scopes allowed is filtered, whatever
its shape: a search's matches and `_include`/`_revinclude` (`:iterate` too) resources, a
history, `Patient/<id>/$everything`, the searches nested in a batch or transaction
response, and the resources those responses carry. A resource stays when a `user/` scope
grants reading its type, or a `patient/` scope does and it is in the launched patient's
record (`symfhir.fhir.compartment`); the others are removed and an OperationOutcome says
how many. Answers in other formats never reach a patient's token (see `decisions`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from symfhir.fhir.compartment import in_compartment

from .scopes import ResourceScope

LIST_BUNDLES = frozenset({"searchset", "history", "collection"})
ANSWER_BUNDLES = frozenset({"batch-response", "transaction-response"})


def visible(resource: Any, patient_id: str, scopes: Sequence[ResourceScope]) -> bool:
    """Whether the token may see `resource`: its type readable under a user scope, or under
    a patient scope and in the patient's record."""
    if not isinstance(resource, dict):
        return False
    rtype = str(resource.get("resourceType", ""))
    if rtype == "OperationOutcome":
        return True
    grants = [s for s in scopes if s.covers(rtype, "r") or s.covers(rtype, "s")]
    if any(s.context in ("user", "system") for s in grants):
        return True
    return bool(grants) and in_compartment(resource, patient_id)


def _note(removed: int) -> dict[str, Any]:
    text = (
        f"sandbox: {removed} resource(s) outside the launched patient's record "
        "or the granted scopes removed"
    )
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "suppressed", "diagnostics": text}],
    }


def _filter_list(bundle: dict[str, Any], patient_id: str, scopes: Sequence[ResourceScope]) -> int:
    entries = bundle.get("entry") or []
    kept = [e for e in entries if "resource" not in e or visible(e["resource"], patient_id, scopes)]
    removed = len(entries) - len(kept)
    if removed:
        note: dict[str, Any] = {"resource": _note(removed)}
        if bundle.get("type") == "searchset":
            note["search"] = {"mode": "outcome"}
        bundle["entry"] = [*kept, note]
    return removed


def _filter_answers(
    bundle: dict[str, Any], patient_id: str, scopes: Sequence[ResourceScope]
) -> int:
    """Entries of a batch/transaction response stay in place (they pair with the request's);
    a resource the token may not see is taken out of its entry."""
    removed = 0
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if resource is None:
            continue
        if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
            removed += filter_bundle(resource, patient_id, scopes)
        elif not visible(resource, patient_id, scopes):
            del entry["resource"]
            entry.setdefault("response", {})["outcome"] = _note(1)
            removed += 1
    return removed


def filter_bundle(bundle: dict[str, Any], patient_id: str, scopes: Sequence[ResourceScope]) -> int:
    """Filter a Bundle in place; the number of resources removed."""
    kind = bundle.get("type")
    if kind in LIST_BUNDLES:
        return _filter_list(bundle, patient_id, scopes)
    if kind in ANSWER_BUNDLES:
        return _filter_answers(bundle, patient_id, scopes)
    return 0


def filter_text(text: str, patient_id: str, scopes: Sequence[ResourceScope]) -> str:
    """A JSON answer with what the token may not see removed (unchanged if nothing is)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return text
    if not isinstance(answer, dict) or answer.get("resourceType") != "Bundle":
        return text
    return json.dumps(answer) if filter_bundle(answer, patient_id, scopes) else text
