"""Whose record a resource is: the patient compartment of ``mappings/patient-compartment.yaml``.

The one place that answers it, for the app's own checks (a read that answers with another
client's resource is refused), for the workflows, and for the sandbox EHR's proxy. Each
type has one owner element: performer, author or recorder references never make a resource
someone's record. Types not listed are in no patient's compartment (deny by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

COMPARTMENT_FILE = MAPPINGS_DIR / "patient-compartment.yaml"


@dataclass(frozen=True)
class CompartmentRule:
    """How one resource type belongs to a patient."""

    owner: str
    search: tuple[str, ...]


def parse_compartment(data: Any) -> dict[str, CompartmentRule]:
    """The rules of the YAML document. Raises ConfigError naming the type at fault."""
    types = data.get("types") if isinstance(data, dict) else None
    if not isinstance(types, dict) or not types:
        raise ConfigError("patient compartment: a 'types' table is required")
    rules: dict[str, CompartmentRule] = {}
    for name, spec in types.items():
        owner = spec.get("owner") if isinstance(spec, dict) else None
        search = spec.get("search", []) if isinstance(spec, dict) else None
        if not isinstance(owner, str) or not owner:
            raise ConfigError(f"patient compartment: {name} needs an 'owner' element")
        if not isinstance(search, list) or not all(isinstance(p, str) for p in search):
            raise ConfigError(f"patient compartment: {name}: 'search' must be a list of names")
        bad = [p for p in search if ":" in p or "." in p]
        if bad:
            raise ConfigError(f"patient compartment: {name}: {bad[0]!r} is not a plain parameter")
        rules[str(name)] = CompartmentRule(owner, tuple(search))
    return rules


@lru_cache(maxsize=4)
def load_compartment(path: Path | None = None) -> dict[str, CompartmentRule]:
    """Load ``mappings/patient-compartment.yaml`` (or ``path``). Raises ConfigError."""
    return parse_compartment(read_mapping_file(path or COMPARTMENT_FILE, "patient compartment"))


def owner_field(resource_type: str) -> str | None:
    """The element naming whose record a resource of this type is; None when none is."""
    rule = load_compartment().get(resource_type)
    return rule.owner if rule else None


def compartment_search_params(resource_type: str) -> tuple[str, ...]:
    """The plain search parameters that bind a search of this type to one patient."""
    rule = load_compartment().get(resource_type)
    return rule.search if rule else ()


def patient_id_of(reference: object) -> str | None:
    """The Patient id a reference string names, or None for anything else:
    ``Patient/1``, ``Patient/1/_history/2`` and an absolute ``…/Patient/1`` name ``1``."""
    if not isinstance(reference, str) or not reference:
        return None
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        if len(parts) > 2 and "://" not in reference:
            return None  # a relative path with more segments is not a reference
        return parts[-1]
    return None


def _values(node: Any, path: list[str]) -> list[Any]:
    """The values at a dotted path, lists flattened on the way."""
    if not path:
        return node if isinstance(node, list) else [node]
    out: list[Any] = []
    for item in node if isinstance(node, list) else [node]:
        if isinstance(item, Mapping) and path[0] in item:
            out.extend(_values(item[path[0]], path[1:]))
    return out


def owner_references(resource: Mapping[str, Any]) -> list[str]:
    """The reference strings of the resource's owner element, in order (none for a Patient
    or a type outside the compartment). A Provenance of a Media names ``Media/…`` here: it
    is the patient's only through what it names."""
    resource_type = str(resource.get("resourceType", ""))
    field = owner_field(resource_type)
    if field is None or resource_type == "Patient":
        return []
    values = _values(resource, field.split("."))
    return [
        v["reference"]
        for v in values
        if isinstance(v, Mapping) and isinstance(v.get("reference"), str)
    ]


def owner_ids(resource: Mapping[str, Any], aliases: Mapping[str, str] | None = None) -> set[str]:
    """The Patient ids the resource's owner element names (a Patient's own id).

    ``aliases`` maps a transaction's full URLs (``urn:uuid:…``) to the patient id they
    stand for. A type outside the compartment names nobody.
    """
    resource_type = str(resource.get("resourceType", ""))
    field = owner_field(resource_type)
    if field is None:
        return set()
    if resource_type == "Patient":
        own = resource.get("id")
        return {own} if isinstance(own, str) and own else set()
    aliases = aliases or {}
    found: set[str] = set()
    for value in _values(resource, field.split(".")):
        reference = value.get("reference") if isinstance(value, Mapping) else None
        if isinstance(reference, str) and reference in aliases:
            found.add(aliases[reference])
            continue
        patient = patient_id_of(reference)
        if patient is not None:
            found.add(patient)
    return found


def in_compartment(
    resource: Mapping[str, Any], patient_id: str, aliases: Mapping[str, str] | None = None
) -> bool:
    """True when the resource's owner element names exactly ``patient_id`` and no other."""
    return bool(patient_id) and owner_ids(resource, aliases) == {patient_id}


def search_binds(resource_type: str, name: str, value: str, patient_id: str) -> bool:
    """True when the search parameter ``name=value`` restricts a search of this type to
    ``patient_id``: a plain parameter of the type's list (no modifier, no chain) whose every
    comma-separated value is the patient. ``subject`` (a reference to any type) needs the
    typed form ``Patient/id``; ``patient`` and ``_id`` also take the bare id."""
    if name not in compartment_search_params(resource_type) or not value:
        return False
    for item in value.split(","):
        if item == f"Patient/{patient_id}":
            continue
        if item == patient_id and name in ("patient", "_id"):
            continue
        return False
    return True
