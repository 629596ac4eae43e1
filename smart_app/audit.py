"""AuditEvents of the app's access to a client's record, and the two channels that write them.

Every read and write on a client's record is recorded as an R4 AuditEvent
(https://hl7.org/fhir/R4/auditevent.html) on the FHIR server the launch came from:

- through the session's user token, when the launch granted AuditEvent create;
- otherwise (or when the server refuses that token) through the app's own SMART Backend
  Services token (https://hl7.org/fhir/smart-app-launch/backend-services.html):
  client_credentials with the app's private_key_jwt key, scope ``SYMFHIR_AUDIT_SCOPE``
  (default ``system/AuditEvent.c``), one per FHIR server per process, cached and renewed
  before it expires (``symfhir.fhir.auth.BackendServicesAuth``). ``AuditOnlyAuth`` signs
  nothing with it but ``POST {base}/AuditEvent`` of an AuditEvent: it never reads or writes
  patient data. ``SYMFHIR_AUDIT_BACKEND = false`` turns this channel off.

Either way the event is the one ``symfhir.audit.audit_event`` builds. Writing is best effort:
when no channel can write, one PHI-free warning is logged and the page goes on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask, has_app_context
from requests.auth import AuthBase

from smart_app.timing import record_fhir
from symfhir.errors import FhirAuthError, FhirServerError, SymfhirError
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.fhir.auth import BackendServicesAuth
from symfhir.fhir.retry import single_attempt_policy
from symfhir.smart.assertion import ClientKey

log = logging.getLogger(__name__)

#: After the token endpoint refused or could not be reached, pages skip the backend channel
#: this long instead of each paying for another failing token request.
TOKEN_RETRY_AFTER_S = 60.0
EXTENSION = "symfhir_audit"
_SETUP_LOCK = threading.Lock()


class AuditChannelMisuse(SymfhirError):
    """Something other than an AuditEvent create was about to be sent with the audit token."""


class AuditOnlyAuth(AuthBase):
    """Signs ``POST {base}/AuditEvent`` of an AuditEvent with ``inner`` and refuses anything
    else (raises AuditChannelMisuse before ``inner`` sees it): the app's system token is for
    audit records only, never for patient data."""

    def __init__(self, inner: AuthBase, base_url: str) -> None:
        self._inner = inner
        target = urlsplit(f"{base_url}/AuditEvent")
        self._target = (target.scheme, target.netloc.lower(), target.path)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(request.url or "")
        where = (url.scheme, url.netloc.lower(), url.path)
        if request.method != "POST" or where != self._target or url.query or url.fragment:
            method = request.method
            raise AuditChannelMisuse(f"the audit token creates AuditEvents only, not {method}")
        if _resource_type(request.body) != "AuditEvent":
            raise AuditChannelMisuse("the audit token only creates AuditEvents")
        return self._inner(request)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()


def _record_timing(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Count the write in the page's Server-Timing; this client outlives any one request, so
    outside one (a worker thread) there is nothing to count into."""
    if has_app_context():
        record_fhir(response, *args, **kwargs)


def _resource_type(body: object) -> object:
    if isinstance(body, str):
        body = body.encode()
    if not isinstance(body, bytes):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document.get("resourceType") if isinstance(document, dict) else None


