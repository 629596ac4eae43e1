"""SMART Backend Services: a ``system/`` access token for unattended work (imports, audit
records, scheduled jobs) with client_credentials and a private_key_jwt client assertion.

https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.requests_client import OAuth2Session
from urllib3.util.retry import Retry

from symfhir.smart.assertion import ClientKey
from symfhir.smart.token import request_token, token_session

GRANT_TYPE = "client_credentials"


def backend_session(
    client_id: str,
    token_url: str,
    client_key: ClientKey,
    scope: str,
    *,
    timeout: float | tuple[float, float] = 10.0,
    retry: Retry | None = None,
) -> OAuth2Session:
    """A token session for ``client_id`` asking for ``scope`` (system scopes)."""
    return token_session(
        client_id, token_url, client_key=client_key, scope=scope, timeout=timeout, retry=retry
    )


def fetch_system_token(session: OAuth2Session, token_url: str) -> dict[str, Any]:
    """A new access token from ``token_url``. Raises TokenError for a refusal or an unusable
    answer; requests' exceptions pass through (the caller reports transport errors)."""
    return request_token(lambda: session.fetch_token(token_url, grant_type=GRANT_TYPE))
