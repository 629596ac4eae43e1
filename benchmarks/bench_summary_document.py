"""Benchmark the patient summary document for physicians on a client with a large record.

Seeds one synthetic client with 2,000 resources (allergies, medications, conditions, the spa's
treatments with their observations, intake findings, consents) on the local HAPI server
(started if it is not running), then, --runs times: reads what the summary needs
(``read_summary_resources``, counting the HTTP requests it makes: goal at most 4), builds the
document (``patient_summary``), validates it again on its own (``check_document``: R4B models
and references), and renders it as HTML and as PDF. Prints the request count, the resource
and page counts, and the median and worst time of each step.

    python benchmarks/bench_summary_document.py [--resources 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.local_fhir import ensure_server  # noqa: E402
from symfhir.fhir import FhirClient  # noqa: E402
from symfhir.fhir.config import ServerConfig  # noqa: E402
from symfhir.sharing.summary import check_document, patient_summary  # noqa: E402
from symfhir.sharing.summary_read import PAGE_SIZE, read_summary_resources  # noqa: E402
from symfhir.sharing.summary_render import summary_html, summary_pdf  # noqa: E402
from symfhir.spa import load_spa  # noqa: E402
from symfhir.workspace.actor import Actor  # noqa: E402

FHIR = os.environ.get("FHIR_BASE_URL", "http://localhost:8080/fhir").rstrip("/")
TREATMENT = "http://symfhir.org/fhir/CodeSystem/spa-treatment"
INTAKE = "http://symfhir.org/fhir/CodeSystem/intake-observation"
CONSENT_KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
TREATMENTS = [
    ("botulinum-toxin", "Botulinum toxin injection"),
    ("dermal-filler", "Dermal filler injection"),
    ("chemical-peel", "Chemical peel"),
    ("microneedling", "Microneedling"),
]
# Shares of a 2,000-resource record: mostly treatments and their observations.
MIX = {
    "AllergyIntolerance": 0.01,
    "MedicationStatement": 0.02,
    "Condition": 0.015,
    "Consent": 0.005,
    "Procedure": 0.30,
}


def _resources(pid: str, total: int) -> list[dict[str, Any]]:
    """``total`` resources of the client, the Patient not counted."""
    subject = {"reference": f"Patient/{pid}"}
    counts = {kind: max(1, round(total * share)) for kind, share in MIX.items()}
    counts["Observation"] = total - sum(counts.values())
    out: list[dict[str, Any]] = []
    for i in range(counts["AllergyIntolerance"]):
        out.append(
            {
                "resourceType": "AllergyIntolerance",
                "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
                "patient": subject,
                "code": {"text": f"Substance {i}"},
                "reaction": [{"manifestation": [{"text": "Hives"}]}],
            }
        )
    for i in range(counts["MedicationStatement"]):
        out.append(
            {
                "resourceType": "MedicationStatement",
                "status": "active" if i % 3 else "stopped",
                "subject": subject,
                "medicationCodeableConcept": {"text": f"Medication {i} 10 mg"},
                "dosage": [{"text": "once daily"}],
            }
        )
    for i in range(counts["Condition"]):
        out.append({"resourceType": "Condition", "subject": subject, "code": {"text": f"Cond {i}"}})
    for i in range(counts["Consent"]):
        out.append(
            {
                "resourceType": "Consent",
                "status": "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "treatment",
                        }
                    ]
                },
                "category": [{"coding": [{"system": CONSENT_KIND, "code": "treatment"}]}],
                "patient": subject,
                "dateTime": f"2026-{1 + i % 12:02d}-01T10:00:00Z",
            }
        )
    procedures = []
    for i in range(counts["Procedure"]):
        code, display = TREATMENTS[i % len(TREATMENTS)]
        full_url = f"urn:uuid:{uuid.uuid4()}"
        procedures.append(full_url)
        out.append(
            {
                "_fullUrl": full_url,
                "resourceType": "Procedure",
                "status": "completed",
                "subject": subject,
                "code": {"coding": [{"system": TREATMENT, "code": code, "display": display}]},
                "performedDateTime": f"20{20 + i % 7}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "bodySite": [{"text": "Forehead"}],
                "extension": [
                    {
                        "url": "http://symfhir.org/fhir/StructureDefinition/treatment-product",
                        "extension": [
                            {"url": "name", "valueString": "Product"},
                            {"url": "lot", "valueString": f"L{i:05d}"},
                        ],
                    }
                ],
            }
        )
    for i in range(counts["Observation"]):
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "subject": subject,
            "effectiveDateTime": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
        }
        if i % 2:
            obs["code"] = {"text": "Post-treatment finding"}
            obs["valueString"] = "mild redness"
            obs["partOf"] = [{"reference": procedures[i % len(procedures)]}]
        else:
            obs["code"] = {"coding": [{"system": INTAKE, "code": "skin-type"}], "text": "Skin"}
            obs["valueCodeableConcept"] = {"text": f"Fitzpatrick {1 + i % 6}"}
        out.append(obs)
    return out


def seed(client: FhirClient, total: int) -> str:
    spa = load_spa()
    patient = client.create(
        {
            "resourceType": "Patient",
            "identifier": [
                {"system": f"{spa.identifier_base}/client-id", "value": uuid.uuid4().hex}
            ],
            "name": [{"given": ["Bench"], "family": "Łukasiewicz"}],
            "birthDate": "1985-03-14",
        }
    )
    resources = _resources(patient.id, total - 1)
    # one transaction: the Observations name their Procedures by full URL
    entries = []
    for resource in resources:
        full_url = resource.pop("_fullUrl", f"urn:uuid:{uuid.uuid4()}")
        entries.append(
            {
                "fullUrl": full_url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    return patient.id


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = step()
    return (time.perf_counter() - start) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=2000, help="resources of the client")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ensure_server(FHIR)
    with FhirClient(ServerConfig(base_url=FHIR)) as client:
        started = time.perf_counter()
        pid = seed(client, args.resources)
        print(
            f"seeded Patient/{pid} with {args.resources} resources in "
            f"{time.perf_counter() - started:.1f} s on {FHIR}"
        )
        made: list[str] = []
        client.session.hooks["response"].append(lambda r, *a, **k: made.append(r.request.method))
        times: dict[str, list[float]] = {}
        requests_per_read: list[int] = []
        for _ in range(args.runs):
            made.clear()
            ms, found = timed(lambda: read_summary_resources(client, Actor(None), pid))
            requests_per_read.append(len(made))
            times.setdefault("read (FHIR requests)", []).append(ms)
            now = datetime.now(UTC)
            ms, doc = timed(
                lambda: patient_summary(found, patient_id=pid, now=now, author="bench")  # noqa: B023
            )
            times.setdefault("build + validate", []).append(ms)
            ms, _ = timed(lambda: check_document(doc))  # noqa: B023
            times.setdefault("  of which validate", []).append(ms)
            ms, page = timed(lambda: summary_html(doc))  # noqa: B023
            times.setdefault("HTML", []).append(ms)
            ms, pdf = timed(lambda: summary_pdf(doc))  # noqa: B023
            times.setdefault("PDF", []).append(ms)
    counts = Counter(r["resourceType"] for r in found)
    pages = sum(-(-n // PAGE_SIZE) for kind, n in counts.items() if kind != "Patient")
    print(f"read: {len(found)} resources ({dict(sorted(counts.items()))})")
    print(
        f"      {pages} search pages of at most {PAGE_SIZE}, in {max(requests_per_read)} "
        f"FHIR requests (every run: {requests_per_read}; goal: at most 4)"
    )
    print(
        f"document: {len(doc['entry'])} entries; HTML {len(page) // 1024} KiB; "
        f"PDF {len(pdf) // 1024} KiB"
    )
    print(f"{'step':24} {'median ms':>10} {'max ms':>10}   ({args.runs} runs)")
    for step, values in times.items():
        print(f"{step:24} {statistics.median(values):10.1f} {max(values):10.1f}")
    total = [sum(v[i] for k, v in times.items() if not k.startswith(" ")) for i in range(args.runs)]
    print(f"{'total':24} {statistics.median(total):10.1f} {max(total):10.1f}")
    if max(requests_per_read) > 4:
        sys.exit("more than 4 FHIR requests")


if __name__ == "__main__":
    main()
