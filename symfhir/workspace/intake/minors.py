"""The intake form's rule for minors, as the import's (``symfhir.model.record``): a client
under 18 needs a parent or guardian, and a birth date that leaves the age unknown is not
enough to save an intake (privacy policy §9; ``symfhir.model.age`` decides the status)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from symfhir.model.age import ADULT_AGE, MINOR, UNKNOWN, age_status, birth_range
from symfhir.workspace.intake.questionnaire import Errors, Values

#: The intake Questionnaire's items (mappings/intake-questionnaire.json) the rule reads.
BIRTH_DATE = "client.birth_date"
GUARDIAN_ITEMS = ("guardian.name", "guardian.relationship")

GUARDIAN_NEEDED = (
    f"The client is under {ADULT_AGE}: enter their parent or legal guardian "
    "(services are for adults; a minor only with a guardian's consent)."
)
AGE_UNKNOWN = (
    f"Enter the full date of birth: with only this much, the client may be under {ADULT_AGE}."
)


def _link_ids(items: list[dict[str, Any]]) -> Iterator[str]:
    for item in items:
        yield str(item.get("linkId"))
        yield from _link_ids(item.get("item") or [])


def minor_problems(questionnaire: dict[str, Any], values: Values, today: date) -> Errors:
    """Field name → message: the birth date when it leaves the age unknown, and each guardian
    item left empty for a minor. Nothing for a questionnaire without these items, or a birth
    date the date check itself refuses."""
    present = set(_link_ids(questionnaire.get("item") or []))
    if BIRTH_DATE not in present or not set(GUARDIAN_ITEMS) <= present:
        return {}
    given = [v.strip() for v in values.get(BIRTH_DATE, []) if v.strip()]
    if len(given) != 1 or birth_range(given[0]) is None:
        return {}
    status = age_status(given[0], today)
    if status == UNKNOWN:
        return {BIRTH_DATE: AGE_UNKNOWN}
    if status != MINOR:
        return {}
    return {
        name: GUARDIAN_NEEDED
        for name in GUARDIAN_ITEMS
        if not any(v.strip() for v in values.get(name, []))
    }
