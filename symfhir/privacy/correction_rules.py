"""What a correction (amendment) request may change: ``mappings/corrections.yaml`` read into
``CorrectionRules``. Deny by default: a Patient field or resource type not listed is refused."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

#: How a corrected Patient field's text is read.
FIELD_FORMS = frozenset({"contact", "human-name", "address", "date"})
#: What accepting a correction of a clinical record may do to it.
NOTE = "note"
ENTERED_IN_ERROR = "entered-in-error"
REPLACE = "replace"  # the one action on a Patient field
RECORD_ACTIONS = frozenset({NOTE, ENTERED_IN_ERROR})


@dataclass(frozen=True)
class TypeRule:
    """A clinical type: the actions allowed, and the status element entered-in-error sets
    (``system`` for a CodeableConcept element, None for a code)."""

    actions: frozenset[str]
    status_element: str
    status_system: str | None = None


@dataclass(frozen=True)
class CorrectionRules:
    """Patient fields (name -> how its text is read) and clinical types (name -> rule)."""

    patient_fields: dict[str, str]
    types: dict[str, TypeRule]

    def field_form(self, name: str) -> str | None:
        return self.patient_fields.get(name)

    def type_rule(self, resource_type: str) -> TypeRule | None:
        return None if resource_type == "Patient" else self.types.get(resource_type)


def parse_rules(data: dict[str, Any]) -> CorrectionRules:
    """Build the rules from the YAML document. Raises ConfigError naming the entry at fault."""
    fields = data.get("patient") or {}
    types = data.get("resources") or {}
    if not isinstance(fields, dict) or not isinstance(types, dict):
        raise ConfigError("correction rules: patient and resources must be mappings")
    patient_fields: dict[str, str] = {}
    for name, spec in fields.items():
        form = spec.get("as") if isinstance(spec, dict) else None
        if form not in FIELD_FORMS:
            raise ConfigError(
                f"correction rules: Patient.{name}: 'as' must be one of {sorted(FIELD_FORMS)}"
            )
        patient_fields[str(name)] = str(form)
    rules: dict[str, TypeRule] = {}
    for name, spec in types.items():
        if name == "Patient" or not isinstance(spec, dict):
            raise ConfigError(f"correction rules: {name} is not a clinical type rule")
        actions = spec.get("actions")
        if not isinstance(actions, list) or not actions or not set(actions) <= RECORD_ACTIONS:
            raise ConfigError(
                f"correction rules: {name}: actions must be among {sorted(RECORD_ACTIONS)}"
            )
        status = spec.get("status") or {}
        element = status.get("element") if isinstance(status, dict) else None
        if ENTERED_IN_ERROR in actions and not isinstance(element, str):
            raise ConfigError(f"correction rules: {name}: entered-in-error needs a status element")
        system = status.get("system") if isinstance(status, dict) else None
        rules[str(name)] = TypeRule(frozenset(actions), str(element or ""), system)
    return CorrectionRules(patient_fields, rules)


@lru_cache(maxsize=4)
def load_rules(path: Path | None = None) -> CorrectionRules:
    """Load ``mappings/corrections.yaml`` (or ``path``). Raises ConfigError."""
    return parse_rules(
        read_mapping_file(path or MAPPINGS_DIR / "corrections.yaml", "correction rules")
    )
