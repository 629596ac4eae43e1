"""What the FHIR server alone allows an importer to gain: per-resource cost of three ways to
write the same clients, one request at a time from one thread.

  single        one POST per resource (the naive path), urn:uuid references swapped for ids
  tx plain      one transaction per client, plain creates
  tx conditional one transaction per client, conditional creates (what symfhir writes: a
                replay creates nothing)

The ratio single / tx conditional bounds what batching gains per server core; concurrency
adds at most the server's free cores. Each way writes a third of N fresh clients.

    python benchmarks/bench_hapi_ceiling.py            # N = 150 against FHIR_BASE_URL or :8080
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Prefer": "return=minimal"}
SHARED = ("Organization",)  # the spa: one per server, always written conditionally


def bundles(n: int, tmp: Path) -> list[dict]:
    """N typical synthetic clients under fresh ids, mapped by `symfhir map`."""
    src = tmp / "clients.csv"
    bench_map = ROOT / "benchmarks" / "bench_map.py"
    subprocess.run([sys.executable, bench_map, "--generate", str(n), src, "typical"], check=True)
    prefix = "H" + uuid.uuid4().hex[:6].upper()
    text = src.read_text(encoding="utf-8").replace("\nB0", f"\n{prefix}")
    src.write_text(text, encoding="utf-8")
    out = tmp / "bundles.ndjson"
    symfhir = Path(sys.executable).parent / "symfhir"
    subprocess.run(
        [symfhir, "map", src, "-o", out, "--as-of", "2026-11-25T09:30:00-06:00"],
        check=True,
        capture_output=True,
    )
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def transaction(session: requests.Session, base: str, bundle: dict) -> int:
    session.post(base, data=json.dumps(bundle), headers=HEADERS).raise_for_status()
    return len(bundle["entry"])


def plain(session: requests.Session, base: str, bundle: dict) -> int:
    bundle = copy.deepcopy(bundle)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] not in SHARED:
            entry["request"].pop("ifNoneExist", None)
    return transaction(session, base, bundle)


def singles(session: requests.Session, base: str, bundle: dict) -> int:
    ids: dict[str, str] = {}
    for entry in bundle["entry"]:
        body = json.dumps(entry["resource"])
        for urn, ref in ids.items():
            body = body.replace(urn, ref)
        rtype = entry["resource"]["resourceType"]
        headers = dict(HEADERS)
        if rtype in SHARED:
            headers["If-None-Exist"] = entry["request"]["ifNoneExist"]
        answer = session.post(f"{base}/{rtype}", data=body, headers=headers)
        answer.raise_for_status()
        if "Location" in answer.headers:
            ids[entry["fullUrl"]] = answer.headers["Location"].split("/_history")[0][
                len(base) + 1 :
            ]
        else:  # an existing shared resource: find its id
            found = session.get(f"{base}/{rtype}?{entry['request']['ifNoneExist']}").json()
            ids[entry["fullUrl"]] = f"{rtype}/{found['entry'][0]['resource']['id']}"
    return len(bundle["entry"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=150, help="clients (a third per way)")
    parser.add_argument("--server", default=os.environ.get("FHIR_BASE_URL", ""))
    args = parser.parse_args()
    base = (args.server or "http://localhost:8080/fhir").rstrip("/")
    if not args.server:  # the local server: started when it is not running
        subprocess.run([ROOT / "scripts" / "fhir-server", "start"], check=True)
    session = requests.Session()
    with tempfile.TemporaryDirectory() as tmp:
        warm = bundles(30, Path(tmp))
        for bundle in warm:  # the server's JIT and caches first
            transaction(session, base, bundle)
        work = bundles(args.n, Path(tmp))
    third = len(work) // 3
    results = {}
    for name, fn, part in [
        ("single", singles, work[:third]),
        ("tx plain", plain, work[third : 2 * third]),
        ("tx conditional", transaction, work[2 * third :]),
    ]:
        start = time.perf_counter()
        count = sum(fn(session, base, bundle) for bundle in part)
        results[name] = (time.perf_counter() - start) * 1000 / count
        print(f"{name:>15}: {count} resources, {results[name]:.2f} ms per resource")
    ratio = results["single"] / results["tx conditional"]
    print(f"single / tx conditional: {ratio:.1f}x per server core (one thread, {base})")


if __name__ == "__main__":
    main()