class BackendAuditChannel:
    """The app's Backend Services token for one FHIR server, used for AuditEvent creates only.

    Thread-safe: BackendServicesAuth renews the cached token under its lock; requests'
    connection pool is shared across threads.
    """

    def __init__(
        self,
        base_url: str,
        token_url: str,
        client_id: str,
        client_key: ClientKey,
        scope: str,
        timeout: float,
    ) -> None:
        # A side channel of the page: short timeouts and one reconnect at most, so a dead
        # token endpoint or server costs the page little (the next page tries again).
        config = ServerConfig(
            base_url=base_url, connect_timeout=timeout, read_timeout=timeout, retries=1
        )
        token_auth = BackendServicesAuth(
            token_url,
            client_id,
            client_key.key.as_pem(private=True),
            client_key.kid,
            client_key.alg,
            scope,
            timeout=config.timeout,
            retry=single_attempt_policy(config),
        )
        self._client = FhirClient(config, AuditOnlyAuth(token_auth, config.base_url))
        self._client.session.hooks["response"].append(_record_timing)
        self._skip_until = 0.0

    def write(self, event: dict[str, Any]) -> None:
        """Create ``event``. Raises FhirServerError (FhirAuthError when the token endpoint
        refused recently) or AuditChannelMisuse for anything but an AuditEvent."""
        if event.get("resourceType") != "AuditEvent":
            raise AuditChannelMisuse("the audit channel only creates AuditEvents")
        if time.monotonic() < self._skip_until:
            raise FhirAuthError(
                BackendServicesAuth.operation, "refused recently; not asked again yet"
            )
        try:
            self._client.create(event)
        except FhirServerError as exc:
            # The token endpoint refused or could not be reached (not the write itself).
            if exc.operation == BackendServicesAuth.operation:
                self._skip_until = time.monotonic() + TOKEN_RETRY_AFTER_S
            raise

    def close(self) -> None:
        self._client.close()


class BackendAuditChannels:
    """One BackendAuditChannel per (FHIR base, token URL) for the process, made on first use.

    The pairs come from sessions whose ``iss`` was trusted at launch and whose token URL is
    that server's SMART discovery, so their number is bounded by the trusted servers.
    """

    def __init__(self, client_id: str, client_key: ClientKey, scope: str, timeout: float) -> None:
        self._client_id = client_id
        self._client_key = client_key
        self._scope = scope
        self._timeout = timeout
        self._channels: dict[tuple[str, str], BackendAuditChannel] = {}
        self._lock = threading.Lock()

    def get(self, base_url: str, token_url: str) -> BackendAuditChannel:
        """The channel for this server; raises ConfigError if the app's key cannot sign."""
        with self._lock:
            channel = self._channels.get((base_url, token_url))
            if channel is None:
                channel = BackendAuditChannel(
                    base_url,
                    token_url,
                    self._client_id,
                    self._client_key,
                    self._scope,
                    self._timeout,
                )
                self._channels[(base_url, token_url)] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


def backend_channels(app: Flask) -> BackendAuditChannels | None:
    """The app's backend audit channels (made on first use), None when switched off."""
    if not app.config.get("SYMFHIR_AUDIT_BACKEND", True):
        return None
    with _SETUP_LOCK:
        channels = app.extensions.get(EXTENSION)
        if channels is None:
            channels = BackendAuditChannels(
                app.config["SYMFHIR_CLIENT_ID"],
                app.extensions["symfhir_key"],
                app.config["SYMFHIR_AUDIT_SCOPE"],
                app.config["SYMFHIR_HTTP_TIMEOUT"],
            )
            app.extensions[EXTENSION] = channels
    return channels


def write_audit(
    event: dict[str, Any],
    user_client: FhirClient | None,
    backend: Callable[[], BackendAuditChannel | None],
) -> str | None:
    """Write ``event`` with the user's token (``user_client``, None when the launch did not
    grant AuditEvent create), else with the backend channel; return "user", "backend" or None.

    Never raises: whatever fails is one PHI-free warning.
    """
    reason = "the launch did not grant AuditEvent create"
    if user_client is not None:
        try:
            user_client.create(event)
            return "user"
        except FhirAuthError as exc:
            # Refused (401/403): nothing was written, so the backend channel may try.
            reason = exc.log_text
        except SymfhirError as exc:
            # Anything else may have written it (a timeout after sending): not sent twice.
            log.warning("AuditEvent not written: %s", _safe(exc))
            return None
    try:
        channel = backend()
        if channel is None:
            log.warning("AuditEvent not written: %s; the backend audit channel is off", reason)
            return None
        channel.write(event)
        return "backend"
    except Exception as exc:  # an audit failure must never fail the page, whatever it is
        log.warning("AuditEvent not written: %s; backend channel: %s", reason, _safe(exc))
        return None


def _safe(exc: BaseException) -> str:
    """A PHI-free description: FhirServerError's log_text, else only the error's class."""
    return getattr(exc, "log_text", "") or type(exc).__name__
