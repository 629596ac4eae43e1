"""The SMART App Launch 2 protocol, Flask-free: one module per spec part.

- ``discovery``: ``{iss}/.well-known/smart-configuration`` (and OpenID discovery for the
  issuer and keys when SMART's document lacks them)
- ``pkce``: RFC 7636 code verifier and S256 challenge
- ``launch``: state and nonce, the authorize URL, the callback's checks, the code exchange
- ``id_token``: OpenID Connect id_token checks (JWKS signature, iss, aud, exp, nonce) and the
  multi-factor sign-in requirement
- ``assertion``: the client's key and its private_key_jwt assertions (RFC 7523)
- ``token``: token endpoint requests and their errors (RFC 6749 §5)
- ``backend_services``: client_credentials tokens for unattended jobs
- ``scopes``: SMART v1/v2 scopes, what they allow (filters included), and what to ask for

Every failure is a ``symfhir.errors.SmartError`` carrying the spec's ``error`` code and a
description; the web app turns them into pages in one place, the CLI into exit codes.
"""
