"""The FHIR proxy `/fhir/<path>`: bearer token, scopes and patient compartment, then upstream.

A Backend Services token (client_credentials) is held to its `system/` scopes, with no
patient compartment; a launch's token to its patient/user scopes. Denied requests get an
OperationOutcome (401 with WWW-Authenticate for a missing, bad or
expired token; 403 naming what the scopes refuse). Allowed ones are forwarded with their
body; absolute upstream URLs in JSON bodies and Location headers are rewritten to the
sandbox's `/fhir` base. Non-JSON answers (Binary) are streamed back. For searches allowed
only by `patient/` scopes, `_include`d resources outside the patient's record are removed
(with an OperationOutcome entry saying so); HAPI paging links work for the token that ran
the search and no other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import requests
from flask import Blueprint, Response, request

from .backend_services import GRANT_TYPE as BACKEND_GRANT
from .keys import TokenError
from .scopes import Decision, FhirRequest, decide, resource_in_compartment, token_scopes
from .state import sandbox

TIMEOUT_S = 60
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
FORWARD_REQUEST_HEADERS = (
    "Accept",
    "Content-Type",
    "Prefer",
    "If-Match",
    "If-None-Match",
    "If-None-Exist",
    "If-Modified-Since",
    "X-Security-Context",
)
DROP_RESPONSE_HEADERS = frozenset(
    {"connection", "content-length", "content-encoding", "transfer-encoding", "keep-alive"}
)
PAGE_ID = re.compile(r"_getpages=([A-Za-z0-9-]+)")
#: Parameters a HAPI paging link (`{base}?_getpages=…`) carries besides `_getpages`.
PAGING_PARAMS = frozenset({"_getpages", "_getpagesoffset", "_count", "_bundletype", "_pretty"})

bp = Blueprint("sandbox_proxy", __name__)


def outcome(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> Response:
    """An OperationOutcome response with one error issue."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return Response(
        json.dumps(body), status=status, mimetype="application/fhir+json", headers=headers
    )


def rewrite_text(text: str, upstream: str, fhir_base: str) -> str:
    return text.replace(upstream, fhir_base)


def _unauthorized(description: str) -> Response:
    safe = description.replace('"', "'")
    header = f'Bearer realm="sandbox", error="invalid_token", error_description="{safe}"'
    return outcome(401, "login", description, {"WWW-Authenticate": header})


def _parse_body(raw: bytes, path: str) -> Any:
    """The JSON body; for a raw Binary, a stand-in carrying its X-Security-Context header."""
    if path.split("/")[0] == "Binary" and "json" not in (request.content_type or ""):
        context = request.headers.get("X-Security-Context")
        if raw and context:
            return {"resourceType": "Binary", "securityContext": {"reference": context}}
    if not raw or "json" not in (request.content_type or ""):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _owner_ok(ref: str, patient: str | None) -> bool | None:
    """True/False if `ref` upstream is/is not the patient's; None if it does not exist."""
    if not patient:
        return False
    state = sandbox()
    response = requests.get(
        f"{state.upstream}/{ref}", headers={"Accept": "application/fhir+json"}, timeout=TIMEOUT_S
    )
    if response.status_code in (404, 410):
        return None
    if response.status_code != 200:
        return False
    return resource_in_compartment(response.json(), patient)


def _own_page(path: str, query: dict[str, list[str]], jti: str) -> Decision | None:
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
    store = sandbox().store
    with store.lock:
        for page in PAGE_ID.findall(text):
            store.search_pages[page] = (jti, patient_scoped)


def _filter_includes(text: str, patient: str | None) -> str:
    """Drop `_include`d/`_revinclude`d entries outside the patient's record, and say so."""
    try:
        bundle = json.loads(text)
    except ValueError:
        return text
    if not isinstance(bundle, dict) or bundle.get("type") != "searchset":
        return text
    kept = []
    for entry in bundle.get("entry") or []:
        mode = (entry.get("search") or {}).get("mode")
        resource = entry.get("resource") or {}
        if mode != "include" or (patient and resource_in_compartment(resource, patient)):
            kept.append(entry)
    dropped = len(bundle.get("entry") or []) - len(kept)
    if not dropped:
        return text
    note = f"sandbox: {dropped} included resource(s) outside the launched patient's record removed"
    kept.append(
        {
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "warning", "code": "suppressed", "diagnostics": note}],
            },
            "search": {"mode": "outcome"},
        }
    )
    bundle["entry"] = kept
    return json.dumps(bundle)


def _forward(path: str, raw: bytes, jti: str, decision: Decision, patient: str | None) -> Response:
    state = sandbox()
    headers = {h: request.headers[h] for h in FORWARD_REQUEST_HEADERS if h in request.headers}
    upstream = requests.request(
        request.method,
        f"{state.upstream}/{path}" if path else state.upstream,
        params=request.query_string,
        data=raw or None,
        headers=headers,
        stream=True,
        timeout=TIMEOUT_S,
    )
    out_headers = [
        (name, rewrite_text(value, state.upstream, state.fhir_base))
        for name, value in upstream.headers.items()
        if name.lower() not in DROP_RESPONSE_HEADERS
    ]
    content_type = upstream.headers.get("Content-Type", "")
    if "json" in content_type or "xml" in content_type or "html" in content_type:
        with upstream:
            text = rewrite_text(upstream.text, state.upstream, state.fhir_base)
        _remember_pages(text, jti, decision.patient_scoped)
        if decision.patient_scoped and "$everything" not in path:
            text = _filter_includes(text, patient)
        return Response(text, status=upstream.status_code, headers=out_headers)

    def stream() -> Iterator[bytes]:
        with upstream:
            yield from upstream.iter_content(chunk_size=64 * 1024)

    return Response(stream(), status=upstream.status_code, headers=out_headers)


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

    raw = request.get_data() if request.method in ("POST", "PUT", "PATCH") else b""
    query = parse_qs(request.query_string.decode("utf-8"), keep_blank_values=True)
    if path.endswith("/_search") and "form" in (request.content_type or ""):
        for key, values in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items():
            query.setdefault(key, []).extend(values)
    system_token = claims.get("grant_type") == BACKEND_GRANT
    # A system token has no patient context: what it may do is its system/ scopes alone.
    patient = None if system_token else claims.get("patient")
    jti = str(claims.get("jti"))
    decision = _own_page(path, query, jti) or decide(
        FhirRequest(request.method, path, query, _parse_body(raw, path)),
        token_scopes(claims.get("scope"), system_token),
        patient,
    )
    if not decision.allowed:
        return outcome(403, "forbidden", f"refused by the granted scopes: {decision.reason}")
    for ref in decision.owner_checks:
        try:
            owner = _owner_ok(ref, patient)
        except requests.RequestException as problem:
            return outcome(502, "exception", f"upstream unavailable: {problem}")
        if owner is False:
            return outcome(
                403, "forbidden", f"refused: {ref} is not in the launched patient's record"
            )
    try:
        return _forward(path, raw, jti, decision, patient)
    except requests.RequestException as problem:
        return outcome(502, "exception", f"upstream unavailable: {problem}")
