"""SMART scopes (v2 ``patient/Observation.rs?category=laboratory``, v1 ``patient/*.read``):
parsing, what a granted set allows, and which scopes a launch asks for.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html

Deny by default: a scope this module cannot read grants nothing, and a scope with a filter
(``?category=laboratory``) grants only searches carrying exactly that filter — never a read
by id, a write, or a search without it, because whether those stay inside the filter cannot
be known before the server answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

# v2 letters in the spec's order (c r u d s), or a v1 read/write/*; an optional filter.
SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>[A-Z][A-Za-z]*|\*)"
    r"\.(?:(?P<v2>c?r?u?d?s?)|(?P<v1>read|write|\*))(?:\?(?P<query>.*))?$"
)
V1 = {"read": "rs", "write": "cud", "*": "cruds"}
INTERACTIONS = frozenset("cruds")
#: Types the app writes as DocumentReference where the server cannot create them
#: (``symfhir.mapping.fallback``).
FALLBACK_TYPES = ("Consent", "Media")
FALLBACK = "DocumentReference"


@dataclass(frozen=True)
class Scope:
    """One resource scope: context (patient, user, system), type (or "*"), the interactions
    it grants (letters of cruds) and its filter as (name, value) pairs (empty: none)."""

    context: str
    resource_type: str
    interactions: frozenset[str]
    filter: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """The scope ``text`` names, or None when it is no resource scope (``openid``,
        ``launch``) or cannot be read (which then grants nothing)."""
        match = SCOPE.match(text)
        if match is None or not (match["v2"] or match["v1"]):
            return None
        letters = match["v2"] or V1[match["v1"]]
        query = match["query"]
        pairs: frozenset[tuple[str, str]] = frozenset()
        if query is not None:
            try:
                parsed = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
            except ValueError:
                return None
            if not parsed or any(not name or not value for name, value in parsed):
                return None
            pairs = frozenset(parsed)
        return cls(match["context"], match["type"], frozenset(letters), pairs)

    def grants(
        self,
        resource_type: str,
        interaction: str,
        query: Mapping[str, str | Sequence[str]] | None = None,
    ) -> bool:
        """Whether this scope alone allows ``interaction`` on ``resource_type`` (a search
        with ``query`` parameters when given)."""
        if self.resource_type not in (resource_type, "*") or interaction not in self.interactions:
            return False
        if not self.filter:
            return True
        return interaction == "s" and self.filter <= _pairs(query or {})


def parse_scopes(scopes: str | Iterable[str]) -> list[Scope]:
    """The resource scopes among ``scopes`` (a space-separated string or a list)."""
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    return [scope for scope in map(Scope.parse, items) if scope is not None]


def granted_scopes(token: Mapping[str, Any]) -> list[str]:
    """The ``scope`` of a token response as a list ([] when absent)."""
    scope = token.get("scope")
    return scope.split() if isinstance(scope, str) else []


def allows(
    scopes: Iterable[str],
    resource_type: str,
    interaction: str,
    query: Mapping[str, str | Sequence[str]] | None = None,
    *,
    contexts: tuple[str, ...] = ("patient", "user"),
) -> bool:
    """Whether ``scopes`` allow ``interaction`` (one of c r u d s) on ``resource_type``.

    ``query`` is a search's parameters: a filtered scope allows only a search (``s``) whose
    parameters include every name=value of its filter. Raises ValueError for an interaction
    that is not one of cruds.
    """
    if interaction not in INTERACTIONS or len(interaction) != 1:
        raise ValueError(f"interaction: {interaction!r} is not one of c, r, u, d, s")
    return any(
        scope.context in contexts and scope.grants(resource_type, interaction, query)
        for scope in parse_scopes(scopes)
    )


def allows_any(scopes: Iterable[str], interactions: str) -> list[str]:
    """The resource types (or "*") on which an unfiltered patient/user scope allows one of
    ``interactions``."""
    return [
        scope.resource_type
        for scope in parse_scopes(scopes)
        if scope.context in ("patient", "user")
        and not scope.filter
        and scope.interactions & set(interactions)
    ]


def can_write(scopes: Iterable[str]) -> bool:
    """Whether any patient/user scope allows create or update (v2 c/u, v1 write or *)."""
    return bool(allows_any(scopes, "cu"))


def with_fallback(scopes: str, can_create: Callable[[str], bool]) -> str:
    """``scopes`` plus, for each Consent/Media scope on a server that cannot create that type
    (so the app reads and writes it as a DocumentReference), the same scope on
    DocumentReference. Nothing is added for a server that needs no fallback."""
    items = scopes.split()
    added: list[str] = []
    for item in items:
        scope = Scope.parse(item)
        if scope is None or scope.resource_type not in FALLBACK_TYPES:
            continue
        if can_create(scope.resource_type):
            continue
        extra = item.replace(f"/{scope.resource_type}.", f"/{FALLBACK}.", 1)
        if extra not in items and extra not in added:
            added.append(extra)
    return " ".join(items + added)


def _pairs(query: Mapping[str, str | Sequence[str]]) -> frozenset[tuple[str, str]]:
    pairs = set()
    for name, value in query.items():
        values = [value] if isinstance(value, str) else list(value)
        pairs.update((name, v) for v in values)
    return frozenset(pairs)
