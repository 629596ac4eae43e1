"""Whether the proxy lets a FHIR request through: granted scopes, then the patient compartment.

Pure code (no Flask, no network). `decide()` answers for one request (a transaction or batch
entry by entry). Under `user/` or `system/` scopes only the scopes count. Under `patient/`
scopes the request must stay inside the launched patient's record, as
`symfhir.fhir.compartment` defines it:
- a search, a conditional update or delete, and a conditional create's `If-None-Exist` are
  bound by a plain, exact compartment parameter (`patient=A`, `subject=Patient/A`, `_id=A`
  for Patient); modifiers and chains never bind. An unbound `If-None-Exist` is bound here
  (the criteria are narrowed to the patient's record); for Binary, which no search parameter
  ties to a patient, and for a resource that is the patient's only through another entry of
  its transaction, the proxy checks the matches instead (`criteria_checks`);
- a body is judged by its type's owner element, a PATCH may not touch it, and a resource
  read, changed or deleted by id is checked upstream first (`owner_checks`);
- no cascading delete, no response format the proxy cannot filter (XML, HTML, Turtle).
Instance operations are refused, but for those of `INSTANCE_OPERATIONS`, each allowed only
when a `user/` or `system/` scope allows the interaction it implies on the type.
Deny by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlencode

from symfhir.fhir.compartment import (
    compartment_search_params,
    in_compartment,
    search_binds,
)

from .patches import patch_refusal
from .paths import raw_path_ok, split_path
from .scopes import ResourceScope, parse_resource_scope

#: Response formats the proxy can read (and so filter); `_format` values and Accept types.
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "fhir+json"})
UNFILTERABLE_MEDIA = ("xml", "html", "turtle", "rdf")
_TYPE = re.compile(r"[A-Z][A-Za-z]+")
#: The instance operations the proxy lets through (POST [type]/[id]/$name), by the interaction
#: each implies: HAPI's `$expunge` erases a resource's stored versions (what a delete
#: leaves), `$meta-add`/`$meta-delete` change its tags as an update would. Never under
#: `patient/` scopes: an operation reaches versions (a deleted resource's too) whose owner
#: the proxy cannot read first.
INSTANCE_OPERATIONS = {"$expunge": "d", "$meta-add": "u", "$meta-delete": "u"}


@dataclass(frozen=True)
class FhirRequest:
    """What the proxy knows about a request: method, path below the base (checked by
    `paths`), query, parsed body and headers (lower-case names)."""

    method: str
    path: str
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The proxy's answer.

    `owner_checks` names `Type/id` (or a version, `Type/id/_history/v`) whose patient the
    proxy must verify upstream first; those in `absent_ok` may also not exist (a PUT creating
    it, a DELETE). `patient_scoped` says only `patient/` scopes allowed it, so the answer is
    filtered to the patient's record. `if_none_exist` is the header to send instead of the
    client's (for a patient's token, none is sent otherwise), `entry_if_none_exist` the
    same for transaction entries (index, criteria);
    `criteria_checks` are `Type?criteria` searches whose every match must be the patient's
    (directly, or through the resources its owner element names).
    """

    allowed: bool
    reason: str = ""
    owner_checks: tuple[str, ...] = ()
    absent_ok: tuple[str, ...] = ()
    patient_scoped: bool = False
    if_none_exist: str | None = None
    entry_if_none_exist: tuple[tuple[int, str], ...] = ()
    criteria_checks: tuple[str, ...] = ()


def _refuse(reason: str) -> Decision:
    return Decision(False, reason)


def search_bound(
    resource_type: str, query: Mapping[str, Sequence[str]], patient_id: str | None
) -> bool:
    """True when a plain, exact compartment parameter restricts the search to the patient
    (search parameters are ANDed, so one binding pair is enough)."""
    if not patient_id:
        return False
    return any(
        search_binds(resource_type, name, value, patient_id)
        for name, values in query.items()
        for value in values
    )


