"""The FHIR proxy `/fhir/<path>`: bearer token, scopes and patient compartment, then upstream.

A Backend Services token (client_credentials) is held to its `system/` scopes, with no
patient compartment; a launch's token to its patient/user scopes (`decisions`). Denied
requests get an OperationOutcome (401 with WWW-Authenticate for a missing, bad or expired
token; 403 naming what is refused; 404 when a resource's owner cannot be established).

What a real EHR refuses, this proxy refuses before anything is forwarded:
- paths other than plain FHIR REST paths (`paths`): `..`, `.`, empty segments and
  percent-encoded `/`, `\\` or `.` never reach the upstream; the checked segments are what
  is forwarded;
- request bodies other than JSON, except raw Binary content (judged by its
  X-Security-Context header, the only case where that header is forwarded);
- for a patient's token: anything outside the patient's record (unbound or modified
  searches, conditional updates and deletes, bodies whose owner element names someone
  else, PATCHes of the owner element), cascading deletes (`_cascade`, `X-Cascade`), answers
  in formats the proxy cannot filter (`_format`/Accept XML, HTML, Turtle), reads of
  resources whose owner cannot be read (deleted ones); `If-None-Exist` criteria are bound
  to the patient before they are forwarded.

Allowed requests are forwarded with their body; absolute upstream URLs in answers and
Location headers are rewritten to the sandbox's `/fhir` base, and Bundle answers to a
patient's token are filtered to the patient's record and scopes (`responses`). Non-JSON
answers (Binary) are streamed back. HAPI paging links work for the token that ran the
search and no other. An unreachable upstream gives a 502 naming nothing about it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

import requests
from flask import Blueprint, Response, request

from symfhir.fhir.compartment import in_compartment, owner_references

from .backend_services import GRANT_TYPE as BACKEND_GRANT
from .decisions import Decision, FhirRequest, decide
from .keys import TokenError
from .paths import request_segments, split_path
from .responses import filter_text
from .scopes import ResourceScope, parse_resource_scope, token_scopes
from .state import sandbox

log = logging.getLogger(__name__)

TIMEOUT_S = 60
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
FHIR_JSON = "application/fhir+json"
FORWARD_REQUEST_HEADERS = (
    "Accept",
    "Content-Type",
    "Prefer",
    "If-Match",
    "If-None-Match",
    "If-None-Exist",
    "If-Modified-Since",
)
#: Decision inputs besides the path, query and body (lower-case, as `decide` reads them).
DECISION_HEADERS = ("accept", "if-none-exist", "x-cascade")
DROP_RESPONSE_HEADERS = frozenset(
    {"connection", "content-length", "content-encoding", "transfer-encoding", "keep-alive"}
)
#: Content types the upstream parses as a FHIR resource (not as raw Binary content).
RESOURCE_MEDIA = ("json", "xml", "turtle", "rdf", "html", "fhir", "form-urlencoded")
PAGE_ID = re.compile(r"_getpages=([A-Za-z0-9-]+)")
#: Parameters a HAPI paging link (`{base}?_getpages=…`) carries besides `_getpages`.
PAGING_PARAMS = frozenset({"_getpages", "_getpagesoffset", "_count", "_bundletype", "_pretty"})
UNAVAILABLE = "the FHIR server behind the sandbox is unavailable"

bp = Blueprint("sandbox_proxy", __name__)


class Refused(Exception):
    """A request the proxy answers itself, with `status` and `text`."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def outcome(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> Response:
    """An OperationOutcome response with one error issue."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return Response(json.dumps(body), status=status, mimetype=FHIR_JSON, headers=headers)


def rewrite_text(text: str, upstream: str, fhir_base: str) -> str:
    return text.replace(upstream, fhir_base)


def _unauthorized(description: str) -> Response:
    safe = description.replace('"', "'")
    header = f'Bearer realm="sandbox", error="invalid_token", error_description="{safe}"'
    return outcome(401, "login", description, {"WWW-Authenticate": header})


def _raw_binary(parts: list[str]) -> bool:
    """A Binary create/update whose body is the content itself (not a FHIR resource)."""
    content_type = (request.content_type or "").lower()
    return (
        parts[:1] == ["Binary"]
        and len(parts) <= 2
        and not any(word in content_type for word in RESOURCE_MEDIA)
    )


def _parse_body(raw: bytes, parts: list[str]) -> Any:
    """The JSON body (a JSON Patch is a list); for raw Binary content, a stand-in Binary
    carrying its X-Security-Context header. Raises Refused for any other body."""
    if not raw:
        return None
    content_type = (request.content_type or "").lower()
    if _raw_binary(parts):
        context = request.headers.get("X-Security-Context")
        if not context:
            return None
        stand_in = {"resourceType": "Binary", "securityContext": {"reference": context}}
        return {**stand_in, "id": parts[1]} if len(parts) == 2 else stand_in
    if parts[-1:] == ["_search"] and "form-urlencoded" in content_type:
        return None  # its parameters were merged into the query
    if "json" not in content_type:
        raise Refused(403, "only JSON bodies (or raw Binary content) are accepted")
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _owner(ref: str, patient: str | None) -> bool | None:
    """True/False if `ref` upstream is/is not the patient's; None if it cannot be read."""
    if not patient:
        return False
    response = requests.get(
        f"{sandbox().upstream}/{ref}", headers={"Accept": FHIR_JSON}, timeout=TIMEOUT_S
    )
    if response.status_code in (404, 410):
        return None
    if response.status_code != 200:
        return False
    return in_compartment(response.json(), patient)


