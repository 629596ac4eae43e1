"""Token endpoint requests (RFC 6749 §4.1.3, §4.4, §6) and their answers (§5), through
authlib's ``OAuth2Session`` with private_key_jwt client authentication (``assertion``).

A refusal (``error``/``error_description``), an answer that is not a JSON object and one
without an access token become TokenError. Failures to reach the endpoint (requests'
exceptions, a 5xx answer as ``requests.HTTPError``) are left to the caller, which knows its
retry policy and how it reports transport errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from symfhir.errors import TokenError
from symfhir.smart.assertion import AssertionAuth, ClientKey

MAX_DESCRIPTION = 300


def token_session(
    client_id: str,
    token_url: str,
    *,
    client_key: ClientKey | None = None,
    client_secret: str | None = None,
    scope: str | None = None,
    timeout: float | tuple[float, float] = 10.0,
    retry: Retry | None = None,
) -> OAuth2Session:
    """A session for ``token_url`` that authenticates as ``client_id``: private_key_jwt with
    ``client_key``, else client_secret_basic with ``client_secret``, else none (public)."""
    if client_key is not None:
        method: Any = AssertionAuth(token_url, client_key)
    else:
        method = "client_secret_basic" if client_secret else "none"
    session = OAuth2Session(
        client_id, client_secret, token_endpoint_auth_method=method, scope=scope
    )
    session.default_timeout = timeout
    if retry is not None:
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    return session


def request_token(call: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    """The token response ``call`` got (an authlib fetch or refresh).

    Raises TokenError for a refusal, an answer that is not a JSON object, or one without an
    access token; requests' exceptions pass through.
    """
    try:
        answer = dict(call())
    except OAuthError as exc:
        description = str(exc.description or "the token request was refused")
        raise TokenError(description[:MAX_DESCRIPTION], _code(exc.error)) from None
    except ValueError:
        # authlib: the answer is not a JSON object (an HTML page, a gateway's text).
        raise TokenError("the token endpoint did not answer JSON") from None
    if not answer.get("access_token"):
        raise TokenError("the token response has no access_token")
    return answer


def require_bearer(answer: Mapping[str, Any]) -> None:
    """Raise TokenError unless ``answer`` carries a bearer access token (SMART's only kind)."""
    if not answer.get("access_token") or str(answer.get("token_type", "")).lower() != "bearer":
        raise TokenError("the token response has no bearer access_token")


def _code(error: object) -> str | None:
    """The server's error code when it is one (a short word), so pages and logs can show it."""
    if isinstance(error, str) and 0 < len(error) < 80 and error.replace("_", "").isalnum():
        return error
    return None
