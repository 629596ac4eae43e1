"""SMART scopes (v1 and v2): parsing, checks against a registration, and proxy decisions.

Pure code (no Flask, no network): https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
The proxy asks `decide()` whether a FHIR request is covered by the granted scopes; for
`patient/` scopes it also checks the patient compartment. `token_scopes()` keeps a Backend
Services token to its `system/` scopes and a launch's token away from them. Deny by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

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
#: Fields of a resource that put it in a patient's compartment (deny by default otherwise).
PATIENT_FIELDS = ("patient", "subject", "beneficiary", "for")
#: Types whose link to the patient is elsewhere (FHIR R4 compartment definition, simplified).
TYPE_PATIENT_FIELDS: dict[str, tuple[str, ...]] = {
    "Binary": ("securityContext",),
    "Provenance": ("target",),
    "AuditEvent": ("entity.what",),
}
#: Search parameters that bind a search to one patient.
PATIENT_PARAMS = ("patient", "subject")


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


@dataclass(frozen=True)
class FhirRequest:
    """What the proxy knows about a request: method, path below the base, query and body."""

    method: str
    path: str
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Decision:
    """The proxy's answer.

    `owner_checks` names `Type/id`s whose patient the proxy must verify upstream first;
    `patient_scoped` says only `patient/` scopes allowed it (so `_include`d resources of a
    search answer must be in the patient's compartment too).
    """

    allowed: bool
    reason: str = ""
    owner_checks: tuple[str, ...] = ()
    patient_scoped: bool = False


def _is_patient_ref(value: object, patient_id: str, local_refs: Iterable[str] = ()) -> bool:
    if not isinstance(value, str):
        return False
    if value in local_refs:
        return True
    return (
        value == patient_id
        or value == f"Patient/{patient_id}"
        or value.endswith(f"/Patient/{patient_id}")
    )


def resource_in_compartment(
    resource: Mapping[str, Any], patient_id: str, local_refs: Iterable[str] = ()
) -> bool:
    """True if `resource` is the patient or references it in a patient/subject-like field."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    local_refs = tuple(local_refs)
    fields = TYPE_PATIENT_FIELDS.get(str(resource.get("resourceType")), PATIENT_FIELDS)
    return any(
        isinstance(ref, Mapping) and _is_patient_ref(ref.get("reference"), patient_id, local_refs)
        for name in fields
        for ref in _values(resource, name.split("."))
    )


def _values(node: Any, path: list[str]) -> list[Any]:
    """The values at a dotted path, flattening lists on the way."""
    if not path:
        return node if isinstance(node, list) else [node]
    items = node if isinstance(node, list) else [node]
    out: list[Any] = []
    for item in items:
        if isinstance(item, Mapping) and path[0] in item:
            out.extend(_values(item[path[0]], path[1:]))
    return out


def _search_in_compartment(
    resource_type: str, query: Mapping[str, Sequence[str]], patient_id: str
) -> bool:
    names = ("_id",) if resource_type == "Patient" else PATIENT_PARAMS
    bound = False
    for key, values in query.items():
        base = key.split(":", 1)[0].split(".", 1)[0]
        if base not in names:
            continue
        for value in values:
            # Every value given must be the patient (a comma is an OR in FHIR search).
            if not all(_is_patient_ref(v, patient_id) for v in value.split(",")):
                return False
            bound = True
    return bound


def _check(
    scopes: Sequence[ResourceScope],
    resource_type: str,
    permission: str,
    in_compartment: bool | None,
    owner_ref: str = "",
) -> Decision:
    """Allow if a user/system scope covers it, or a patient scope and the compartment holds.

    `in_compartment` None means "only known after reading the resource" (owner check).
    """
    covering = [s for s in scopes if s.covers(resource_type, permission)]
    if any(s.context in ("user", "system") for s in covering):
        return Decision(True)
    if not covering:
        return Decision(False, f"no granted scope allows '{permission}' on {resource_type}")
    if in_compartment is False:
        return Decision(
            False, f"'{permission}' on {resource_type} is outside the launched patient's record"
        )
    if in_compartment is None:
        return Decision(True, owner_checks=(owner_ref,), patient_scoped=True)
    return Decision(True, patient_scoped=True)


def _decide_one(
    scopes: Sequence[ResourceScope],
    method: str,
    parts: list[str],
    query: Mapping[str, Sequence[str]],
    body: Any,
    patient_id: str | None,
    local_refs: Iterable[str] = (),
) -> Decision:
    method = method.upper()
    if not parts or not re.fullmatch(r"[A-Z][A-Za-z]+", parts[0]):
        return Decision(False, f"{method} /{'/'.join(parts)} is not allowed through the sandbox")
    rtype = parts[0]
    pid = patient_id or ""
    has_patient = patient_id is not None

    def body_ok() -> bool:
        return (
            has_patient
            and isinstance(body, Mapping)
            and body.get("resourceType") == rtype
            and resource_in_compartment(body, pid, local_refs)
        )

    if len(parts) == 1:
        if method == "GET":
            return _check(
                scopes, rtype, "s", has_patient and _search_in_compartment(rtype, query, pid)
            )
        if method == "POST":
            if rtype == "Patient":  # a patient-scoped app never creates another patient
                return _check(scopes, rtype, "c", False)
            return _check(scopes, rtype, "c", body_ok())
        if method in ("PUT", "PATCH"):  # conditional update
            return _check(scopes, rtype, "u", body_ok() and method == "PUT")
        if method == "DELETE":  # conditional delete
            return _check(
                scopes, rtype, "d", has_patient and _search_in_compartment(rtype, query, pid)
            )
    elif len(parts) == 2 and parts[1] == "_search" and method == "POST":
        return _check(scopes, rtype, "s", has_patient and _search_in_compartment(rtype, query, pid))
    elif len(parts) >= 2 and not parts[1].startswith(("$", "_")):
        rid = parts[1]
        ref = f"{rtype}/{rid}"
        is_patient = rtype == "Patient"
        if len(parts) == 2 or (parts[2] == "_history" and method == "GET"):
            # For other types the resource's patient is only known upstream: owner check.
            if method == "GET":
                return _check(scopes, rtype, "r", (rid == pid) if is_patient else None, ref)
            if method in ("PUT", "PATCH") and len(parts) == 2:
                if is_patient:
                    return _check(scopes, rtype, "u", has_patient and rid == pid)
                if method == "PUT" and not body_ok():
                    return _check(scopes, rtype, "u", False)
                return _check(scopes, rtype, "u", None, ref)
            if method == "DELETE" and len(parts) == 2:
                return _check(scopes, rtype, "d", (rid == pid) if is_patient else None, ref)
            return Decision(False, f"{method} on {ref} is not supported by the sandbox")
        if len(parts) == 3 and is_patient and parts[2] == "$everything":
            return _check(scopes, "Patient", "r", rid == pid)
        if len(parts) == 3 and is_patient and re.fullmatch(r"[A-Z][A-Za-z]+", parts[2]):
            # compartment search Patient/<id>/<Type>
            return _check(scopes, parts[2], "s", rid == pid)
    return Decision(False, f"{method} /{'/'.join(parts)} is not allowed through the sandbox")


def _decide_bundle(
    scopes: Sequence[ResourceScope], body: Mapping[str, Any], patient_id: str | None
) -> Decision:
    entries = body.get("entry") or []
    local_refs = tuple(
        e["fullUrl"]
        for e in entries
        if isinstance(e, Mapping) and str(e.get("fullUrl", "")).startswith("urn:uuid:")
    )
    owner_checks: list[str] = []
    for index, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, Mapping) else None
        if not isinstance(request, Mapping) or not request.get("method") or not request.get("url"):
            return Decision(False, f"Bundle entry {index} has no request method/url")
        url = str(request["url"])
        path, _, qs = url.partition("?")
        # Decoded as the server decodes them: "patient=Patient%2F12" is Patient/12.
        query = parse_qs(qs, keep_blank_values=True)
        decision = _decide_one(
            scopes,
            str(request["method"]),
            [p for p in path.split("/") if p],
            query,
            entry.get("resource"),
            patient_id,
            local_refs,
        )
        if not decision.allowed:
            return Decision(
                False, f"Bundle entry {index} ({request['method']} {url}): {decision.reason}"
            )
        owner_checks.extend(decision.owner_checks)
    return Decision(True, owner_checks=tuple(owner_checks))


def decide(request: FhirRequest, granted: Iterable[str], patient_id: str | None) -> Decision:
    """Decide whether `request` is allowed by the `granted` scopes for the launched patient."""
    scopes = [s for s in map(parse_resource_scope, granted) if s is not None]
    parts = [p for p in request.path.split("/") if p]
    if not parts and request.method.upper() == "POST":
        body = request.body
        if (
            isinstance(body, Mapping)
            and body.get("resourceType") == "Bundle"
            and body.get("type") in ("transaction", "batch")
        ):
            return _decide_bundle(scopes, body, patient_id)
        return Decision(False, "POST to the base must be a transaction or batch Bundle")
    return _decide_one(scopes, request.method, parts, request.query, request.body, patient_id)
