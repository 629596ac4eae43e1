"""The local HAPI server the benchmarks measure against: started by scripts/fhir-server when it
is not answering (the benchmarks run as scripts, so this module is imported from their folder)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def ensure_server(base: str) -> None:
    """Start the local HAPI server unless ``base`` answers ``/metadata`` already."""
    try:
        if requests.get(f"{base}/metadata", timeout=5).status_code == 200:
            return
    except requests.ConnectionError:
        pass
    subprocess.run([str(ROOT / "scripts" / "fhir-server"), "start"], check=True)
