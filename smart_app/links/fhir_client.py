"""The link service's FHIR client: one per request, made on first use, closed when it ends.
In the demo it is the SMART Backend Services client ``symfhir-links`` (system/AuditEvent.c
system/Consent.r): it writes each disclosure's AuditEvent and re-reads the Consent."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, g

from symfhir.fhir import FhirClient


def fhir_client() -> FhirClient:
    """The request's FHIR client: SYMFHIR_LINKS_CLIENT's (tests), else symfhir's configured
    server (``FhirClient.from_config``). Raises ConfigError for an unusable configuration."""
    if "links_fhir" not in g:
        factory: Callable[[], FhirClient] | None = current_app.config["SYMFHIR_LINKS_CLIENT"]
        g.links_fhir = factory() if factory else FhirClient.from_config()
    return g.links_fhir


def close_client(_error: BaseException | None) -> None:
    client = g.pop("links_fhir", None)
    if client is not None:
        client.close()