def _check_owners(decision: Decision, patient: str | None) -> None:
    """Raises Refused unless every resource named is the patient's (or may be absent)."""
    for ref in decision.owner_checks:
        owner = _owner(ref, patient)
        if owner is None and ref not in decision.absent_ok:
            raise Refused(404, f"{ref} was not found in the launched patient's record")
        if owner is False:
            raise Refused(403, f"refused: {ref} is not in the launched patient's record")


def _patients(resource: Any, patient: str) -> bool:
    """Whether a resource is the patient's: in the compartment, or naming in its owner
    element only resources that are (an upload's Provenance of the patient's Media)."""
    if not isinstance(resource, dict):
        return False
    if in_compartment(resource, patient):
        return True
    refs = owner_references(resource)
    plain = [split_path(ref) for ref in refs]
    return bool(refs) and all(
        parts is not None and len(parts) == 2 and parts[0] != "Patient" and _owner(ref, patient)
        for ref, parts in zip(refs, plain, strict=True)
    )


def _check_criteria(decision: Decision, patient: str | None) -> None:
    """Conditional creates no parameter binds: every match must be the patient's, so that
    the answer says nothing about other patients' records."""
    for search in decision.criteria_checks:
        response = requests.get(
            f"{sandbox().upstream}/{search}", headers={"Accept": FHIR_JSON}, timeout=TIMEOUT_S
        )
        found = response.json() if response.status_code == 200 else None
        entries = found.get("entry") if isinstance(found, dict) else None
        if found is None or any(
            not (patient and _patients(e.get("resource"), patient)) for e in entries or []
        ):
            raise Refused(403, "refused: the If-None-Exist criteria are not the patient's")


def _own_page(path: str, query: Mapping[str, list[str]], jti: str) -> Decision | None:
    """A paging link of a search this token was allowed to run (ids recorded in _forward)."""
    if path or request.method != "GET" or not set(query) <= PAGING_PARAMS:
        return None
    pages = query.get("_getpages") or []
    store = sandbox().store
    with store.lock:
        owner = store.search_pages.get(pages[0]) if len(pages) == 1 else None
    if owner is None or owner[0] != jti:
        return None
    return Decision(True, patient_scoped=owner[1])


def _remember_pages(text: str, jti: str, patient_scoped: bool) -> None:
    """Record the paging ids of every link in the answer (those of searches nested in a
    batch answer too)."""
    store = sandbox().store
    with store.lock:
        for page in PAGE_ID.findall(text):
            store.search_pages[page] = (jti, patient_scoped)


def _bound_body(raw: bytes, decision: Decision) -> bytes:
    """The transaction with each entry's `ifNoneExist` bound to the patient."""
    if not decision.entry_if_none_exist:
        return raw
    bundle = json.loads(raw)
    for index, criteria in decision.entry_if_none_exist:
        bundle["entry"][index]["request"]["ifNoneExist"] = criteria
    return json.dumps(bundle).encode("utf-8")


def _request_headers(decision: Decision, parts: list[str]) -> dict[str, str]:
    headers = {h: request.headers[h] for h in FORWARD_REQUEST_HEADERS if h in request.headers}
    if decision.patient_scoped:
        headers.pop("If-None-Exist", None)  # only what decide() bound or checked is sent
    if decision.if_none_exist is not None:
        headers["If-None-Exist"] = decision.if_none_exist
    if _raw_binary(parts) and "X-Security-Context" in request.headers:
        headers["X-Security-Context"] = request.headers["X-Security-Context"]
    if parts[:1] != ["Binary"]:
        headers["Accept"] = FHIR_JSON  # the one format the answer can be filtered in
    return headers


