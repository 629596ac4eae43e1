"""The import job against an in-memory FHIR server: batching, isolation, resume, counts."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from symfhir.errors import (
    ConfigError,
    FhirCapabilityError,
    FhirConflictError,
    FhirRequestError,
    FhirTransportError,
)
from symfhir.importing.batch import as_updates, merge, outcome_counts
from symfhir.importing.checkpoint import Checkpoint
from symfhir.importing.job import Importer, ImportOptions
from symfhir.importing.progress import Progress
from symfhir.map_job import MapOptions
from tests.conftest import AS_OF, SAMPLE

pytestmark = pytest.mark.unit

CLIENTS = SAMPLE / "clients.csv"
PHOTOS = SAMPLE / "photos.csv"
# The sample: 43 rows, 30 valid clients (13 rows rejected by the mapping on purpose).
ROWS, VALID = 43, 30


class Caps:
    def __init__(self, missing: frozenset[str] = frozenset()) -> None:
        self.missing = missing

    def can(self, resource_type: str, interaction: str) -> bool:
        return resource_type not in self.missing

    def require_system(self, interaction: str, purpose: str) -> None:
        if interaction in self.missing:
            raise FhirCapabilityError("capabilities", f"server cannot {interaction} ({purpose})")


class FakeServer:
    """Conditional creates and updates keyed by their criteria, like a FHIR server."""

    def __init__(self, missing: frozenset[str] = frozenset()) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.writes: Counter[str] = Counter()  # criteria -> times created
        self.calls = 0
        self.poison: set[str] = set()  # client ids whose Patient the server refuses
        self.fail_after: int | None = None  # transport failure from this call on
        self.conflicts = 0  # answer 409 this many times first
        self.caps = Caps(missing)

    def capabilities(self) -> Caps:
        return self.caps

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise FhirTransportError("transaction", "connection refused")
        if self.conflicts:
            self.conflicts -= 1
            raise FhirConflictError("transaction", "version conflict", status=409)
        keys = [
            json.dumps([entry["request"].get("ifNoneExist"), entry["request"]["url"]])
            for entry in bundle["entry"]
        ]
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":
                client_id = resource["identifier"][0]["value"]
                if client_id in self.poison:
                    issue = ("error", "processing", "Patient.birthDate is odd", "Patient.birthDate")
                    raise FhirRequestError("transaction", "Patient.birthDate is odd", 400, [issue])
        answers = []
        for key, entry in zip(keys, bundle["entry"], strict=True):
            if key in self.store:
                changed = self.store[key] != entry["resource"]
                if entry["request"]["method"] == "PUT" and changed:
                    self.store[key] = entry["resource"]
                    answers.append({"response": {"status": "200 OK", "etag": 'W/"2"'}})
                else:
                    answers.append({"response": {"status": "200 OK", "etag": 'W/"1"'}})
            else:
                self.store[key] = entry["resource"]
                self.writes[key] += 1
                answers.append({"response": {"status": "201 Created", "etag": 'W/"1"'}})
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}


def options(tmp_path: Path, **overrides: Any) -> ImportOptions:
    now = datetime.fromisoformat(AS_OF)
    values: dict[str, Any] = {
        "map": MapOptions(now=now, photos=PHOTOS),
        "server": "http://fake/fhir",
        "checkpoint": tmp_path / "run.checkpoint.json",
        "rejects": tmp_path / "rejects.csv",
        "batch_size": 4,
        "workers": 3,
    }
    values.update(overrides)
    return ImportOptions(**values)


def run(server: FakeServer, opts: ImportOptions) -> Any:
    progress = Progress(ROWS, stream=io.StringIO(), tty=False)
    return Importer(server, opts, progress, sleep=lambda _: None).run(CLIENTS)


def reject_records(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["_record"] for row in csv.DictReader(fh)]


def test_import_writes_every_valid_client_once_and_counts_add_up(tmp_path):
    server = FakeServer()
    summary = run(server, options(tmp_path))
    assert summary.records == ROWS
    assert summary.imported == VALID
    assert summary.imported + summary.rejected == summary.records
    assert summary.outcomes["created"] == len(server.store)
    assert summary.outcomes["created"] + summary.outcomes["unchanged"] == summary.resources
    assert set(server.writes.values()) == {1}
    assert len(reject_records(tmp_path / "rejects.csv")) == ROWS - VALID
    assert summary.photos_attached + summary.photos_rejected == summary.photos
    point = json.loads((tmp_path / "run.checkpoint.json").read_text())
    assert point["complete"] is True
    assert point["imported"] == VALID


def test_second_run_creates_nothing(tmp_path):
    server = FakeServer()
    first = run(server, options(tmp_path))
    stored = dict(server.store)
    second = run(server, options(tmp_path))
    assert second.imported == first.imported
    assert second.outcomes["created"] == 0
    assert second.outcomes["unchanged"] == second.resources
    assert server.store == stored


def test_a_refused_client_is_isolated_and_rejected_with_the_servers_reason(tmp_path):
    server = FakeServer()
    server.poison = {"C0005"}
    summary = run(server, options(tmp_path))
    assert summary.imported == VALID - 1
    assert summary.server_rejected == 1
    assert summary.isolated_batches == 1
    with (tmp_path / "rejects.csv").open(encoding="utf-8", newline="") as fh:
        rows = {row["client_id"]: row for row in csv.DictReader(fh)}
    assert rows["C0005"]["_field"] == "Patient.birthDate"
    assert "refused" in rows["C0005"]["_reason"]
    assert "Patient.birthDate is odd" in rows["C0005"]["_reason"]
    # The refused client's batch mates still landed, each exactly once.
    assert set(server.writes.values()) == {1}


def test_killed_run_resumes_and_writes_every_record_exactly_once(tmp_path):
    server = FakeServer()
    server.fail_after = 3
    with pytest.raises(FhirTransportError):
        run(server, options(tmp_path, workers=1))
    point = json.loads((tmp_path / "run.checkpoint.json").read_text())
    assert point["complete"] is False
    assert 0 < point["imported"] < VALID
    server.fail_after = None
    calls_before = server.calls
    summary = run(server, options(tmp_path, workers=2, resume=True))
    assert summary.skipped > 0
    assert summary.skipped + summary.imported + summary.rejected == ROWS
    assert summary.total_imported == VALID
    assert set(server.writes.values()) == {1}
    # Settled records are not sent again.
    assert server.calls - calls_before < (VALID + 3) // 4 + 1
    # The rejects file was continued, not rewritten: each rejected row once.
    records = reject_records(tmp_path / "rejects.csv")
    assert len(records) == len(set(records)) == ROWS - VALID


def test_resume_refuses_a_checkpoint_of_another_input(tmp_path):
    point = Checkpoint.fresh(tmp_path / "run.checkpoint.json", {"input": "0" * 64})
    point.save()
    with pytest.raises(ConfigError, match="different input"):
        run(FakeServer(), options(tmp_path, resume=True))


def test_resume_of_a_finished_import_sends_nothing(tmp_path):
    server = FakeServer()
    run(server, options(tmp_path))
    calls = server.calls
    summary = run(server, options(tmp_path, resume=True))
    assert server.calls == calls
    assert summary.skipped == VALID
    assert summary.imported == 0


def test_conflicts_from_racing_writers_are_retried(tmp_path):
    server = FakeServer()
    server.conflicts = 2
    summary = run(server, options(tmp_path, workers=1))
    assert summary.imported == VALID
    assert summary.server_rejected == 0


def test_a_server_failing_for_every_client_stops_the_run(tmp_path):
    class Broken(FakeServer):
        def transaction(self, bundle):
            raise FhirTransportError("transaction", "internal error", status=500)

    with pytest.raises(FhirTransportError):
        run(Broken(), options(tmp_path))


def test_dry_run_sends_nothing(tmp_path):
    server = FakeServer()
    summary = run(server, options(tmp_path, dry_run=True))
    assert server.calls == 0
    assert summary.imported == VALID
    assert summary.resources > VALID * 10
    assert not (tmp_path / "run.checkpoint.json").exists()
    assert "nothing was written" in "\n".join(summary.lines(dry_run=True))


def test_update_mode_replaces_changed_resources_only(tmp_path):
    server = FakeServer()
    run(server, options(tmp_path, update=True))
    patient_key = next(k for k in server.store if "Patient?identifier=" in k and "C0001" in k)
    server.store[patient_key] = {**server.store[patient_key], "gender": "unknown"}
    summary = run(server, options(tmp_path, update=True))
    assert summary.outcomes["updated"] == 1
    assert summary.outcomes["created"] == 0


def test_missing_media_and_consent_fall_back_to_document_reference(tmp_path):
    server = FakeServer(missing=frozenset({"Media", "Consent"}))
    summary = run(server, options(tmp_path))
    assert summary.imported == VALID
    assert summary.fallbacks["Media"] == summary.photos_attached
    assert summary.fallbacks["Consent"] > VALID
    types = {json.loads(k)[1].split("?")[0] for k in server.store}
    assert "Media" not in types
    assert "Consent" not in types
    assert "DocumentReference" in types
    text = "\n".join(summary.lines())
    assert "cannot create Media" in text
    assert "cannot create Consent" in text


def test_merge_keeps_shared_entries_once():
    a = {"entry": [{"fullUrl": "urn:uuid:org"}, {"fullUrl": "urn:uuid:a"}]}
    b = {"entry": [{"fullUrl": "urn:uuid:org"}, {"fullUrl": "urn:uuid:b"}]}
    merged = merge([a, b])
    assert [e["fullUrl"] for e in merged["entry"]] == ["urn:uuid:org", "urn:uuid:a", "urn:uuid:b"]
    assert merged["type"] == "transaction"


def test_as_updates_turns_identifier_creates_into_conditional_puts():
    bundle = {
        "entry": [
            {"request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=s|1"}},
            {"request": {"method": "POST", "url": "Binary", "ifNoneExist": "_tag=s|k"}},
        ]
    }
    out = as_updates(bundle)
    assert out["entry"][0]["request"] == {"method": "PUT", "url": "Patient?identifier=s|1"}
    assert out["entry"][1]["request"]["method"] == "POST"
    assert bundle["entry"][0]["request"]["method"] == "POST"  # input untouched


NO_CHANGE = "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH_NO_CHANGE"


@pytest.mark.parametrize(
    ("method", "response", "expected"),
    [
        ("POST", {"status": "201 Created"}, "created"),
        ("POST", {"status": "200 OK"}, "unchanged"),
        ("PUT", {"status": "201 Created"}, "created"),
        ("PUT", {"status": "200 OK", "etag": 'W/"3"'}, "updated"),
        ("PUT", {"status": "200 OK", "etag": 'W/"1"'}, "unchanged"),
        (
            "PUT",
            {
                "status": "200 OK",
                "etag": 'W/"4"',
                "outcome": {
                    "issue": [
                        {
                            "details": {
                                "coding": [
                                    {
                                        "system": "https://hapifhir.io/fhir/CodeSystem/"
                                        "hapi-fhir-storage-response-code",
                                        "code": NO_CHANGE,
                                    }
                                ]
                            }
                        }
                    ]
                },
            },
            "unchanged",
        ),
    ],
)
def test_outcome_of_each_answer(method, response, expected):
    request = {"entry": [{"request": {"method": method}}]}
    assert outcome_counts(request, {"entry": [{"response": response}]}) == {expected: 1}


def test_a_response_that_does_not_answer_every_entry_is_an_error():
    with pytest.raises(ValueError, match="every entry"):
        outcome_counts({"entry": [{"request": {"method": "POST"}}]}, {"entry": []})


def test_progress_plain_lines_and_terminal_bar():
    out = io.StringIO()
    ticks = iter([0.0, 6.0, 20.0])
    progress = Progress(100, stream=out, tty=False, every_s=5, clock=lambda: next(ticks))
    progress.update(10, 9, 1)
    progress.finish(100, 90, 10)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("import: 10/100 records (10%): 9 imported, 1 rejected")
    assert lines[-1].startswith("import: 100/100 records (100%)")
    bar = io.StringIO()
    ticks = iter([0.0, 1.0, 2.0])
    Progress(4, stream=bar, tty=True, clock=lambda: next(ticks)).finish(2, 2, 0)
    assert bar.getvalue().startswith("\r[##############..............] 2/4 records (50%)")


def test_a_server_without_transactions_is_refused_before_anything_is_sent(tmp_path):
    server = FakeServer(missing=frozenset({"transaction"}))
    with pytest.raises(FhirCapabilityError, match="cannot transaction"):
        run(server, options(tmp_path))
    assert server.calls == 0


def test_a_server_that_cannot_create_patients_is_refused(tmp_path):
    server = FakeServer(missing=frozenset({"Patient"}))
    with pytest.raises(FhirCapabilityError, match="Patient"):
        run(server, options(tmp_path))
    assert server.calls == 0
