"""FHIR JSON text for resources that have been validated as dicts (no model round trip).

The dict is written as given, which FHIR wants and R4B's ``model_dump_json`` does not
do: R4B re-renders dates and times from parsed values (``10:30:00.000Z`` becomes
``10:30:00Z``), writes decimals through ``float`` and drops empty lists, while FHIR
says the given precision is meaningful. What R4B accepts but FHIR JSON forbids
(``"5"`` for an integer, ``"true"`` for a boolean, empty arrays, nulls, python field
names) is refused by ``dumps_checked`` through ``FastValidator.validate_fhir_json``.
"""

from __future__ import annotations

import json
from typing import Any

from symfhir.errors import FhirValidationError
from symfhir.validation.fast import FastValidator

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(resource: dict[str, Any]) -> str:
    """Compact FHIR JSON text of an already validated resource (UTF-8 safe, no NaN).

    Raises ``ValueError`` for NaN/Infinity and ``TypeError`` for non-JSON values.
    """
    return _ENCODER.encode(resource)


def dumps_checked(resource: dict[str, Any], validator: FastValidator) -> str:
    """Validate ``resource`` as R4B and as FHIR JSON, then serialize it.

    Raises ``FhirValidationError`` listing every problem.
    """
    problems = validator.validate_fhir_json(resource)
    if problems:
        raise FhirValidationError([(p.path, p.message) for p in problems])
    return dumps(resource)
