"""R4 reference target types: which resource types each Reference element may point at.

Read from the R4B models (``enum_reference_types``), so an element that R4 limits
(``DiagnosticReport.media.link`` to Media, say) is known without a hand-kept table.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from functools import cache
from typing import Any, Union, get_args, get_origin

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.reference import Reference
from fhir_core.types import FhirBase

_RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/[A-Za-z0-9.-]{1,64}(/_history/[A-Za-z0-9.-]{1,64})?")


def _type_of(item: Any) -> str | None:
    resource = item.get("resource") if isinstance(item, dict) else None
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    return kind if isinstance(kind, str) else None


def typed_reference_problems(entries: list[dict[str, Any]], replaced: set[Any]) -> list[str]:
    """Elements from or to a replaced entry whose R4 target types exclude what they now reach.

    ``entries`` are Bundle entries; ``replaced`` the fullUrls of entries whose resource type
    changed. Returns "path (a Type; R4 allows A, B)" strings, sorted.
    """
    kinds = {e.get("fullUrl"): _type_of(e) for e in entries}
    problems: set[str] = set()
    for item in entries:
        kind = _type_of(item)
        cls = _model(kind)
        from_fallback = item.get("fullUrl") in replaced
        if cls is None:
            continue
        for path, allowed, ref in _references(item["resource"], cls, str(kind)):
            match = _RELATIVE.fullmatch(ref)
            if ref in kinds and (from_fallback or ref in replaced):
                target = kinds[ref]
            elif from_fallback and match:
                target = match.group(1)
            else:
                continue
            if allowed and "Resource" not in allowed and target not in allowed:
                problems.add(f"{path} (a {target}; R4 allows {', '.join(allowed)})")
    return sorted(problems)


def _model(kind: str | None) -> type | None:
    try:
        return get_fhir_model_class(kind) if kind else None
    except (KeyError, ValueError):
        return None


def _references(
    value: dict[str, Any], cls: type, path: str
) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """(element path, R4 target types, reference) for every Reference under ``value``."""
    elements = _elements(cls)
    for key, item in value.items():
        element, allowed = elements.get(key, (None, ()))
        for node in item if isinstance(item, list) else [item]:
            if element is None or not isinstance(node, dict) or "resourceType" in node:
                continue  # a primitive, or a contained resource (a unit of its own)
            if element is Reference:
                if isinstance(node.get("reference"), str):
                    yield f"{path}.{key}", allowed, node["reference"]
            else:
                yield from _references(node, element, f"{path}.{key}")


@cache
def _elements(cls: type) -> dict[str, tuple[type | None, tuple[str, ...]]]:
    """JSON name → (element class, R4 reference target types) for the fields of ``cls``."""
    out: dict[str, tuple[type | None, tuple[str, ...]]] = {}
    for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        allowed = tuple(extra.get("enum_reference_types") or ())
        out[info.alias or name] = (_element_class(info.annotation), allowed)
    return out


def _element_class(annotation: Any) -> type | None:
    pending = [annotation]
    while pending:
        tp = pending.pop()
        if get_origin(tp) in (Union, types.UnionType, list):
            pending.extend(get_args(tp))
        elif isinstance(tp, type) and issubclass(tp, FhirBase):
            try:
                return tp.get_model_klass()
            except (AttributeError, TypeError, ValueError):
                return None
    return None