def bind_criteria(resource_type: str, criteria: str, patient_id: str) -> str | None:
    """Conditional-create criteria restricted to the patient's record.

    Criteria already bound are kept. Otherwise the type's first compartment parameter is
    added, so that a match can only be one of the patient's resources. None for a type
    without one (Binary): the proxy must then check every match upstream.
    """
    if search_bound(resource_type, parse_qs(criteria, keep_blank_values=True), patient_id):
        return criteria
    params = compartment_search_params(resource_type)
    if not params:
        return None
    name = "patient" if "patient" in params else params[0]
    binding = urlencode({name: patient_id if name == "_id" else f"Patient/{patient_id}"})
    return f"{criteria}&{binding}" if criteria else binding


def _check(
    scopes: Sequence[ResourceScope],
    resource_type: str,
    permission: str,
    in_record: bool | None,
    owner_ref: str = "",
    absent_ok: bool = False,
) -> Decision:
    """Allow if a user/system scope covers it, or a patient scope and the compartment holds.

    `in_record` None means "only known after reading the resource" (owner check).
    """
    covering = [s for s in scopes if s.covers(resource_type, permission)]
    if any(s.context in ("user", "system") for s in covering):
        return Decision(True)
    if not covering:
        return _refuse(f"no granted scope allows '{permission}' on {resource_type}")
    if in_record is False:
        return _refuse(
            f"'{permission}' on {resource_type} is outside the launched patient's record"
        )
    if in_record is None:
        return Decision(
            True,
            owner_checks=(owner_ref,),
            absent_ok=(owner_ref,) if absent_ok else (),
            patient_scoped=True,
        )
    return Decision(True, patient_scoped=True)


def _patient_limits(decision: Decision, query: Mapping[str, Sequence[str]]) -> Decision:
    """What no patient's token may ask for, whatever it reads: cascades and formats the
    proxy cannot filter."""
    if not decision.allowed or not decision.patient_scoped:
        return decision
    if "_cascade" in query:
        return _refuse("a cascading delete is not allowed for a patient's token")
    # An unescaped "+" in "_format=application/fhir+json" arrives as a space.
    formats = [v.strip().lower().replace(" ", "+") for v in query.get("_format", [])]
    if any(f not in JSON_FORMATS for f in formats):
        return _refuse("only JSON (_format=json) answers are available to a patient's token")
    return decision


@dataclass(frozen=True)
class _One:
    """One request (or transaction entry) being decided."""

    scopes: Sequence[ResourceScope]
    method: str
    parts: list[str]
    query: Mapping[str, Sequence[str]]
    body: Any
    patient_id: str | None
    aliases: Mapping[str, str]
    if_none_exist: str | None


def _body_ok(one: _One, resource_type: str) -> bool:
    body = one.body
    return (
        one.patient_id is not None
        and isinstance(body, Mapping)
        and body.get("resourceType") == resource_type
        and in_compartment(body, one.patient_id, one.aliases)
    )


def _type_level(one: _One, rtype: str) -> Decision:
    pid = one.patient_id
    bound = search_bound(rtype, one.query, pid)
    if one.method == "GET":
        return _check(one.scopes, rtype, "s", bound)
    if one.method == "POST":
        if rtype == "Patient":  # a patient-scoped app never creates another patient
            return _check(one.scopes, rtype, "c", False)
        decision = _check(one.scopes, rtype, "c", _body_ok(one, rtype))
        if not decision.patient_scoped or one.if_none_exist is None or pid is None:
            return decision
        # The server checks that a created resource satisfies its criteria: narrowed ones
        # only fit a resource naming the patient itself, not through another entry (the
        # upload's Provenance of its Media), so those are checked upstream instead.
        direct = in_compartment(one.body, pid)
        criteria = bind_criteria(rtype, one.if_none_exist, pid) if direct else None
        if criteria is not None:
            return replace(decision, if_none_exist=criteria)
        return replace(
            decision,
            if_none_exist=one.if_none_exist,
            criteria_checks=(f"{rtype}?{one.if_none_exist}",),
        )
    if one.method == "PUT":  # conditional update: the match, and what is written
        return _check(one.scopes, rtype, "u", bound and _body_ok(one, rtype))
    if one.method == "PATCH":  # conditional patch: never for a patient's token
        return _check(one.scopes, rtype, "u", False)
    if one.method == "DELETE":  # conditional delete
        return _check(one.scopes, rtype, "d", bound)
    return _refuse(f"{one.method} on {rtype} is not supported by the sandbox")


