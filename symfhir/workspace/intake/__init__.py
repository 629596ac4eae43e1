"""The intake form: Questionnaire items ↔ HTML form fields ↔ QuestionnaireResponse (pure).

A generic reading of an R4 Questionnaire (hl7.org/fhir/R4/questionnaire.html): each item
becomes a form field named by its linkId (``linkId[i]`` inside instance ``i`` of a repeating
group); the posted form is checked against the item (required, type, allowed answers) and
turned into a QuestionnaireResponse (hl7.org/fhir/R4/questionnaireresponse.html) with the same
linkIds and nesting and no item for an unanswered question, as ``symfhir.mapping.intake``
builds it from a spa export. ``submission`` adds the Observations of SDC observation-based
extraction (``symfhir.mapping.extract``), the history resources of SDC definition-based
extraction (the importer's ``symfhir.mapping.history``), the versioned updates of history the
form no longer lists, and a Provenance. No Flask, no I/O, no clock.

Modules, in the order a request meets them:

- ``questionnaire`` — items read: field names and ids, widgets, allowed answers, value sets;
- ``values`` — the form's values, pre-filled from a stored response or as posted;
- ``fields`` — the fields to render, showing values and errors;
- ``answers`` — one item's posted answers checked (the error messages live here);
- ``response`` — the posted form as a QuestionnaireResponse plus its errors;
- ``history`` — the history items marked for definition-based extraction as record facts;
- ``reconcile`` — those facts against the server's resources: creates and versioned updates;
- ``submission`` — the transaction that writes it all.

The names below are re-exported so ``symfhir.workspace.intake.X`` keeps working.
"""

from symfhir.workspace.intake.answers import (
    BAD_BOOLEAN,
    BAD_DATE,
    BAD_DECIMAL,
    BAD_INTEGER,
    EARLIEST,
    FUTURE_DATE,
    MAX_STRING,
    MAX_TEXT,
    NOT_LISTED,
    OLD_DATE,
    ONE_ANSWER,
    REQUIRED,
    Parsed,
    parse_answers,
)
from symfhir.workspace.intake.fields import EXTRA_ROWS, Field, build_form
from symfhir.workspace.intake.history import (
    BINDINGS,
    CARD_NUMBER,
    DUPLICATE,
    ROW_NEEDS,
    Extracted,
    extract_history,
    extracted_type,
    history_entries,
)
from symfhir.workspace.intake.questionnaire import (
    ANSWERABLE,
    MAX_INSTANCES,
    Errors,
    Option,
    Values,
    ValueSets,
    canonical,
    field_id,
    field_name,
    options,
    project_value_sets,
)
from symfhir.workspace.intake.reconcile import LIFECYCLES, Changes, Update, history_reads, reconcile
from symfhir.workspace.intake.response import questionnaire_response, response_items
from symfhir.workspace.intake.submission import (
    HistoryState,
    Submission,
    submission,
)
from symfhir.workspace.intake.values import values_from_form, values_from_response

__all__ = [
    "ANSWERABLE",
    "BAD_BOOLEAN",
    "BAD_DATE",
    "BAD_DECIMAL",
    "BAD_INTEGER",
    "BINDINGS",
    "CARD_NUMBER",
    "DUPLICATE",
    "EARLIEST",
    "EXTRA_ROWS",
    "FUTURE_DATE",
    "LIFECYCLES",
    "MAX_INSTANCES",
    "MAX_STRING",
    "MAX_TEXT",
    "NOT_LISTED",
    "OLD_DATE",
    "ONE_ANSWER",
    "REQUIRED",
    "ROW_NEEDS",
    "Changes",
    "Errors",
    "Extracted",
    "Field",
    "HistoryState",
    "Option",
    "Parsed",
    "Submission",
    "Update",
    "ValueSets",
    "Values",
    "build_form",
    "canonical",
    "extract_history",
    "extracted_type",
    "field_id",
    "field_name",
    "history_entries",
    "history_reads",
    "options",
    "parse_answers",
    "project_value_sets",
    "questionnaire_response",
    "reconcile",
    "response_items",
    "submission",
    "values_from_form",
    "values_from_response",
]
