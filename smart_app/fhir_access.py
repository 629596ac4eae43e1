"""Per-request FHIR access for the launched patient only, and the AuditEvents of that access.

``current_access()`` gives the request's PatientAccess: a FhirClient signed with the session's
SMART token (refreshed with private_key_jwt; each new token is stored encrypted in the
session), the launched patient, the practitioner (fhirUser) and the granted scopes.
``enforce_patient_context`` refuses (403, with an AuditEvent) any request that names another
patient. ``PatientAccess.audit`` records each access (``smart_app.audit``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from flask import current_app, g, request, session

from smart_app.audit import BackendAuditChannel, backend_channels, write_audit
from smart_app.errors import AppError, session_expired
from smart_app.timing import record_fhir
from symfhir.audit import DisclosureTo, trail_event
from symfhir.fhir import FhirClient, ServerConfig, SmartTokenAuth
from symfhir.fhir.retry import single_attempt_policy
from symfhir.smart.assertion import ClientKey
from symfhir.smart.scopes import allows
from symfhir.workspace.actor import Actor

log = logging.getLogger(__name__)

CONTEXT = "ctx"
PATIENT_PARAMETERS = ("patient", "patient_id", "subject")


def with_expiry(token: dict[str, Any]) -> dict[str, Any]:
    """The token response with an absolute ``expires_at``, so a token stored in the session
    is not taken for fresh on a later request."""
    token = dict(token)
    expires_in = token.get("expires_in")
    if "expires_at" not in token and isinstance(expires_in, int | float):
        token["expires_at"] = int(time.time() + expires_in)
    return token


class PatientAccess:
    """The launched patient's record, as the signed-in practitioner may use it."""

    def __init__(self, context: dict[str, Any], client_id: str, client_key: ClientKey) -> None:
        self.context = context
        self.patient_id: str = context["patient"]
        self.fhir_user: str | None = context.get("fhir_user")
        self.scopes: list[str] = list(context.get("scopes") or [])
        self.writable: bool = bool(context.get("writable"))
        self._client_id = client_id
        self._client_key = client_key
        self._client: FhirClient | None = None

    @property
    def client(self) -> FhirClient:
        """A FhirClient for the launch's FHIR server (made on first use)."""
        if self._client is None:
            config = ServerConfig(
                base_url=self.context["iss"],
                auth="smart",
                token_url=self.context["token_url"],
                client_id=self._client_id,
            )
            # The refresh authenticates with a private_key_jwt assertion of the app's key.
            auth = SmartTokenAuth(
                self.context["token"],
                self.context["token_url"],
                self._client_id,
                on_refresh=self._store_token,
                timeout=config.timeout,
                # A refresh token may be single-use: a refresh is never sent twice.
                retry=single_attempt_policy(config),
                client_key=self._client_key,
            )
            self._client = FhirClient(config, auth)
            self._client.session.hooks["response"].append(record_fhir)
        return self._client

    def _store_token(self, token: dict[str, Any]) -> None:
        self.context["token"] = with_expiry(token)
        session[CONTEXT] = self.context
        session.modified = True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def actor(self) -> Actor:
        """The practitioner as the library's workflows see them: what the launch's scopes
        allow, and whether the session may write."""
        return Actor(self.fhir_user, permits=partial(allows, self.scopes), writable=self.writable)

    def check_patient(self, requested: str | None) -> None:
        """Raise AppError 403 (after auditing the refusal) when ``requested`` names a patient
        other than the launched one."""
        if not requested:
            return
        wanted = requested.removeprefix("Patient/")
        if wanted == self.patient_id:
            return
        self.audit(
            "read",
            success=False,
            description="refused: the request named a patient outside the launch context",
            requested=wanted,
        )
        raise AppError(
            403,
            "wrong_patient",
            "This client is not open in the EHR",
            "symfhir shows only the client whose chart launched it. Open the other client's "
            "chart in the EHR to see their record.",
        )

    def audit(
        self,
        subtype: str,
        *,
        success: bool = True,
        description: str | None = None,
        requested: str | None = None,
        resources: Sequence[str] = (),
        disclosure: DisclosureTo | None = None,
    ) -> None:
        """Write an AuditEvent for this access (``smart_app.audit``): with the session's token
        when the launch granted AuditEvent create, else with the app's Backend Services audit
        channel; with ``disclosure``, the disclosure shape (``symfhir.audit.trail_event``).
        Best effort: a failure is one PHI-free log warning and never fails the page."""
        event = trail_event(
            subtype,
            self.patient_id,
            self.fhir_user,
            success=success,
            description=description,
            requested=requested,
            resources=resources,
            disclosure=disclosure,
            now=datetime.now(UTC),
        )
        user_client = self.client if allows(self.scopes, "AuditEvent", "c") else None
        write_audit(event, user_client, self._backend_channel)

    def _backend_channel(self) -> BackendAuditChannel | None:
        """The process's audit channel for this launch's server (its token URL is the one the
        launch discovered), None when switched off."""
        channels = backend_channels(current_app)
        if channels is None:
            return None
        return channels.get(self.context["iss"], self.context["token_url"])


def current_access() -> PatientAccess:
    """The request's PatientAccess; AppError 401 (session expired) without a launch."""
    access = g.get("patient_access")
    if access is None:
        context = session.get(CONTEXT)
        if not isinstance(context, dict) or not context.get("patient"):
            raise session_expired()
        access = PatientAccess(
            context, current_app.config["SYMFHIR_CLIENT_ID"], current_app.extensions["symfhir_key"]
        )
        g.patient_access = access
    return access


def enforce_patient_context() -> None:
    """before_request of patient blueprints: any route value, query or form parameter naming
    a patient must name the launched one."""
    access = current_access()
    candidates = [str(v) for k, v in (request.view_args or {}).items() if k in PATIENT_PARAMETERS]
    for name in PATIENT_PARAMETERS:
        candidates.extend(request.args.getlist(name))
        if request.method not in ("GET", "HEAD"):
            candidates.extend(request.form.getlist(name))
    for candidate in candidates:
        access.check_patient(candidate)


def close_access(_: BaseException | None = None) -> None:
    access = g.pop("patient_access", None)
    if access is not None:
        access.close()
