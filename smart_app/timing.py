"""Server-Timing on every response: how long the app spent, and how much of it waiting on
the FHIR server (count and time), so the render cost can be measured apart from the server's.

``Server-Timing: app;dur=12.3, fhir;dur=8.1;desc="2 requests"`` (milliseconds). It carries
timings only — no ids, no PHI. ``fhir`` counts every request the FhirClient made for this
page, measured until the answer's headers arrived (``requests``' ``elapsed``).
"""

from __future__ import annotations

import time
from typing import Any

import requests
from flask import Flask, Response, g


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_header)


def record_fhir(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    """A requests response hook: count one FHIR request and its time for this page."""
    g.fhir_requests = g.get("fhir_requests", 0) + 1
    g.fhir_seconds = g.get("fhir_seconds", 0.0) + response.elapsed.total_seconds()


def _start() -> None:
    g.started = time.perf_counter()


def _header(response: Response) -> Response:
    started = g.get("started")
    if started is None:
        return response
    total_ms = (time.perf_counter() - started) * 1000
    fhir_ms = g.get("fhir_seconds", 0.0) * 1000
    count = g.get("fhir_requests", 0)
    response.headers["Server-Timing"] = (
        f'app;dur={total_ms:.1f}, fhir;dur={fhir_ms:.1f};desc="{count} requests"'
    )
    return response
