"""Sandbox EHR: a local SMART App Launch authorization server, launcher and FHIR proxy.

Dev/test stand-in for a real EHR, modelled on smart-on-fhir/smart-launcher-v2. The app
(`smart_app`) must never import it; it is started by the demo and by tests.

Endpoints (B = SANDBOX_BASE_URL):
    GET  /                                  launcher page (practitioner, patient, app URL, type,
                                            scopes, simulated error)
    GET  /launcher/open                     the launcher form's target (redirect to a
                                            registered launch URL only)
    GET  /ehr?app=<url>                     fake EHR chrome with the app in an iframe
                                            (registered launch URLs only)
    POST /api/launch                        {patient, practitioner?, encounter?, client_id?,
                                            launch_url?, scope?, error?} -> {"url":
                                            "<launch_url>?iss=B/fhir&launch=<code>"}; the code
                                            is for client_id (default: the client registered
                                            with launch_url, else the first), usable once
    GET  /.well-known/smart-configuration   SMART discovery (also under /fhir/)
    GET  /.well-known/openid-configuration  OIDC discovery (issuer, jwks_uri; also under /fhir/)
    GET  /.well-known/jwks.json             the sandbox's public signing key (RS256)
    GET  /authorize                         authorization code + PKCE S256, aud = B/fhir (POST too)
    POST /token                             authorization_code and refresh_token grants;
                                            client_credentials (SMART Backend Services)
    GET  /smart-style.json                  the smart_style_url
    GET  /fhir/metadata                     upstream CapabilityStatement + oauth-uris extension
    *    /fhir/<path>                       FHIR proxy: token, scopes, patient compartment
                                            (system tokens: their system/ scopes only)
                                            (raw Binary uploads: send X-Security-Context)

Configuration (mapping passed to create_sandbox, else environment variables of the same name):
    SANDBOX_BASE_URL        default http://localhost:5100
    SANDBOX_FHIR_UPSTREAM   default http://localhost:8080/fhir
    SANDBOX_CLIENTS         list of registrations: client_id, redirect_uris, scope (max allowed),
                            token_endpoint_auth_method (private_key_jwt | client_secret_basic |
                            none), jwks_uri or jwks, client_secret, launch_urls (where the
                            launcher may open the app; default /launch on the origin of each
                            redirect URI), system_scopes (the most a client_credentials
                            token may grant; needs private_key_jwt; default none: no such
                            grant; with it redirect_uris may be left out)
    SANDBOX_CLIENTS_FILE    TOML file with [[clients]] tables of the same keys
Default registration: client_id "symfhir", redirect_uris ["http://localhost:5000/callback"],
launch_urls ["http://localhost:5000/launch"],
private_key_jwt with jwks_uri "http://localhost:5000/.well-known/jwks.json" (config.DEFAULT_SCOPE),
system_scopes "system/AuditEvent.c" (the app's audit channel).

Simulated errors (launch code): invalid_client, invalid_redirect_uri (error page at
/authorize), invalid_scope (redirect with error=invalid_scope), invalid_secret (token
endpoint 401 invalid_client), token_expired (the access token is born expired),
token_invalid (the proxy answers 401).

Tokens: access tokens are RS256 JWTs (60 min) checked only by this sandbox; the id_token's
`iss` is B/fhir (the smart-configuration issuer), `aud` the client id, `fhirUser`
Practitioner/<id>. Client assertions (private_key_jwt) must be RS384 or ES384, aud = B/token,
exp at most 5 minutes ahead, jti never reused; a jwks_uri is fetched on every token request.
Backend Services (grant_type=client_credentials): the same assertion only (no secret, no
public client), `system/` scopes only and within the registration's system_scopes
(else invalid_scope; none registered: unauthorized_client); the token lasts 5 minutes, with
no refresh token, id_token or launch context.

Run: `scripts/serve sandbox` (gunicorn, `smart_app.sandbox.wsgi:app`, one process with
threads), or `python -m smart_app.sandbox` (werkzeug's threaded dev server). Keys and state are
in the memory of that one process and are lost on restart.
"""

from .app import create_sandbox

__all__ = ["create_sandbox"]
