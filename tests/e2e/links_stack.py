"""The public link service of physician sharing as a real process for browser tests: served
by gunicorn exactly as ``make demo`` serves it (``scripts/serve links``) on the e2e stack's
links port (conftest's ``LINKS``), with the stack's store (the app writes links there; the
service reads them) and a FHIR client for its disclosure AuditEvents and its consent re-check.

``links_service`` is a fixture of every e2e module through tests/e2e/conftest.py.
The service reaches the FHIR server with the stack's ``links_config`` (a Backend Services
client registered at the sandbox EHR) when the stack has one, else straight at the stack's HAPI.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from symfhir.store import Store
from tests.e2e.conftest import LINKS, _start, _wait


@dataclass(frozen=True)
class LinksService:
    """The running service: its base URL (``/view`` is the viewer), the store it reads (the
    stack's), its log (gunicorn's access log: the path only, never a query or a fragment) and
    the FHIR base its AuditEvents land on."""

    base: str
    store: Store
    log: Path
    fhir: str

    @property
    def viewer(self) -> str:
        return f"{self.base}/view"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def links_env(stack: dict[str, str], base: str = LINKS) -> dict[str, str]:
    """The environment ``scripts/serve links`` gets: the stack's store and ``base``."""
    env = {
        "SYMFHIR_LINKS_BASE_URL": base,
        "SYMFHIR_STORE_URL": stack["store_url"],
        "SYMFHIR_STORE_KEYS": stack["store_keys"],
    }
    if stack.get("links_config"):
        env.update({"SYMFHIR_CONFIG": stack["links_config"], "FHIR_BASE_URL": ""})
    else:
        env.update({"FHIR_BASE_URL": stack["fhir"], "SYMFHIR_CONFIG": ""})
    return env


@contextmanager
def serve_links(stack: dict[str, str], base: str, log: Path, **env: str) -> Iterator[LinksService]:
    """The link service on ``base`` with the stack's store while the block runs; ``env`` adds
    to its environment (e.g. ``SYMFHIR_WORKERS``)."""
    proc = _start("links", {**links_env(stack, base), **env}, log)
    store = Store(stack["store_url"], [stack["store_keys"]])
    try:
        _wait(f"{base}/view", proc, "link service", log)
        yield LinksService(base=base, store=store, log=log, fhir=stack["fhir"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        store.engine.dispose()


@pytest.fixture(scope="session")
def links_service(
    stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LinksService]:
    """The link service for the whole session (one process on the links port)."""
    log = tmp_path_factory.mktemp("links") / "links.log"
    with serve_links(stack, LINKS, log) as service:
        yield service
