"""Fixtures for tests against the local HAPI FHIR server (scripts/fhir-server)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from symfhir.cardnumbers import luhn_valid
from symfhir.fhir import FhirClient
from symfhir.model.client import NPI_PREFIX
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fhir-server"
PORT = os.environ.get("FHIR_PORT", "8080")
# FHIR_BASE_URL points the integration tests at another server (a hosted HAPI, an EHR
# sandbox); it is then used as it is, never started or stopped.
REMOTE = os.environ.get("FHIR_BASE_URL", "").rstrip("/")
BASE = REMOTE or f"http://localhost:{PORT}/fhir"
FHIR_JSON = "application/fhir+json"
# A cold start may build the jar (Maven downloads) and then wait up to 300 s for /metadata.
START_TIMEOUT_S = 1200


def _server_answers() -> bool:
    try:
        with requests.get(f"{BASE}/metadata", timeout=5) as response:
            return response.status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="session")
def fhir_base() -> Iterator[str]:
    """The base URL of a running server; started (and stopped afterwards) if it was not up."""
    started = False
    if REMOTE and not _server_answers():
        pytest.fail(f"FHIR_BASE_URL={REMOTE} does not answer /metadata", pytrace=False)
    if not _server_answers():
        result = subprocess.run(
            [str(SCRIPT), "start"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0 or not _server_answers():
            pytest.fail(
                f"scripts/fhir-server start failed (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        started = True
    yield BASE
    if started and not os.environ.get("FHIR_KEEP_SERVER"):
        subprocess.run(
            [str(SCRIPT), "stop"], cwd=ROOT, capture_output=True, timeout=120, check=False
        )


@pytest.fixture
def fhir(fhir_base: str) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update({"Accept": FHIR_JSON, "Content-Type": FHIR_JSON})
        yield session


def synthetic_practitioner(client: FhirClient) -> Actor:
    """A new synthetic practitioner as the acting user: HAPI checks that the agents of a
    Provenance or an AuditEvent exist."""
    practitioner = client.create(
        {"resourceType": "Practitioner", "name": [{"family": "Synthetic", "given": ["Nurse"]}]}
    )
    return Actor(f"Practitioner/{practitioner.id}")


def synthetic_patient(client: FhirClient, **fields: object) -> str:
    """A new synthetic client with a client id of its own (reruns against the same database
    never collide); ``fields`` are added to the Patient. Returns its id."""
    patient = client.create(
        {
            "resourceType": "Patient",
            "identifier": [
                {"system": f"{load_spa().identifier_base}/client-id", "value": uuid.uuid4().hex}
            ],
            "name": [{"family": "Quillfeather", "given": ["Avery"]}],
            **fields,
        }
    )
    return patient.id


@pytest.fixture(scope="session")
def empty_fhir_base(fhir_base: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a SECOND, empty HAPI server started for this session by
    scripts/fhir-server on a free port with a data folder (database, pid file, log) of its
    own, and stopped at the end: the main server is never touched. It runs the jar the main
    server's start built (``fhir_base`` first), so a fresh clone builds it once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    env = {**os.environ, "FHIR_PORT": port, "FHIR_DATA_DIR": str(tmp_path_factory.mktemp("hapi2"))}
    result = subprocess.run(
        [str(SCRIPT), "start"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    base = f"http://localhost:{port}/fhir"
    try:
        if result.returncode != 0:
            pytest.fail(
                f"scripts/fhir-server start on port {port} failed (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        yield base
    finally:
        subprocess.run(
            [str(SCRIPT), "stop"], cwd=ROOT, env=env, capture_output=True, timeout=120, check=False
        )


def random_npi() -> str:
    """A 10-digit NPI of this run whose check digit is right: a Practitioner a test creates on
    the shared server must not take the NPI of one the sample import creates conditionally."""
    body = "1" + "".join(random.choices("0123456789", k=8))
    return next(body + d for d in "0123456789" if luhn_valid(NPI_PREFIX + body + d))
