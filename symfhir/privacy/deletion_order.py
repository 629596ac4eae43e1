"""What references what among one client's resources, and the order their deletion takes so
that the server's referential integrity is honoured (referrers first) and a stopped run can be
resumed. Pure; used by ``symfhir.privacy.retention``."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any


def ref_key(reference: object) -> str | None:
    """``Type/id`` of a literal reference (relative, versioned or absolute); None otherwise."""
    if not isinstance(reference, str) or not reference or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not parts[-2][:1].isupper() or not parts[-1]:
        return None
    return f"{parts[-2]}/{parts[-1]}"


def _references(node: Any, out: list[str], attached: list[str]) -> None:
    # Iterative would be no faster here: resources nest a few levels only.
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference":
                found = ref_key(value)
                if found:
                    out.append(found)
            elif key == "url" and isinstance(value, str) and "Binary/" in value:
                found = ref_key(value)
                if found and found.startswith("Binary/"):
                    attached.append(found)
            elif isinstance(value, (dict, list)):
                _references(value, out, attached)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _references(value, out, attached)


def references_of(
    resource: Mapping[str, Any], weak_elements: frozenset[str] = frozenset()
) -> tuple[list[str], list[str], list[str]]:
    """The ``Type/id`` references a resource makes: (strong, weak, attached). Weak ones sit
    under a top-level element of ``weak_elements`` (a deletion may drop them); attached ones
    are the Binaries an Attachment's ``url`` names (a photo's bytes, a signed form's file),
    which the server does not hold as references."""
    strong: list[str] = []
    weak: list[str] = []
    attached: list[str] = []
    for key, value in resource.items():
        if key in ("meta", "text", "id", "resourceType") or not isinstance(value, (dict, list)):
            continue
        _references(value, weak if key in weak_elements else strong, attached)
    return strong, weak, attached


def referrers_first(
    going: set[str],
    strong: Mapping[str, list[str]],
    weak: Mapping[str, list[str]],
    attached: Mapping[str, list[str]],
) -> tuple[str, ...]:
    """The resources to delete, each after every other one that references it (Kahn's
    algorithm; what a cycle holds comes last and the server decides).

    Two exceptions keep a run stopped halfway resumable, since a re-run reads and classifies
    again: an attached Binary goes before the resource naming it (it is found only through
    that ``url``, which the server does not hold as a reference), and Consents go as late as
    references allow (they say what each photo is for)."""
    waiting = dict.fromkeys(going, 0)
    named_by: dict[str, list[str]] = {}

    def edge(first: str, then: str) -> None:
        if then in waiting and first in waiting and then != first:
            waiting[then] += 1
            named_by.setdefault(first, []).append(then)

    for key in going:
        for target in dict.fromkeys(strong[key] + weak[key]):
            edge(key, target)
        for binary in dict.fromkeys(attached[key]):
            edge(binary, key)
    ready = [(_rank(k), k) for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, key = heapq.heappop(ready)
        order.append(key)
        for target in named_by.get(key, []):
            waiting[target] -= 1
            if waiting[target] == 0:
                heapq.heappush(ready, (_rank(target), target))
    placed = set(order)
    order.extend(sorted(k for k in going if k not in placed))
    return tuple(order)


def _rank(key: str) -> int:
    return 1 if key.startswith("Consent/") else 0
