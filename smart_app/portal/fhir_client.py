"""The portal's FHIR client: one per request, made on first use, closed when it ends."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, g

from symfhir.fhir import FhirClient


def fhir_client() -> FhirClient:
    """The request's FHIR client: SYMFHIR_PORTAL_CLIENT's (tests), else symfhir's configured
    server (``FhirClient.from_config``). Raises ConfigError for an unusable configuration."""
    if "portal_fhir" not in g:
        factory: Callable[[], FhirClient] | None = current_app.config["SYMFHIR_PORTAL_CLIENT"]
        g.portal_fhir = factory() if factory else FhirClient.from_config()
    return g.portal_fhir


def close_client(_error: BaseException | None) -> None:
    client = g.pop("portal_fhir", None)
    if client is not None:
        client.close()
