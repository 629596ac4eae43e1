"""`symfhir import` against the real HAPI server: round trip, idempotence, resume after a
kill, concurrent imports, photos, and a record the server refuses."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from symfhir.cli import main
from symfhir.fhir import FhirClient, load_config
from tests.conftest import AS_OF, SAMPLE, map_sample
from tests.integration.conftest import BASE, ROOT

pytestmark = pytest.mark.integration

CLIENT_SYSTEM = "http://symfhir.org/fhir/sid/symetrie-studio-spa/client-id"
ORG_SYSTEM = "http://symfhir.org/fhir/sid/organization"
VALID_IN_SAMPLE = 30


def import_args(src: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        "import",
        str(src),
        "--server",
        BASE,
        "--base-dir",
        str(SAMPLE),
        "--checkpoint",
        str(tmp / "checkpoint.json"),
        "--rejects",
        str(tmp / "rejects.csv"),
        "--as-of",
        AS_OF,
        "--quiet",
        *extra,
    ]


def run_import(src: Path, tmp: Path, *extra: str, capsys: Any) -> tuple[int, str]:
    capsys.readouterr()
    code = main(import_args(src, tmp, *extra))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def unique_input(tmp: Path, copies: int = 1) -> tuple[Path, list[str]]:
    """The sample's rows under client ids no other test run uses; returns valid ids."""
    run = uuid.uuid4().hex[:8]
    with (SAMPLE / "clients.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    out_rows = []
    for copy in range(copies):
        for row in rows:
            row = dict(row)
            if row["client_id"]:
                row["client_id"] = f"T{run}-{copy}-{row['client_id']}"
            out_rows.append(row)
    path = tmp / f"clients-{run}.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(out_rows)
    sample_ids = valid_sample_ids()
    valid = [f"T{run}-{copy}-{cid}" for copy in range(copies) for cid in sample_ids]
    return path, valid


_VALID: list[str] = []


def valid_sample_ids() -> list[str]:
    if not _VALID:
        out = Path(os.environ.get("TMPDIR", "/tmp")) / f"sample-{uuid.uuid4().hex}.ndjson"
        map_sample(out)
        for line in out.read_text(encoding="utf-8").splitlines():
            bundle = json.loads(line)
            patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
            _VALID.append(patient["resource"]["identifier"][0]["value"])
        out.unlink()
    return _VALID


def patients_with(fhir: requests.Session, client_id: str) -> int:
    response = fhir.get(
        f"{BASE}/Patient",
        params={"identifier": f"{CLIENT_SYSTEM}|{client_id}", "_summary": "count"},
    )
    response.raise_for_status()
    return response.json()["total"]


def search(fhir: requests.Session, url: str) -> list[dict[str, Any]]:
    found = []
    while url:
        response = fhir.get(url)
        response.raise_for_status()
        page = response.json()
        found += [e["resource"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), "")
    return found


def test_import_round_trip_every_resource_reads_back_equal(fhir, fhir_base, tmp_path, capsys):
    code, out = run_import(
        SAMPLE / "clients.csv", tmp_path, "--photos", str(SAMPLE / "photos.csv"), capsys=capsys
    )
    assert code == 1, out  # the sample's invalid rows are rejected on purpose
    assert f"43 records: {VALID_IN_SAMPLE} imported, 13 rejected" in out
    mapped = tmp_path / "mapped.ndjson"
    map_sample(mapped)
    compared = 0
    for line in mapped.read_text(encoding="utf-8").splitlines():
        bundle = json.loads(line)
        ids: dict[str, str] = {}
        server: dict[str, dict[str, Any]] = {}
        for entry in bundle["entry"]:
            resource_type = entry["resource"]["resourceType"]
            found = search(fhir, f"{BASE}/{resource_type}?{entry['request']['ifNoneExist']}")
            assert len(found) == 1, (resource_type, entry["request"]["ifNoneExist"])
            ids[entry["fullUrl"]] = f"{resource_type}/{found[0]['id']}"
            server[entry["fullUrl"]] = found[0]
        for entry in bundle["entry"]:
            expected = _strip(_resolve(entry["resource"], ids))
            stored = _strip(server[entry["fullUrl"]])
            if expected["resourceType"] == "Provenance":
                # Conditional create keeps the first Provenance of these records: on a
                # server that had them before (make demo seeds the same sample), its own time.
                stored.pop("recorded")
                expected.pop("recorded")
            assert stored == expected, entry["fullUrl"]
            compared += 1
    assert compared > 500


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    """The resource as the server should hold it: urn:uuid references resolved."""
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return ids[value]
    return value


def _strip(resource: dict[str, Any]) -> dict[str, Any]:
    """Drop what the server assigns (id, version, timestamps, source)."""
    out = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    tags = (resource.get("meta") or {}).get("tag")
    if tags:
        out["meta"] = {"tag": tags}
    return out


def test_import_twice_creates_nothing_the_second_time(fhir, fhir_base, tmp_path, capsys):
    src, valid = unique_input(tmp_path)
    code, first = run_import(src, tmp_path, capsys=capsys)
    assert code == 1, first
    assert f"{VALID_IN_SAMPLE} imported" in first
    counts = {kind: _count(fhir, kind) for kind in ("Patient", "Consent", "Observation")}
    code, second = run_import(src, tmp_path, capsys=capsys)
    assert code == 1, second
    assert "resources: 0 created, 0 updated" in second, second
    assert {kind: _count(fhir, kind) for kind in counts} == counts
    assert all(patients_with(fhir, cid) == 1 for cid in valid[:5])


def _count(fhir: requests.Session, resource_type: str) -> int:
    response = fhir.get(f"{BASE}/{resource_type}", params={"_summary": "count"})
    response.raise_for_status()
    return response.json()["total"]


def test_import_killed_midway_resumes_and_writes_each_record_once(fhir, fhir_base, tmp_path):
    src, valid = unique_input(tmp_path, copies=4)  # 172 rows, 120 valid clients
    args = import_args(src, tmp_path, "--batch-size", "2", "--workers", "1")
    checkpoint = tmp_path / "checkpoint.json"
    command = [sys.executable, "-m", "symfhir.cli", *args]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    imported = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists():
            try:
                imported = json.loads(checkpoint.read_text())["imported"]
            except (ValueError, KeyError):
                imported = 0  # mid-replace: read again
            if imported >= 10:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the import ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert 10 <= imported < len(valid)

    resumed = subprocess.run(
        [*command, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 1, resumed.stderr  # the sample's invalid rows
    assert "already imported by an earlier run" in resumed.stdout
    point = json.loads(checkpoint.read_text())
    assert point["complete"] is True
    assert point["imported"] >= len(valid)
    for cid in valid:
        assert patients_with(fhir, cid) == 1, cid
    # Nothing is left to create: every resource is on the server exactly once.
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "resources: 0 created" in again.stdout, again.stdout
    with (tmp_path / "rejects.csv").open(encoding="utf-8", newline="") as fh:
        records = [row["_record"] for row in csv.DictReader(fh)]
    assert len(records) == len(set(records))


def test_two_imports_at_once_create_each_resource_once(fhir, fhir_base, tmp_path, capsys):
    src, valid = unique_input(tmp_path, copies=2)
    results: list[int] = []

    def one(name: str) -> None:
        folder = tmp_path / name
        folder.mkdir()
        results.append(main(import_args(src, folder, "--batch-size", "3", "--workers", "4")))

    threads = [threading.Thread(target=one, args=(f"run{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert results == [1, 1]  # both finish; the sample's invalid rows are rejected
    for cid in valid:
        assert patients_with(fhir, cid) == 1, cid
    org = fhir.get(
        f"{BASE}/Organization", params={"identifier": f"{ORG_SYSTEM}|symetrie-studio-spa"}
    )
    assert org.json()["total"] == 1
    consents = search(
        fhir,
        f"{BASE}/Consent?patient.identifier={CLIENT_SYSTEM}|{valid[0]}&_count=100",
    )
    identifiers = [c["identifier"][0]["value"] for c in consents]
    assert identifiers and len(identifiers) == len(set(identifiers))


def test_imported_photos_read_back_with_their_hash(fhir, fhir_base, tmp_path, capsys):
    _, out = run_import(
        SAMPLE / "clients.csv", tmp_path, "--photos", str(SAMPLE / "photos.csv"), capsys=capsys
    )
    assert "31 photos: 20 attached, 11 rejected" in out
    photo_system = "http://symfhir.org/fhir/sid/symetrie-studio-spa/photo"
    media = search(fhir, f"{BASE}/Media?identifier={photo_system}|&_count=100")
    ours = [m for m in media if m["identifier"][0]["system"] == photo_system]
    assert len(ours) >= 20
    with FhirClient(load_config(server=BASE)) as client:
        for item in ours:
            content = item["content"]
            assert content["url"].startswith("Binary/")
            data = io.BytesIO()
            binary_id = content["url"].removeprefix("Binary/")
            content_type, size, sha1_hex = client.download_binary(binary_id, data)
            assert content_type == content["contentType"]
            assert size == len(data.getvalue()) == content["size"]
            digest = hashlib.sha1(data.getvalue()).digest()
            assert base64.b64encode(digest).decode() == content["hash"]
            assert bytes.fromhex(sha1_hex) == digest


def test_a_client_the_server_refuses_is_rejected_with_its_reason(fhir, fhir_base, tmp_path, capsys):
    src, valid = unique_input(tmp_path)
    # Two Patients already share the client's identifier (a botched earlier migration):
    # the conditional create cannot tell which one is meant, and the server says so.
    victim = valid[3]
    for _ in range(2):
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": CLIENT_SYSTEM, "value": victim}],
        }
        assert fhir.post(f"{BASE}/Patient", data=json.dumps(patient)).status_code == 201
    code, out = run_import(src, tmp_path, capsys=capsys)
    assert code == 1
    assert f"{VALID_IN_SAMPLE - 1} imported" in out
    assert "retried client by client" in out
    with (tmp_path / "rejects.csv").open(encoding="utf-8", newline="") as fh:
        rows = {row["client_id"]: row for row in csv.DictReader(fh)}
    reason = rows[victim]["_reason"]
    assert reason.startswith("the FHIR server refused it")
    assert "matched 2 resources" in reason, reason
    for cid in valid:
        if cid != victim:
            assert patients_with(fhir, cid) == 1
