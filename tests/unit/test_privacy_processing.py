"""process_request: dispatch by kind to the handler named in the settings, refusals before
verification and match, no handler -> a clear refusal, the handler's outcome on the Task."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from symfhir.errors import PrivacyRequestError
from symfhir.privacy.matching import match_patient
from symfhir.privacy.model import COMPLETED, IN_PROGRESS, KINDS, Requester, Verification
from symfhir.privacy.processing import handler_for, process_request
from symfhir.privacy.requests import NewRequest, get_request, record_verification, submit_request
from symfhir.privacy.tasks import Settings
from symfhir.workspace.actor import Actor
from tests.unit import privacy_handlers
from tests.unit.fake_fhir import Trail
from tests.unit.privacy_fake import FakeServer

OFFICER = Actor("Practitioner/officer-1")
HANDLERS = {
    "access": "tests.unit.privacy_handlers:handle",
    "correction": "tests.unit.privacy_handlers:waiting",
    "deletion": "tests.unit.privacy_handlers:broken",
    "opt-out": "tests.unit.privacy_handlers:not_an_outcome",
    "portability": "tests.unit.no_such_module:handle",
    "restriction": "tests.unit.privacy_handlers:no_such_function",
}


@pytest.fixture
def settings() -> Settings:
    loaded = Settings.load()
    return Settings(loaded.spa, replace(loaded.policy, handlers=HANDLERS))


@pytest.fixture
def server() -> FakeServer:
    fake = FakeServer()
    fake.add(
        {
            "resourceType": "Patient",
            "id": "avery",
            "birthDate": "1985-04-12",
            "telecom": [{"system": "email", "value": "avery.q@example.com"}],
        }
    )
    return fake


def _request(server: FakeServer, now: datetime, kind: str, *, ready: bool = True) -> str:
    requester = Requester("Avery Quillfeather", date(1985, 4, 12), "avery.q@example.com")
    trail = Trail()
    task_id = submit_request(
        server, OFFICER, NewRequest(kind, requester), now=now, audit=trail
    ).request.task_id
    if ready:
        verification = Verification("email-code", None, now)
        record_verification(server, OFFICER, task_id, verification, now=now, audit=trail)
        assert match_patient(server, OFFICER, task_id, now=now, audit=trail).matched == "avery"
    return task_id


def test_the_handler_of_the_kind_runs_and_its_outcome_lands_on_the_task(
    server, now, settings
) -> None:
    task_id = _request(server, now, "access")
    trail = Trail()
    privacy_handlers.seen_calls.clear()
    processed = process_request(server, OFFICER, task_id, now=now, audit=trail, settings=settings)
    assert privacy_handlers.seen_calls == [("access", "avery", IN_PROGRESS, now)]
    assert processed.request.request.business_status == COMPLETED
    task = server.read("Task", task_id)
    assert task["status"] == "completed"
    assert task["businessStatus"]["coding"][0]["code"] == "completed"
    assert task["output"] == [
        {
            "type": {"text": "access-package"},
            "valueAttachment": {
                "contentType": "application/zip",
                "url": "Binary/pkg-1",
                "title": "access.zip",
            },
        },
        {"type": {"text": "summary"}, "valueString": "Package ready"},
    ]
    assert [e[2] for e in trail.events] == [
        "privacy request read",
        "privacy request started",
        "test handler read the record",
        "privacy request closed: completed",
    ]


def test_an_in_progress_outcome_keeps_outputs_and_stays_open(server, now, settings) -> None:
    task_id = _request(server, now, "correction")
    processed = process_request(server, OFFICER, task_id, now=now, audit=Trail(), settings=settings)
    request = processed.request.request
    assert request.business_status == IN_PROGRESS
    assert [o.label for o in request.outputs] == ["proposed-change", "progress"]


def test_a_handler_that_fails_leaves_the_request_in_progress(server, now, settings) -> None:
    task_id = _request(server, now, "deletion")
    with pytest.raises(RuntimeError, match="halfway"):
        process_request(server, OFFICER, task_id, now=now, audit=Trail(), settings=settings)
    view = get_request(server, OFFICER, task_id, now=now, audit=Trail(), settings=settings)
    assert view.request.business_status == IN_PROGRESS


def test_a_handler_returning_no_outcome_is_refused(server, now, settings) -> None:
    task_id = _request(server, now, "opt-out")
    with pytest.raises(PrivacyRequestError, match="returned no Outcome"):
        process_request(server, OFFICER, task_id, now=now, audit=Trail(), settings=settings)


@pytest.mark.parametrize("kind", ["ccpa-delete", "portability", "restriction"])
def test_a_kind_without_a_handler_is_refused_never_skipped(server, now, settings, kind) -> None:
    task_id = _request(server, now, kind)
    with pytest.raises(PrivacyRequestError, match=f"no handler for {kind} yet"):
        process_request(server, OFFICER, task_id, now=now, audit=Trail(), settings=settings)
    assert server.read("Task", task_id)["businessStatus"]["coding"][0]["code"] == (
        "identity-verified"
    )


def test_nothing_is_processed_before_verification(server, now, settings) -> None:
    task_id = _request(server, now, "access", ready=False)
    privacy_handlers.seen_calls.clear()
    with pytest.raises(PrivacyRequestError, match="not verified"):
        process_request(server, OFFICER, task_id, now=now, audit=Trail(), settings=settings)
    assert privacy_handlers.seen_calls == []


def test_a_missing_dependency_of_a_handler_is_not_hidden(tmp_path, monkeypatch) -> None:
    (tmp_path / "handler_with_bad_import.py").write_text(
        "import no_such_dependency_xyz\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        handler_for("access", {"access": "handler_with_bad_import:handle"})


def test_the_bundled_handlers_are_named_for_every_kind() -> None:
    handlers = Settings.load().policy.handlers
    assert set(handlers) == set(KINDS)
    for kind in KINDS:
        assert callable(handler_for(kind, handlers))
    with pytest.raises(PrivacyRequestError, match="no handler for correction yet"):
        handler_for("correction", {k: v for k, v in handlers.items() if k != "correction"})
