"""Benchmark the access package (`export_patient(..., fmt="zip")`) against plain HTTP GETs
of the same reads, same HAPI, side by side.

The client: 2,000 resources (Observations, Conditions, Procedures, Consents... and 100
Media) and 100 photos of 2 MB (incompressible bytes, as JPEGs are): 200 MB in Binary. It
is created once under a fixed client id (in transactions of 200 and photo uploads on
two threads) and reused by later runs, so the shared server does not grow per run.

Each round runs in child processes, one after the other:

  symfhir  export_patient to a ZIP file (the whole package: $everything paged, every
           resource staged, Bundle, NDJSON per type, report.html, photos streamed)
  plain    requests: the same $everything pages (next links followed) and each Binary
           GET streamed to /dev/null: the server's own time to serve those reads

It prints each child's wall time and peak RSS, and the ratio of wall times (median of
--rounds). Targets: peak RSS < 150 MB, symfhir ≤ 1.5× plain.

    python benchmarks/bench_export.py [--rounds 3] [--photos 100] [--photo-mb 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE = os.environ.get(
    "FHIR_BASE_URL", f"http://localhost:{os.environ.get('FHIR_PORT', '8080')}/fhir"
)
SYSTEM = "https://bench.symfhir.example.com/client-id"
TOTAL_RESOURCES = 2000
FHIR_JSON = "application/fhir+json"
MAX_PHOTO_MB = 8


def find_or_create(photos: int, photo_mb: int) -> str:
    """The benchmark client's Patient id, created with its record when absent."""
    from symfhir.fhir import FhirClient, ServerConfig

    value = f"bench-export-{TOTAL_RESOURCES}-{photos}x{photo_mb}mb"
    with FhirClient(ServerConfig(base_url=BASE)) as client:
        found = client.search_all("Patient", {"identifier": f"{SYSTEM}|{value}"})
        if found:
            return found[0]["id"]
        started = time.perf_counter()
        practitioner = client.create(
            {"resourceType": "Practitioner", "name": [{"family": "Bench", "given": ["Nurse"]}]}
        )
        patient_resource = {
            "resourceType": "Patient",
            "name": [{"family": "Benchmark", "given": ["Synthetic"]}],
            "birthDate": "1984-06-01",
            "telecom": [{"system": "email", "value": "bench@example.com"}],
        }
        pid = client.create(patient_resource).id
        size = photo_mb * 1024 * 1024

        def upload(index: int) -> str:
            data = b"\xff\xd8\xff\xe0" + os.urandom(size - 6) + b"\xff\xd9"
            with FhirClient(ServerConfig(base_url=BASE)) as own:
                return own.upload_binary(io.BytesIO(data), "image/jpeg").id

        with ThreadPoolExecutor(2) as pool:
            binaries = list(pool.map(upload, range(photos)))
        resources = [_media(pid, b, size) for b in binaries]
        makers = [_observation, _condition, _procedure, _allergy, _medication, _consent]
        index = 0
        while len(resources) < TOTAL_RESOURCES - 1:  # the Patient is one of them
            resources.append(makers[index % len(makers)](pid, index, practitioner.id))
            index += 1
        for start in range(0, len(resources), 200):
            chunk = resources[start : start + 200]
            client.transaction(
                {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [
                        {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
                        for r in chunk
                    ],
                }
            )
        # The identifier goes on last: a run stopped half-way leaves a client no later run
        # finds (and reuses as if complete).
        patient_resource.update(id=pid, identifier=[{"system": SYSTEM, "value": value}])
        client.update(patient_resource)
        print(f"created the benchmark client in {time.perf_counter() - started:.0f} s")
        return pid


def _subject(pid: str) -> dict:
    return {"reference": f"Patient/{pid}"}


def _media(pid: str, binary: str, size: int) -> dict:
    return {
        "resourceType": "Media",
        "status": "completed",
        "subject": _subject(pid),
        "createdDateTime": "2026-10-02T09:50:00-05:00",
        "content": {"contentType": "image/jpeg", "url": f"Binary/{binary}", "size": size},
    }


def _observation(pid: str, i: int, _: str) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "subject": _subject(pid),
        "code": {"text": f"Skin assessment {i}"},
        "valueString": f"note {i} " * 10,
        "effectiveDateTime": "2026-09-01",
    }


def _condition(pid: str, i: int, _: str) -> dict:
    return {"resourceType": "Condition", "subject": _subject(pid), "code": {"text": f"Cond {i}"}}