def _instance(one: _One, rtype: str, rid: str, rest: list[str]) -> Decision:
    """`Type/id`, `Type/id/_history[/vid]` and `Patient/id/$everything|Type`."""
    pid = one.patient_id
    ref = f"{rtype}/{rid}"
    is_patient = rtype == "Patient"
    own = (rid == pid) if is_patient else None
    method = one.method
    if not rest:
        if method == "GET":
            return _check(one.scopes, rtype, "r", own, ref)
        if method == "PUT":
            if not _body_ok(one, rtype) or one.body.get("id") != rid:
                return _check(one.scopes, rtype, "u", False)
            return _check(one.scopes, rtype, "u", own, ref, absent_ok=True)
        if method == "PATCH":
            decision = _check(one.scopes, rtype, "u", own, ref)
            refusal = patch_refusal(rtype, one.body) if decision.patient_scoped else None
            return _refuse(refusal) if refusal else decision
        if method == "DELETE":
            return _check(one.scopes, rtype, "d", own, ref, absent_ok=True)
    elif rest[0] == "_history" and len(rest) <= 2 and method == "GET":
        # A version is judged by its own content: the resource may since have been deleted.
        version_ref = "/".join([ref, *rest]) if len(rest) == 2 else ref
        return _check(one.scopes, rtype, "r", own, version_ref)
    elif len(rest) == 1 and rest[0] in INSTANCE_OPERATIONS and method == "POST":
        return _operation(one, rtype, rest[0])
    elif is_patient and len(rest) == 1 and method == "GET":
        if rest[0] == "$everything":
            return _check(one.scopes, "Patient", "r", rid == pid)
        if _TYPE.fullmatch(rest[0]):  # compartment search Patient/<id>/<Type>
            return _check(one.scopes, rest[0], "s", rid == pid)
    return _refuse(f"{method} /{'/'.join([ref, *rest])} is not allowed through the sandbox")


def _operation(one: _One, rtype: str, name: str) -> Decision:
    """An instance operation of `INSTANCE_OPERATIONS`: a `user/` or `system/` scope must allow
    its interaction on the type, and its body, if any, be a Parameters resource."""
    interaction = INSTANCE_OPERATIONS[name]
    body = one.body
    if body is not None and not (
        isinstance(body, Mapping) and body.get("resourceType") == "Parameters"
    ):
        return _refuse(f"{name} takes a Parameters resource")
    if any(s.context in ("user", "system") and s.covers(rtype, interaction) for s in one.scopes):
        return Decision(True)
    return _refuse(
        f"{name} on {rtype} needs a user/ or system/ scope allowing '{interaction}' on {rtype}"
    )


def _decide_one(one: _One) -> Decision:
    parts = one.parts
    where = f"{one.method} /{'/'.join(parts)}"
    if not parts or not _TYPE.fullmatch(parts[0]):
        return _refuse(f"{where} is not allowed through the sandbox")
    rtype = parts[0]
    if len(parts) == 1:
        decision = _type_level(one, rtype)
    elif parts[1] == "_search" and len(parts) == 2 and one.method == "POST":
        decision = _check(one.scopes, rtype, "s", search_bound(rtype, one.query, one.patient_id))
    elif not parts[1].startswith(("$", "_")):
        decision = _instance(one, rtype, parts[1], parts[2:])
    else:
        decision = _refuse(f"{where} is not allowed through the sandbox")
    return _patient_limits(decision, one.query)


def _aliases(entries: Sequence[Any], patient_id: str | None) -> dict[str, str]:
    """`urn:uuid:` full URLs of the bundle's resources that are the patient's, mapped to
    the patient: a reference to one of them (a Provenance's target) counts as the patient."""
    if not patient_id:
        return {}
    aliases: dict[str, str] = {}
    grew = True
    while grew:
        grew = False
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            url, resource = str(entry.get("fullUrl", "")), entry.get("resource")
            if not url.startswith("urn:uuid:") or url in aliases:
                continue
            if isinstance(resource, Mapping) and in_compartment(resource, patient_id, aliases):
                aliases[url] = patient_id
                grew = True
    return aliases


