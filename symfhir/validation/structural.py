"""Reference validation of one FHIR resource dict with the fhir.resources R4B models."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

# Abstract bases are model classes too, but no instance of them is a resource.
_ABSTRACT = frozenset({"Resource", "DomainResource"})

# Our own wording for error types whose pydantic/fhir_core message quotes the input.
_MESSAGES = {
    "missing": "required element is missing",
    "model_field_validation.missing": "required element is missing",
    "extra_forbidden": "unknown element",
    "fhir-validation-wrong-resource-type": "resourceType does not match the expected type",
    "fhir-validation-missing-resource-type": "resourceType is missing",
    "model_validation_format": "wrong kind of element or resource here",
}


@dataclass(frozen=True)
class Problem:
    """One reason a resource is invalid: a FHIRPath-like location and a PHI-free message."""

    path: str
    message: str


_gc_lock = threading.Lock()
_gc_pauses = 0


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while R4B model classes get built.

    The first use of a resource type imports its module and has pydantic build the
    classes and schemas: tens of thousands of long-lived containers, which the
    collector would otherwise traverse again and again (a sixth of the first
    resource's cost). Nesting and threads are counted; the last one out re-enables it,
    and only if it was enabled before.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


_gc_was_enabled = True
_CLASSES: dict[str, type[FHIRAbstractModel] | None] = {}


def resource_class(resource_type: object) -> type[FHIRAbstractModel] | None:
    """The R4B model for a concrete resource type name, or None if there is none."""
    if not isinstance(resource_type, str) or resource_type in _ABSTRACT:
        return None
    if resource_type in _CLASSES:
        return _CLASSES[resource_type]
    try:
        with gc_paused():
            cls = get_fhir_model_class(resource_type)
    except ValueError:
        cls = None
    # get_fhir_model_class also knows data types (Coding, ...), which are not resources.
    found = cls if cls is not None and cls.has_resource_base() else None
    if len(_CLASSES) < 1024:  # the names are the caller's: keep the table bounded
        _CLASSES[resource_type] = found
    return found


def validate_resource(resource: dict[str, Any]) -> list[Problem]:
    """Validate ``resource`` with R4B; an empty list means valid. Never raises."""
    if not isinstance(resource, dict):
        return [Problem("", "a resource must be a JSON object")]
    resource_type = resource.get("resourceType")
    cls = resource_class(resource_type)
    if cls is None:
        if resource_type is None:
            return [Problem("resourceType", "resourceType is missing")]
        return [Problem("resourceType", "not a FHIR R4B resource type")]
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        return problems_from_error(str(resource_type), exc)
    except (KeyError, ValueError, TypeError, AttributeError):
        # fhir_core raises bare KeyError for an unknown nested resourceType (contained,
        # Bundle.entry.resource); the message would quote the input, so say it ourselves.
        return [Problem(str(resource_type), "unknown nested resourceType or malformed element")]
    return []


def problems_from_error(root: str, exc: ValidationError) -> list[Problem]:
    """Turn a pydantic ValidationError into Problems rooted at ``root``."""
    problems = []
    seen = set()
    for error in exc.errors(include_input=True, include_url=False):
        path = fhir_path(root, error["loc"])
        message = _message(error)
        if (path, message) not in seen:
            seen.add((path, message))
            problems.append(Problem(path, message))
    return problems


def fhir_path(root: str, loc: tuple[int | str, ...]) -> str:
    """``("code", "coding", 0, "system")`` -> ``Observation.code.coding[0].system``."""
    parts = [root]
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
        elif item == "root" or _is_schema_tag(item):
            # fhir_core's whole-value checks report "root"; unions add schema tags.
            continue
        elif item == "resource_type":
            parts.append("resourceType")
        else:
            parts.append(item)
    return ".".join(parts)


def _is_schema_tag(item: str) -> bool:
    return "[" in item or item in {
        "str",
        "list[str]",
        "int",
        "bool",
        "float",
        "decimal",
        "date",
        "datetime",
    }


def _message(error: Any) -> str:
    kind = str(error["type"])
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    # pydantic's own messages do not quote the input, but ValueErrors raised by
    # validators might; never let a value (possible PHI) reach a log line.
    if isinstance(value, str) and len(value) >= 2 and value in message:
        return "invalid value"
    if isinstance(value, int | float) and not isinstance(value, bool) and str(value) in message:
        return "invalid value"
    return message