def _procedure(pid: str, i: int, practitioner: str) -> dict:
    return {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": _subject(pid),
        "code": {"text": f"Treatment {i}"},
        "performedDateTime": "2026-10-02T10:00:00-05:00",
        "performer": [{"actor": {"reference": f"Practitioner/{practitioner}"}}],
    }


def _allergy(pid: str, i: int, _: str) -> dict:
    return {
        "resourceType": "AllergyIntolerance",
        "patient": _subject(pid),
        "code": {"text": f"A{i}"},
    }


def _medication(pid: str, i: int, _: str) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "status": "active",
        "subject": _subject(pid),
        "medicationCodeableConcept": {"text": f"Supplement {i}"},
    }


def _consent(pid: str, i: int, _: str) -> dict:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"code": "treatment"}]},
        "category": [{"text": f"Treatment consent {i}"}],
        "patient": _subject(pid),
        "dateTime": "2026-10-01T09:00:00-05:00",
    }


# -- the two children ----------------------------------------------------------------------


def child_symfhir(pid: str, out: str) -> dict:
    from datetime import UTC, datetime

    from symfhir.export import export_patient
    from symfhir.fhir import FhirClient, ServerConfig
    from symfhir.workspace.actor import Actor

    with FhirClient(ServerConfig(base_url=BASE)) as client:
        started = time.perf_counter()
        result = export_patient(
            client,
            Actor(None),
            pid,
            Path(out),
            fmt="zip",
            now=datetime.now(UTC),
            audit=lambda *a, **k: None,  # the benchmark writes no AuditEvents per run
        )
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "resources": result.resources,
        "bytes": result.size,
        "photos": result.photos,
    }


def child_plain(pid: str, out: str) -> dict:
    session = requests.Session()
    session.headers["Accept"] = FHIR_JSON
    started = time.perf_counter()
    url: str | None = f"{BASE}/Patient/{pid}/$everything?_count=200"
    binaries: list[str] = []
    count = 0
    while url:
        page = session.get(url, timeout=60).json()
        for entry in page.get("entry", []):
            count += 1
            res = entry["resource"]
            if res["resourceType"] == "Media":
                binaries.append(res["content"]["url"])
        url = next((lk["url"] for lk in page.get("link", []) if lk["relation"] == "next"), None)
    size = 0
    for ref in binaries:
        with session.get(
            f"{BASE}/{ref}", headers={"Accept": "*/*"}, stream=True, timeout=60
        ) as response:
            for chunk in response.iter_content(1024 * 1024):
                size += len(chunk)
    return {
        "seconds": time.perf_counter() - started,
        "resources": count,
        "bytes": size,
        "photos": len(binaries),
    }


def run_child(kind: str, pid: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "package.zip")
        code = (
            "import json, resource, sys;"
            f"sys.path.insert(0, {str(ROOT)!r});"
            "from benchmarks.bench_export import child_" + kind + " as run;"
            f"r = run({pid!r}, {out!r});"
            "r['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024;"
            "print(json.dumps(r))"
        )
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["process_seconds"] = time.perf_counter() - started
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--photo-mb", type=int, default=2)
    args = parser.parse_args()
    if not 1 <= args.photo_mb <= MAX_PHOTO_MB:
        # HAPI turns an upload into base64 JSON in its heap (1 GiB in scripts/fhir-server):
        # big photos on parallel uploads can exhaust it, and the shared server stops.
        parser.error(f"--photo-mb must be 1..{MAX_PHOTO_MB}")
    pid = find_or_create(args.photos, args.photo_mb)
    print(
        f"client Patient/{pid}: {TOTAL_RESOURCES} resources, "
        f"{args.photos} photos of {args.photo_mb} MB"
    )
    runs: dict[str, list[dict]] = {"plain": [], "symfhir": []}
    for round_no in range(1, args.rounds + 1):
        for kind in ("plain", "symfhir"):
            r = run_child(kind, pid)
            runs[kind].append(r)
            print(
                f"round {round_no} {kind:8s} {r['seconds']:6.2f} s  peak RSS "
                f"{r['peak_rss_mb']:6.1f} MB  {r['resources']} resources  "
                f"{r['photos']} photos  {r['bytes'] / 1e6:.1f} MB"
            )
    plain = statistics.median(r["seconds"] for r in runs["plain"])
    ours = statistics.median(r["seconds"] for r in runs["symfhir"])
    rss = max(r["peak_rss_mb"] for r in runs["symfhir"])
    print(
        f"median wall: plain GETs {plain:.2f} s, symfhir export {ours:.2f} s, "
        f"ratio {ours / plain:.2f}x (target <= 1.5x)"
    )
    print(f"symfhir peak RSS: {rss:.1f} MB (target < 150 MB)")


if __name__ == "__main__":
    main()
