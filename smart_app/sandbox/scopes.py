"""SMART scopes (v1 and v2): parsing, and checks against a registration.

Pure code (no Flask, no network): https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
`token_scopes()` keeps a Backend Services token to its `system/` scopes and a launch's token
away from them; what a request may do under them is `decisions.decide()`. Deny by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Scopes that are not about FHIR resources; a registration must list them to grant them.
NON_RESOURCE_SCOPES = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
    }
)
#: v2 permission letters, in the order the spec requires them.
PERMISSION_ORDER = "cruds"
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)$")


@dataclass(frozen=True)
class ResourceScope:
    """One parsed resource scope, e.g. `patient/Observation.rs` or v1 `patient/*.read`."""

    context: str  # patient | user | system
    resource_type: str  # a type or "*"
    permissions: frozenset[str]
    text: str

    def covers(self, resource_type: str, permission: str) -> bool:
        return self.resource_type in ("*", resource_type) and permission in self.permissions

    def includes(self, other: ResourceScope) -> bool:
        return (
            self.context == other.context
            and self.resource_type in ("*", other.resource_type)
            and other.permissions <= self.permissions
        )


def parse_resource_scope(text: str) -> ResourceScope | None:
    """Parse a v1 or v2 resource scope; None if `text` is not one (or is malformed)."""
    match = _RESOURCE_SCOPE.match(text)
    if not match:
        return None
    context, resource_type, perms = match.groups()
    if perms in V1_PERMISSIONS:
        letters = V1_PERMISSIONS[perms]
    else:
        # v2: a non-empty subset of c r u d s in that order, each at most once.
        positions = [PERMISSION_ORDER.find(letter) for letter in perms]
        if -1 in positions or positions != sorted(set(positions)):
            return None
        letters = perms
    return ResourceScope(context, resource_type, frozenset(letters), text)


def split_scope(scope: str | None) -> list[str]:
    return [item for item in (scope or "").split() if item]


def token_scopes(scope: str | None, system_token: bool) -> list[str]:
    """The scopes a token may use at the proxy.

    A Backend Services (client_credentials) token acts for no user and no patient: only its
    `system/` scopes count. A launch's token never gets `system/` rights, even if a
    registration lets the code grant hand them out: those are for backend services only.
    """
    out = []
    for item in split_scope(scope):
        parsed = parse_resource_scope(item)
        is_system = parsed is not None and parsed.context == "system"
        if is_system == system_token:
            out.append(item)
    return out


def narrow_scopes(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The part of `requested` that `allowed` covers, as the EHR grants it.

    A launch (the EHR user's rights) may allow less than the app asks for; like a real EHR,
    the sandbox then grants the overlap — `patient/Consent.crus` under `patient/*.rs`
    becomes `patient/Consent.rs` — and the token response's `scope` says so. Scopes with
    nothing left are dropped.
    """
    allowed = list(allowed)
    grants = [g for g in map(parse_resource_scope, allowed) if g is not None]
    out = []
    for item in requested:
        parsed = parse_resource_scope(item)
        if parsed is None:
            if item in allowed:
                out.append(item)
            continue
        permitted: set[str] = set()
        for grant in grants:
            if grant.context == parsed.context and grant.resource_type in (
                "*",
                parsed.resource_type,
            ):
                permitted |= grant.permissions
        kept = parsed.permissions & permitted
        if kept == parsed.permissions:
            out.append(item)
        elif kept:
            letters = "".join(c for c in PERMISSION_ORDER if c in kept)
            out.append(f"{parsed.context}/{parsed.resource_type}.{letters}")
    return out


def disallowed_scopes(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The requested scopes that the registration's `allowed` scopes do not cover."""
    allowed = list(allowed)
    allowed_resources = [s for s in map(parse_resource_scope, allowed) if s is not None]
    refused = []
    for item in requested:
        parsed = parse_resource_scope(item)
        if parsed is None:
            if item not in allowed:
                refused.append(item)
        elif not any(grant.includes(parsed) for grant in allowed_resources):
            refused.append(item)
    return refused
