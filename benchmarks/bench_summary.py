"""Benchmark the launch → rendered summary path of the SMART app for a client with a large record.

Creates one synthetic client with about 500 resources (allergies, medications, conditions,
observations, procedures, consents) and 50 photos (Media + Binary) on the local HAPI
server, starts the sandbox EHR and the app as real processes, launches the app for that
client the way the EHR does (no browser: the sandbox approves at once), then renders the
summary --renders times. It prints how many FHIR requests a render makes (goal: at most 4)
and the server-side render time without the FHIR server's own time (goal: p95 under
300 ms), both read from the app's Server-Timing header.

    python benchmarks/bench_summary.py
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from local_fhir import ensure_server
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FHIR = os.environ.get("FHIR_BASE_URL", "http://localhost:8080/fhir")
SANDBOX = "http://localhost:5120"
APP = "http://localhost:5020"
SYSTEM = "http://symfhir.org/fhir/sid/bench"


def _entry(resource: dict) -> dict:
    url = f"urn:uuid:{uuid.uuid4()}"
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _png(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), ((i * 37) % 256, 120, 160)).save(out, "PNG")
    return out.getvalue()


def big_client() -> str:
    """One Patient with ~500 resources and 50 photos; returns its id."""
    run = uuid.uuid4().hex[:8]
    patient = _entry(
        {
            "resourceType": "Patient",
            "identifier": [{"system": SYSTEM, "value": f"bench-{run}"}],
            "name": [{"family": "Benchmark", "given": ["Synthetic"]}],
            "birthDate": "1980-05-05",
        }
    )
    ref = {"reference": patient["fullUrl"]}
    code = {"text": "synthetic"}
    entries = [patient]
    entries += [
        _entry(
            {
                "resourceType": "AllergyIntolerance",
                "patient": ref,
                "code": {"text": f"substance {i}"},
            }
        )
        for i in range(30)
    ]
    entries += [
        _entry(
            {
                "resourceType": "MedicationStatement",
                "status": "active",
                "subject": ref,
                "medicationCodeableConcept": {"text": f"medication {i}"},
            }
        )
        for i in range(40)
    ]
    entries += [
        _entry({"resourceType": "Condition", "subject": ref, "code": {"text": f"condition {i}"}})
        for i in range(60)
    ]
    entries += [
        _entry(
            {
                "resourceType": "Observation",
                "status": "final",
                "subject": ref,
                "code": code,
                "effectiveDateTime": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "valueString": f"value {i}",
            }
        )
        for i in range(200)
    ]
    entries += [
        _entry(
            {
                "resourceType": "Procedure",
                "status": "completed",
                "subject": ref,
                "code": {"text": f"treatment {i}"},
                "performedDateTime": f"2025-{1 + i % 12:02d}-10",
            }
        )
        for i in range(157)
    ]
    entries += [
        _entry(
            {
                "resourceType": "Consent",
                "status": "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "patient-privacy",
                        }
                    ]
                },
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": ref,
                "dateTime": "2026-01-02T10:00:00-06:00",
                "policy": [{"uri": "http://symfhir.org/fhir/policy/bench"}],
            }
        )
        for _ in range(12)
    ]
    for i in range(50):
        data = _png(i)
        binary = _entry(
            {
                "resourceType": "Binary",
                "contentType": "image/png",
                "securityContext": ref,
                "data": base64.b64encode(data).decode(),
            }
        )
        media = _entry(
            {
                "resourceType": "Media",
                "status": "completed",
                "subject": ref,
                "createdDateTime": "2026-03-06T09:20:00-06:00",
                "content": {
                    "contentType": "image/png",
                    "url": binary["fullUrl"],
                    "size": len(data),
                    "hash": base64.b64encode(hashlib.sha1(data).digest()).decode(),
                },
            }
        )
        entries += [binary, media]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    answer = requests.post(
        FHIR,
        data=json.dumps(bundle),
        headers={"Content-Type": "application/fhir+json"},
        timeout=600,
    )
    answer.raise_for_status()
    location = answer.json()["entry"][0]["response"]["location"]
    return location.split("/")[1]


def start_stack(logs: Path) -> list[subprocess.Popen[bytes]]:
    registration = {
        "client_id": "symfhir",
        "redirect_uris": [f"{APP}/callback"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": f"{APP}/.well-known/jwks.json",
        "scope": "openid fhirUser launch launch/patient offline_access online_access "
        "patient/*.cruds user/*.cruds",
    }
    env = {
        **os.environ,
        "SANDBOX_BASE_URL": SANDBOX,
        "SANDBOX_FHIR_UPSTREAM": FHIR,
        "SANDBOX_CLIENTS": json.dumps([registration]),
        "SYMFHIR_BASE_URL": APP,
        "SYMFHIR_TRUSTED_ISS": f"{SANDBOX}/fhir",
        "SYMFHIR_EHR_ORIGINS": SANDBOX,
    }
    procs = []
    for module, name in (("smart_app.sandbox", "sandbox"), ("smart_app", "app")):
        with (logs / f"{name}.log").open("wb") as fh:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module],
                    cwd=ROOT,
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                )
            )
    for url in (f"{SANDBOX}/fhir/.well-known/smart-configuration", f"{APP}/.well-known/jwks.json"):
        for _ in range(150):
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"{url} did not answer; logs in {logs}")
    return procs


def timing(response: requests.Response) -> tuple[float, float, int]:
    """(app ms, fhir ms, fhir requests) from the Server-Timing header."""
    app_part, fhir_part = response.headers["Server-Timing"].split(", ")
    app_ms = float(app_part.split("dur=")[1])
    fhir_ms = float(fhir_part.split("dur=")[1].split(";")[0])
    count = int(fhir_part.split('desc="')[1].split()[0])
    return app_ms, fhir_ms, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=50)
    args = parser.parse_args()
    ensure_server(FHIR)
    patient = big_client()
    with tempfile.TemporaryDirectory() as tmp:
        procs = start_stack(Path(tmp))
        try:
            browser = requests.Session()
            launch = requests.post(
                f"{SANDBOX}/api/launch",
                json={"patient": patient, "launch_url": f"{APP}/launch"},
                timeout=60,
            )
            launch.raise_for_status()
            started = time.perf_counter()
            first = browser.get(launch.json()["url"], timeout=120)
            launch_s = time.perf_counter() - started
            if first.status_code != 200 or "summary-title" not in first.text:
                raise SystemExit(f"launch failed: HTTP {first.status_code}\n{first.text[:2000]}")
            rows = [timing(first)]
            for _ in range(args.renders):
                page = browser.get(f"{APP}/", timeout=120)
                page.raise_for_status()
                rows.append(timing(page))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    own = sorted(app - fhir for app, fhir, _ in rows[1:])
    p95 = own[min(len(own) - 1, round(0.95 * len(own)) - 1)]
    counts = {count for _, _, count in rows}
    print(f"client Patient/{patient}: ~500 resources and 50 photos on {FHIR}")
    print(
        f"launch to rendered summary: {launch_s * 1000:.0f} ms wall "
        "(discovery, authorize, token, first render)"
    )
    print(f"FHIR requests per summary render: {sorted(counts)} (goal: at most 4)")
    print(
        f"render without the FHIR server's time, {len(own)} renders: "
        f"median {statistics.median(own):.0f} ms, p95 {p95:.0f} ms (goal: p95 under 300 ms)"
    )
    total = [app for app, _, _ in rows[1:]]
    print(f"render including the FHIR server: median {statistics.median(total):.0f} ms")


if __name__ == "__main__":
    main()
