"""Copies of a client's resources for a document that stands alone (pure): which resources
a document must embed (those its sections list and, transitively, what they reference), and
each copy with every reference resolved inside the document.

https://hl7.org/fhir/R4/bundle.html#references: a document's references resolve to its own
entries' full URLs; one to anything not embedded keeps only its display (or says it was not
included), never a server's address.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from symfhir.fhir.reading import reference_id

NOT_INCLUDED = "not included in this summary"

Resource = dict[str, Any]


def embedded(pool: Mapping[str, Resource], start: list[str], skip: frozenset[str]) -> list[str]:
    """``start`` and, transitively, every resource of ``pool`` they reference (but those of
    the ``skip`` types), in order."""
    found: list[str] = []
    seen: set[str] = set()
    queue = deque(start)
    while queue:
        key = queue.popleft()
        if key in seen or key not in pool:
            continue
        seen.add(key)
        found.append(key)
        for _, reference in references(pool[key], ""):
            target = reference_target(reference)
            if target in pool and target not in seen and target.split("/")[0] not in skip:
                queue.append(target)
    return found


def reference_target(reference: str) -> str | None:
    """The "Type/id" a literal reference names (relative, absolute, versioned: the rules of
    ``reading.reference_id``); None for a contained, urn or malformed one."""
    if reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    kind = parts[-2] if len(parts) >= 2 else ""
    if not (kind[:1].isupper() and kind.isalpha()):
        return None
    rid = reference_id(reference, kind)
    return f"{kind}/{rid}" if rid else None


def references(node: object, path: str) -> Iterator[tuple[str, str]]:
    """(path, reference string) of every ``reference`` in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield f"{path}.reference", value
            else:
                yield from references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from references(item, f"{path}[{index}]")


def embed(
    resource: Resource,
    urls: Mapping[str, str],
    known: frozenset[str],
    key: str,
    strip: Mapping[str, tuple[tuple[str, ...], ...]],
) -> Resource:
    """A copy of ``resource`` (``key`` its "Type/id") for the document: its id the UUID of its
    full URL in ``urls`` ("Type/id" -> urn:uuid, ``known`` their values), without ``meta``
    and narrative, the ``strip`` paths of its type removed (type -> dotted paths, split),
    every reference resolved inside the document."""
    out = _copy(resource)
    out.pop("meta", None)
    out.pop("text", None)
    out["id"] = urls[key].removeprefix("urn:uuid:")
    for path in strip.get(str(out.get("resourceType")), ()):
        _drop(out, path)
    _rewrite(out, urls, known)
    return out


def _copy(resource: Resource) -> Resource:
    """A deep copy (JSON in, JSON out: orjson is several times faster than copy.deepcopy);
    anything not JSON is copied the slow way."""
    try:
        return orjson.loads(orjson.dumps(resource))
    except TypeError:
        return copy.deepcopy(resource)


def _drop(node: object, path: tuple[str, ...]) -> None:
    if isinstance(node, list):
        for item in node:
            _drop(item, path)
    elif isinstance(node, dict) and path and path[0] in node:
        if len(path) == 1:
            del node[path[0]]
        else:
            _drop(node[path[0]], path[1:])
            if node[path[0]] in ({}, []):
                del node[path[0]]


def _rewrite(node: object, urls: Mapping[str, str], known: frozenset[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite(item, urls, known)
        return
    if not isinstance(node, dict):
        return
    reference = node.get("reference")
    # a Reference object met twice (shared within the input) is rewritten once
    if isinstance(reference, str) and not reference.startswith("#") and reference not in known:
        target = reference_target(reference)
        if target in urls:
            node["reference"] = urls[target]
        else:
            del node["reference"]
            if not node.get("display") and not node.get("identifier"):
                node["display"] = NOT_INCLUDED
    for key, value in node.items():
        # Consent.provision.actor.reference is an element named "reference" holding a Reference
        if key != "reference" or not isinstance(value, str):
            _rewrite(value, urls, known)
