"""The link service as a real process: ``scripts/serve links`` (gunicorn, as the demo runs
it) over a SQLite store file and the local HAPI. A link is opened with the independent
decoder (tests/shl_decoder.py); the disclosure lands in HAPI as an AuditEvent; the consent is
re-read there (withdrawn: 404); the access log never shows a link's id or key."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from symfhir.fhir import FhirClient, ServerConfig
from symfhir.sharing.gate import Recipient, SharePlan
from symfhir.sharing.links import create_link
from symfhir.sharing.package import SharedFile, SharePackage
from symfhir.store import Store
from tests import shl_decoder
from tests.integration.conftest import synthetic_patient
from tests.unit.sharing_fake import consent

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSCODE = "heron-2291"


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def service(fhir_base: str, tmp_path: Path) -> Iterator[tuple[str, Store, Path]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://localhost:{port}"
    key = Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url, [key])
    store.create_tables()  # before the workers start: none of them races to create them
    log = tmp_path / "links.log"
    env = {
        **os.environ,
        "SYMFHIR_LINKS_BASE_URL": base,
        "SYMFHIR_STORE_URL": url,
        "SYMFHIR_STORE_KEYS": key,
        "FHIR_BASE_URL": fhir_base,
        "SYMFHIR_CONFIG": "",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "serve"), "links"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the link service exited:\n{log.read_text()}", pytrace=False)
            try:
                if requests.get(f"{base}/view", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the link service did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield base, store, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        store.dispose()


def test_a_link_served_by_gunicorn_opens_with_the_independent_decoder(
    client: FhirClient, service: tuple[str, Store, Path]
) -> None:
    base, store, log = service
    now = datetime.now(UTC)
    pid = synthetic_patient(client)
    doctor = client.create(
        {"resourceType": "Practitioner", "name": [{"family": "Rivera", "given": ["Ada"]}]}
    ).id
    given = consent("placeholder", pid=pid, doctor=doctor)
    del given["id"]
    consent_id = client.create(given).id
    summary = b'{"resourceType": "Bundle", "type": "document"}'
    photo = b'{"resourceType": "Media", "content": {"data": "' + b"QUJD" * 50000 + b'"}}'
    plan = SharePlan(
        patient_id=pid,
        basis=f"Consent/{consent_id}",
        recipient=Recipient(f"Practitioner/{doctor}", "Dr. Ada Rivera"),
        scopes=frozenset({"summary", "photos"}),
        types=frozenset({"Patient", "Media"}),
        photos=True,
        start=None,
        end=None,
    )
    package = SharePackage(
        plan=plan,
        files=(
            SharedFile("patient-summary.json", "application/fhir+json", lambda: summary),
            SharedFile("photo-1.json", "application/fhir+json", lambda: photo),
        ),
        counts={"Patient": 1, "Media": 1},
        photos=1,
    )
    link = create_link(
        store,
        package,
        label="For Dr. Rivera",
        passcode=PASSCODE,
        expires_at=now + timedelta(days=1),
        max_accesses=None,
        single_file=False,
        created_by="Practitioner/nurse",
        links_base=base,
        viewer_base=f"{base}/view",
        now=now,
    )
    payload = shl_decoder.parse(link.viewer_url)

    with pytest.raises(shl_decoder.ShlError) as wrong:
        shl_decoder.open_link(payload, recipient="Dr. Rivera", passcode="not-it")
    assert wrong.value.status == 401 and wrong.value.body == {"remainingAttempts": 4}

    files = shl_decoder.open_link(
        payload, recipient="Dr. Rivera (clinic)", passcode=PASSCODE, embedded_length_max=1000
    )
    assert files == [("application/fhir+json", summary), ("application/fhir+json", photo)]

    events = client.search_all("AuditEvent", {"patient": f"Patient/{pid}"})
    disclosures = [
        e for e in events if any(s.get("code") == "Disclosure" for s in e.get("subtype", []))
    ]
    assert len(disclosures) == 1
    assert "Dr. Rivera (clinic)" in disclosures[0]["outcomeDesc"]
    assert disclosures[0]["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"

    # Withdrawn on the server: the service's re-check stops the link.
    withdrawn = client.read("Consent", consent_id)
    withdrawn["status"] = "inactive"
    withdrawn["provision"]["period"]["end"] = now.date().isoformat()
    client.update(withdrawn)
    with pytest.raises(shl_decoder.ShlError) as gone:
        shl_decoder.open_link(payload, recipient="Dr. Rivera", passcode=PASSCODE)
    assert gone.value.status == 404

    deadline = time.monotonic() + 10
    while '"POST" 404' not in (text := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)  # the access log is written after the answer
    assert '"POST" 200' in text and '"POST" 404' in text
    assert link.manifest_url.rsplit("/", 1)[1] not in text
    assert payload["key"] not in text and "/shl/" not in text