def _forward(
    parts: list[str],
    raw: bytes,
    jti: str,
    decision: Decision,
    patient: str | None,
    scopes: list[ResourceScope],
) -> Response:
    state = sandbox()
    path = "/".join(parts)
    upstream = requests.request(
        request.method,
        f"{state.upstream}/{path}" if path else state.upstream,
        params=request.query_string,
        data=_bound_body(raw, decision) or None,
        headers=_request_headers(decision, parts),
        stream=True,
        timeout=TIMEOUT_S,
    )
    out_headers = [
        (name, rewrite_text(value, state.upstream, state.fhir_base))
        for name, value in upstream.headers.items()
        if name.lower() not in DROP_RESPONSE_HEADERS
    ]
    content_type = upstream.headers.get("Content-Type", "").lower()
    textual = any(word in content_type for word in ("json", "xml", "html", "turtle"))
    if parts[:1] != ["Binary"] and "json" not in content_type:
        upstream.close()
        if upstream.status_code in (204, 304) or not textual:
            return Response(status=upstream.status_code, headers=out_headers)
        raise Refused(403, "the upstream answered in a format the sandbox cannot filter")
    if textual:
        with upstream:
            text = rewrite_text(upstream.text, state.upstream, state.fhir_base)
        _remember_pages(text, jti, decision.patient_scoped)
        # Every token's Bundles: a user/ or system/ scope of some types must not reach the
        # others through `$everything` or `_include` either.
        text = filter_text(text, patient or "", scopes)
        return Response(text, status=upstream.status_code, headers=out_headers)

    def stream() -> Iterator[bytes]:
        with upstream:
            yield from upstream.iter_content(chunk_size=64 * 1024)

    return Response(stream(), status=upstream.status_code, headers=out_headers)


def _query(raw: bytes, parts: list[str]) -> dict[str, list[str]]:
    query = parse_qs(request.query_string.decode("utf-8"), keep_blank_values=True)
    if parts[-1:] == ["_search"] and "form-urlencoded" in (request.content_type or ""):
        for key, values in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items():
            query.setdefault(key, []).extend(values)
    return query


@bp.route("/fhir/", defaults={"path": ""}, methods=METHODS, strict_slashes=False)
@bp.route("/fhir/<path:path>", methods=METHODS)
def proxy(path: str) -> Response:
    state = sandbox()
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return _unauthorized("an access token issued by the sandbox is required")
    try:
        claims = state.key.verify(auth.removeprefix("Bearer ").strip(), kind="access")
    except TokenError as problem:
        return _unauthorized(str(problem))
    if claims.get("sim_error") == "token_invalid":
        return _unauthorized("simulated error: invalid token")

    parts = request_segments(request.environ.get("RAW_URI"), path)
    if parts is None:
        return outcome(403, "forbidden", "refused: not a plain FHIR REST path")
    system_token = claims.get("grant_type") == BACKEND_GRANT
    # A system token has no patient context: what it may do is its system/ scopes alone.
    patient = None if system_token else claims.get("patient")
    jti = str(claims.get("jti"))
    granted = token_scopes(claims.get("scope"), system_token)
    scopes = [s for s in map(parse_resource_scope, granted) if s is not None]
    raw = request.get_data() if request.method in ("POST", "PUT", "PATCH") else b""
    try:
        query = _query(raw, parts)
        headers = {h: request.headers[h] for h in DECISION_HEADERS if h in request.headers}
        decision = _own_page("/".join(parts), query, jti) or decide(
            FhirRequest(request.method, "/".join(parts), query, _parse_body(raw, parts), headers),
            granted,
            patient,
        )
        if not decision.allowed:
            return outcome(403, "forbidden", f"refused by the granted scopes: {decision.reason}")
        _check_owners(decision, patient)
        _check_criteria(decision, patient)
        return _forward(parts, raw, jti, decision, patient, scopes)
    except Refused as refusal:
        code = "not-found" if refusal.status == 404 else "forbidden"
        return outcome(refusal.status, code, refusal.text)
    except requests.RequestException as problem:
        # The exception's text names the upstream URL (and the ids in it): log its kind only.
        log.warning(
            "sandbox proxy: upstream failed for %s %s: %s",
            request.method,
            parts[0] if parts else "/",
            type(problem).__name__,
        )
        return outcome(502, "exception", UNAVAILABLE)
