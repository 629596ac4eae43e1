"""What a client may ask to correct on the portal's form, and the correction's fields checked
into the request's inputs (``resource``, ``proposed``, ``reason``: what
``symfhir.privacy.correction`` reads). Pure and framework-free.

The choices are the Patient fields ``mappings/corrections.yaml`` lets a request amend (deny by
default: a field the rules drop disappears from the form), in the client's words, plus
"something else in my record": then the request names no record and the practitioner names it
when accepting (the client says what is wrong in the details).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from symfhir.contacts import normalize_email, normalize_phone
from symfhir.errors import RecordError
from symfhir.privacy.correction import (
    PROPOSED_INPUT,
    REASON_INPUT,
    RESOURCE_INPUT,
    check_value,
)
from symfhir.privacy.correction_rules import CorrectionRules, load_rules

#: The Patient fields a client knows best, in their words (the form's order). A field the
#: rules do not list is not offered.
FIELD_WORDS = {
    "telecom": "My contact details (e-mail address or phone number)",
    "name": "My name",
    "address": "My address",
    "birthDate": "My date of birth",
}
OTHER = "other"
OTHER_WORDS = "Something else in my record"
MAX_REASON = 1000


@dataclass(frozen=True)
class CorrectionFields:
    """The form's correction fields as typed: the choice, the corrected value, the reason."""

    choice: str
    proposed: str
    reason: str


def correction_choices(rules: CorrectionRules | None = None) -> dict[str, str]:
    """choice -> words: the amendable Patient fields, then "something else"."""
    rules = rules or load_rules()
    offered = {f: words for f, words in FIELD_WORDS.items() if rules.field_form(f)}
    return {**offered, OTHER: OTHER_WORDS}


def _check_proposed(form: str | None, value: str, phone_region: str) -> None:
    # The same reading the practitioner's Accept applies, so that what the client types is
    # refused here with its reason rather than after weeks in the review queue.
    if form == "contact":
        if "@" in value:
            normalize_email(value, record="correction")
        else:
            normalize_phone(value, phone_region, record="correction")
    elif form == "human-name" and len(value.split()) < 2:
        raise RecordError("correction", PROPOSED_INPUT, "needs a given and a family name")
    elif form == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            raise RecordError("correction", PROPOSED_INPUT, "must be a date YYYY-MM-DD") from None


def check_correction(
    fields: CorrectionFields,
    details: str,
    *,
    phone_region: str,
    rules: CorrectionRules | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(field -> reason in plain words, the request's inputs). ``details`` is what the client
    wrote about the request: needed when the choice is "something else" (it says what is
    wrong). Error keys are the form's: ``correction_field``, ``proposed``, ``reason``,
    ``details``; no message quotes what was typed."""
    rules = rules or load_rules()
    errors: dict[str, str] = {}
    inputs: dict[str, str] = {}
    choices = correction_choices(rules)
    if fields.choice not in choices:
        errors["correction_field"] = "Choose what is wrong."
    elif fields.choice != OTHER:
        inputs[RESOURCE_INPUT] = f"Patient.{fields.choice}"
    elif not details.strip():
        errors["details"] = "Tell us which information in your record is wrong."
    try:
        inputs[PROPOSED_INPUT] = check_value(fields.proposed, PROPOSED_INPUT)
    except RecordError as exc:
        errors["proposed"] = (
            "Give the corrected information."
            if exc.reason == "is required"
            else f"The corrected information {exc.reason}."
        )
    if PROPOSED_INPUT in inputs and fields.choice in choices and fields.choice != OTHER:
        form = rules.field_form(fields.choice)
        try:
            _check_proposed(form, inputs[PROPOSED_INPUT], phone_region)
        except RecordError:
            errors["proposed"] = _form_words(form)
            del inputs[PROPOSED_INPUT]
    reason = " ".join(fields.reason.split())
    if not reason:
        errors["reason"] = "Tell us why the information is wrong."
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"The reason is longer than {MAX_REASON} characters."
    else:
        try:
            inputs[REASON_INPUT] = check_value(reason, REASON_INPUT)
        except RecordError as exc:
            errors["reason"] = f"The reason {exc.reason}."
    return errors, inputs


def _form_words(form: str | None) -> str:
    return {
        "contact": "Give one valid e-mail address or phone number.",
        "human-name": "Give the full name: given name and family name.",
        "date": "Give the date as YYYY-MM-DD.",
    }.get(form or "", "The corrected information cannot be used.")