def _entry_parts(url: str) -> tuple[list[str] | None, dict[str, list[str]]]:
    path, _, qs = url.partition("?")
    if "://" in path or not raw_path_ok(path):
        return None, {}
    # Decoded as the server decodes them: "patient=Patient%2F12" is Patient/12.
    return split_path(path.strip("/")), parse_qs(qs, keep_blank_values=True)


def _decide_bundle(
    scopes: Sequence[ResourceScope], body: Mapping[str, Any], patient_id: str | None
) -> Decision:
    entries = body.get("entry") or []
    aliases = _aliases(entries, patient_id)
    owner_checks: list[str] = []
    absent_ok: list[str] = []
    criteria_checks: list[str] = []
    rewrites: list[tuple[int, str]] = []
    patient_scoped = False
    for index, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, Mapping) else None
        if not isinstance(request, Mapping) or not request.get("method") or not request.get("url"):
            return _refuse(f"Bundle entry {index} has no request method/url")
        method, url = str(request["method"]).upper(), str(request["url"])
        parts, query = _entry_parts(url)
        if parts is None:
            return _refuse(f"Bundle entry {index} ({method} {url}): not a plain FHIR path")
        criteria = request.get("ifNoneExist")
        decision = _decide_one(
            _One(
                scopes,
                method,
                parts,
                query,
                entry.get("resource"),
                patient_id,
                aliases,
                str(criteria) if criteria is not None and method == "POST" else None,
            )
        )
        if decision.allowed and decision.patient_scoped and method == "PATCH":
            # A JSON Patch travels as a Binary whose content the proxy does not decode.
            resource = entry.get("resource")
            if not isinstance(resource, Mapping) or resource.get("resourceType") != "Parameters":
                decision = _refuse("a PATCH entry must be a FHIRPath Patch (Parameters)")
        if not decision.allowed:
            return _refuse(f"Bundle entry {index} ({method} {url}): {decision.reason}")
        owner_checks.extend(decision.owner_checks)
        absent_ok.extend(decision.absent_ok)
        criteria_checks.extend(decision.criteria_checks)
        if decision.if_none_exist is not None and decision.if_none_exist != criteria:
            rewrites.append((index, decision.if_none_exist))
        patient_scoped = patient_scoped or decision.patient_scoped
    return Decision(
        True,
        owner_checks=tuple(owner_checks),
        absent_ok=tuple(absent_ok),
        patient_scoped=patient_scoped,
        entry_if_none_exist=tuple(rewrites),
        criteria_checks=tuple(criteria_checks),
    )


def _unfilterable_accept(accept: str) -> bool:
    media = [item.split(";")[0].strip().lower() for item in accept.split(",")]
    return any(any(word in m for word in UNFILTERABLE_MEDIA) for m in media)


def decide(request: FhirRequest, granted: Iterable[str], patient_id: str | None) -> Decision:
    """Decide whether `request` is allowed by the `granted` scopes for the launched patient."""
    scopes = [s for s in map(parse_resource_scope, granted) if s is not None]
    parts = [p for p in request.path.split("/") if p]
    method = request.method.upper()
    headers = request.headers
    if not parts and method == "POST":
        body = request.body
        if (
            isinstance(body, Mapping)
            and body.get("resourceType") == "Bundle"
            and body.get("type") in ("transaction", "batch")
        ):
            decision = _patient_limits(_decide_bundle(scopes, body, patient_id), request.query)
        else:
            return _refuse("POST to the base must be a transaction or batch Bundle")
    else:
        one = _One(
            scopes,
            method,
            parts,
            request.query,
            request.body,
            patient_id,
            {},
            headers.get("if-none-exist") if method == "POST" else None,
        )
        decision = _decide_one(one)
    if not decision.allowed or not decision.patient_scoped:
        return decision
    if "x-cascade" in headers:
        return _refuse("a cascading delete is not allowed for a patient's token")
    binary_read = method == "GET" and len(parts) >= 2 and parts[0] == "Binary"
    if not binary_read and _unfilterable_accept(headers.get("accept", "")):
        return _refuse("only JSON answers are available to a patient's token")
    return decision
