"""Which PATCH bodies a patient's token may send: none that can touch whose record it is.

The proxy checks who owns a resource before a PATCH, not after it; a patch that rewrote the
owner element (`Observation.subject`) would move the resource into another patient's
record. So a patch may not name the owner element of its type (from
`symfhir.fhir.compartment`), `id` or `resourceType`, and a FHIRPath Patch path must be a
plain element path (no functions, no `where()`), so that what it names is plain to see.
JSON Patch: https://www.rfc-editor.org/rfc/rfc6902; FHIRPath Patch:
http://hl7.org/fhir/R4/fhirpatch.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from symfhir.fhir.compartment import owner_field

JSON_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
FHIRPATH_OPS = frozenset({"add", "insert", "delete", "replace", "move"})
_ELEMENT_PATH = re.compile(r"[A-Z][A-Za-z]+(?:\.[a-z][A-Za-z0-9]*(?:\[\d{1,4}\])?)*")
_NAME = re.compile(r"[a-z][A-Za-z0-9]*")


def _protected(resource_type: str) -> frozenset[str]:
    owner = owner_field(resource_type)
    names = {"resourceType", "id"}
    if owner:
        names.add(owner.split(".")[0])
    return frozenset(names)


def _pointer_root(pointer: object) -> str | None:
    """The first member a JSON Pointer names; None for the whole document or a bad pointer."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        return None
    first = pointer[1:].split("/", 1)[0].replace("~1", "/").replace("~0", "~")
    return first or None


def _json_patch_refusal(resource_type: str, ops: list[Any]) -> str | None:
    protected = _protected(resource_type)
    for index, op in enumerate(ops):
        if not isinstance(op, Mapping) or op.get("op") not in JSON_PATCH_OPS:
            return f"JSON Patch operation {index} is not one of {sorted(JSON_PATCH_OPS)}"
        for key in ("path", "from") if op["op"] in ("move", "copy") else ("path",):
            root = _pointer_root(op.get(key))
            if root is None or root in protected:
                return f"JSON Patch operation {index} may not change '{op.get(key)}'"
    return None


def _parts(parameter: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parameter.get("part") or []:
        if isinstance(part, Mapping) and isinstance(part.get("name"), str):
            values = [v for k, v in part.items() if k.startswith("value")]
            out[part["name"]] = values[0] if values else None
    return out


def _fhirpath_patch_refusal(resource_type: str, body: Mapping[str, Any]) -> str | None:
    protected = _protected(resource_type)
    for index, parameter in enumerate(body.get("parameter") or []):
        if not isinstance(parameter, Mapping) or parameter.get("name") != "operation":
            return f"FHIRPath Patch parameter {index} is not an operation"
        parts = _parts(parameter)
        path = parts.get("path")
        if parts.get("type") not in FHIRPATH_OPS:
            return f"FHIRPath Patch operation {index} has no known type"
        if not isinstance(path, str) or not _ELEMENT_PATH.fullmatch(path):
            return f"FHIRPath Patch operation {index}: the path must be a plain element path"
        steps = path.split(".")
        if steps[0] != resource_type:
            return f"FHIRPath Patch operation {index} is not about {resource_type}"
        touched = steps[1].split("[")[0] if len(steps) > 1 else parts.get("name")
        if len(steps) == 1 and parts.get("type") != "add":
            return f"FHIRPath Patch operation {index} may not change the whole resource"
        if not isinstance(touched, str) or not _NAME.fullmatch(touched) or touched in protected:
            return f"FHIRPath Patch operation {index} may not change '{touched}'"
    return None


def patch_refusal(resource_type: str, body: Any) -> str | None:
    """Why a PATCH of a resource of this type may not be sent for a patient's token; None
    when it may. `body` is the parsed JSON Patch (a list) or FHIRPath Patch (Parameters)."""
    if isinstance(body, list):
        return _json_patch_refusal(resource_type, body)
    if isinstance(body, Mapping) and body.get("resourceType") == "Parameters":
        return _fhirpath_patch_refusal(resource_type, body)
    return "a PATCH body must be a JSON Patch or a FHIRPath Patch (Parameters) in JSON"
