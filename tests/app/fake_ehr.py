"""A fake SMART EHR on pytest-httpserver: discovery, token endpoint (checks the client
assertion, PKCE and the code; client_credentials for the app's Backend Services audit
channel), JWKS, and a tiny FHIR server (Patient search, AuditEvent)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FHIR_JSON = "application/fhir+json"


class FakeEhr:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.iss = server.url_for("/fhir").rstrip("/")
        self.issuer = server.url_for("/").rstrip("/")
        self.token_url = server.url_for("/auth/token")
        self.key = RSAKey.generate_key(2048, parameters={"kid": "ehr-1"}, private=True)
        self.app_jwks: dict[str, Any] = {}
        self.client_id = "symfhir"
        self.patient_id = "p1"
        self.fhir_user = "Practitioner/dr1"
        self.granted_scope = (
            "openid fhirUser launch offline_access patient/Patient.r patient/Observation.rs "
            "patient/Consent.crus patient/AuditEvent.c"
        )
        self.codes: dict[str, dict[str, Any]] = {}
        self.seen_jti: set[str] = set()
        self.token_error: str | None = None
        self.id_token_claims: dict[str, Any] = {}
        self.id_token_key: RSAKey | None = None
        self.discovery_overrides: dict[str, Any] = {}
        self.need_patient_banner = True
        self.resources: list[dict[str, Any]] = []
        self.audit_events: list[dict[str, Any]] = []
        self.assertion_problems: list[str] = []
        self.expires_in = 3600
        self.refreshes = 0
        # Backend Services (client_credentials): what the app's registration allows, the
        # tokens issued, an error to answer with, and which token wrote each AuditEvent.
        self.system_scopes = {"system/AuditEvent.c"}
        self.system_expires_in = 300
        self.system_tokens: list[str] = []
        self.system_token_error: str | None = None
        self.audit_tokens: list[str] = []
        self.refuse_user_audit = False
        self.audit_failure: int | None = None  # AuditEvent create answers this status
        server.expect_request("/fhir/.well-known/smart-configuration").respond_with_handler(
            self._discovery
        )
        server.expect_request("/auth/jwks").respond_with_handler(
            lambda _: Response(json.dumps(KeySet([self.key]).as_dict(private=False)))
        )
        server.expect_request("/auth/token", method="POST").respond_with_handler(self._token)
        server.expect_request("/fhir/Patient", method="GET").respond_with_handler(self._search)
        server.expect_request("/fhir", method="POST").respond_with_handler(self._batch)
        self.failing_types: set[str] = set()
        self.next_link_types: set[str] = set()
        server.expect_request("/fhir/AuditEvent", method="POST").respond_with_handler(self._audit)

    # -- the browser's trip to authorize, done by the test -----------------------------------

    def authorize(self, location: str) -> tuple[str, dict[str, str]]:
        """Act as the user approving the authorize request; returns (code, its params)."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        code = secrets.token_urlsafe(16)
        self.codes[code] = params
        return code, params

    # -- handlers --------------------------------------------------------------------------

    def _discovery(self, _: Request) -> Response:
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": self.server.url_for("/auth/authorize"),
            "token_endpoint": self.token_url,
            "jwks_uri": self.server.url_for("/auth/jwks"),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "capabilities": ["launch-ehr", "launch-standalone", "client-confidential-asymmetric"],
        }
        document.update(self.discovery_overrides)
        return Response(json.dumps(document), content_type="application/json")

    def _token(self, request: Request) -> Response:
        form = request.form
        if self.token_error:
            return _json({"error": self.token_error, "error_description": "nope"}, 400)
        self._check_assertion(form.get("client_assertion", ""), form.get("client_assertion_type"))
        if form.get("grant_type") == "client_credentials":
            return self._system_token(form.get("scope", ""))
        if form.get("grant_type") == "refresh_token":
            if not form.get("refresh_token", "").startswith("REFRESH-"):
                return _json({"error": "invalid_grant"}, 400)
            self.refreshes += 1
            return _json(
                {
                    "access_token": "ACCESS-refreshed-" + secrets.token_urlsafe(8),
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": self.granted_scope,
                    "refresh_token": "REFRESH-" + secrets.token_urlsafe(16),
                }
            )
        params = self.codes.pop(form.get("code", ""), None)
        if params is None or form.get("grant_type") != "authorization_code":
            return _json({"error": "invalid_grant"}, 400)
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if challenge != params.get("code_challenge") or form.get("redirect_uri") != params.get(
            "redirect_uri"
        ):
            return _json({"error": "invalid_grant", "error_description": "pkce"}, 400)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "dr1",
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": params.get("nonce"),
            "fhirUser": self.fhir_user,
        }
        claims.update(self.id_token_claims)
        key = self.id_token_key or self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "ehr-1"}, claims, key)
        return _json(
            {
                "access_token": "ACCESS-" + secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "refresh_token": "REFRESH-" + secrets.token_urlsafe(16),
                "scope": self.granted_scope,
                "patient": self.patient_id,
                "need_patient_banner": self.need_patient_banner,
                "smart_style_url": self.server.url_for("/style.json"),
                "id_token": id_token,
            }
        )

    def _system_token(self, scope: str) -> Response:
        if self.system_token_error:
            return _json({"error": self.system_token_error}, 400)
        if not scope or not set(scope.split()) <= self.system_scopes:
            return _json({"error": "invalid_scope"}, 400)
        token = "SYSTEM-" + secrets.token_urlsafe(16)
        self.system_tokens.append(token)
        return _json(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.system_expires_in,
                "scope": scope,
            }
        )

    def _check_assertion(self, assertion: str, kind: str | None) -> None:
        if kind != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            self.assertion_problems.append("client_assertion_type")
        try:
            token = jwt.decode(
                assertion, KeySet.import_key_set(self.app_jwks), algorithms=["ES384", "RS384"]
            )
        except Exception as exc:
            self.assertion_problems.append(f"signature: {type(exc).__name__}")
            return
        c = token.claims
        if c.get("iss") != self.client_id or c.get("sub") != self.client_id:
            self.assertion_problems.append("iss/sub")
        if c.get("aud") != self.token_url:
            self.assertion_problems.append("aud")
        if not 0 < c.get("exp", 0) - time.time() <= 300:
            self.assertion_problems.append("exp")
        if c.get("jti") in self.seen_jti or not c.get("jti"):
            self.assertion_problems.append("jti")
        self.seen_jti.add(c.get("jti"))
        if token.header.get("alg") not in ("ES384", "RS384"):
            self.assertion_problems.append("alg")

    def _search(self, request: Request) -> Response:
        if not request.headers.get("Authorization", "").startswith("Bearer ACCESS-"):
            return _json({"resourceType": "OperationOutcome"}, 401)
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": r,
                    "search": {"mode": "match" if r["resourceType"] == "Patient" else "include"},
                }
                for r in self.resources
            ],
        }
        return Response(json.dumps(bundle), content_type=FHIR_JSON)

    def _batch(self, request: Request) -> Response:
        if not request.headers.get("Authorization", "").startswith("Bearer ACCESS-"):
            return _json({"resourceType": "OperationOutcome"}, 401)
        bundle = json.loads(request.get_data())
        assert bundle["type"] == "batch"
        entries = []
        for entry in bundle["entry"]:
            assert entry["request"]["method"] == "GET"
            url = entry["request"]["url"]
            path, _, query = url.partition("?")
            rtype = path.split("/")[0]
            if rtype in self.failing_types:
                entries.append({"response": {"status": "403 Forbidden"}})
                continue
            if "/" in path:
                found = [
                    r
                    for r in self.resources
                    if r["resourceType"] == "Patient" and r.get("id") == path.split("/")[1]
                ]
                if found:
                    entries.append({"resource": found[0], "response": {"status": "200 OK"}})
                else:
                    entries.append({"response": {"status": "404 Not Found"}})
                continue
            params = parse_qs(query)
            ref = (params.get("patient") or params.get("subject"))[0]
            matches = [
                r
                for r in self.resources
                if r["resourceType"] == rtype
                and ref
                in (
                    (r.get("patient") or {}).get("reference"),
                    (r.get("subject") or {}).get("reference"),
                )
            ]
            searchset = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r, "search": {"mode": "match"}} for r in matches],
            }
            if rtype in self.next_link_types:
                searchset["link"] = [{"relation": "next", "url": self.iss + "?page=2"}]
            entries.append({"resource": searchset, "response": {"status": "200 OK"}})
        answer = {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
        return Response(json.dumps(answer), content_type=FHIR_JSON)

    def _audit(self, request: Request) -> Response:
        authorization = request.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ")
        if not (token.startswith("ACCESS-") or token in self.system_tokens):
            return _json({"resourceType": "OperationOutcome"}, 401)
        if self.refuse_user_audit and token.startswith("ACCESS-"):
            return _json({"resourceType": "OperationOutcome"}, 403)
        if self.audit_failure:
            return _json({"resourceType": "OperationOutcome"}, self.audit_failure)
        self.audit_tokens.append(token)
        event = json.loads(request.get_data())
        self.audit_events.append(event)
        event = {**event, "id": f"a{len(self.audit_events)}", "meta": {"versionId": "1"}}
        return Response(
            json.dumps(event),
            status=201,
            content_type=FHIR_JSON,
            headers={"Location": self.server.url_for(f"/fhir/AuditEvent/{event['id']}/_history/1")},
        )

    def requests_to(self, path_prefix: str) -> list[Request]:
        return [r for r, _ in self.server.log if r.path.startswith(path_prefix)]


def _json(document: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, content_type="application/json")
