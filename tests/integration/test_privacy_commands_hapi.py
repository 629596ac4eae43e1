"""``symfhir privacy …`` against the local HAPI FHIR server: the desk's and the portal's paths
through the command line, PHI-minimal output, refusals as exit code 2 with the reason, and the
officer's reminder caught by a local SMTP server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from symfhir.cli import main
from symfhir.fhir import FhirClient, ServerConfig
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration

NAME = "Avery Quillfeather"


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def run(fhir_base: str, capsys: pytest.CaptureFixture[str]):
    def privacy(*argv: str) -> tuple[int, str, str]:
        code = main(["privacy", argv[0], "--server", fhir_base, *argv[1:]])
        out, err = capsys.readouterr()
        return code, out, err

    return privacy


def _task_id(out: str) -> str:
    found = re.search(r"Task/(\S+)", out)
    assert found, out
    return found[1]


def test_the_desk_path(run, client) -> None:
    officer = synthetic_practitioner(client).fhir_user
    patient = synthetic_patient(client, birthDate="1985-04-12")
    code, out, _ = run(
        "new",
        "--kind=deletion",
        f"--name={NAME}",
        "--birth-date=1985-04-12",
        f"--patient={patient}",
        "--verified-in-person",
        f"--user={officer}",
        "--as-of=2026-11-25T09:30:00-06:00",
    )
    assert code == 0, out
    assert "created" in out and "identity-verified" in out and "due 2026-12-25" in out
    assert NAME not in out
    task = _task_id(out)

    code, out, _ = run("show", task)
    assert code == 0
    assert NAME in out and f"Patient/{patient}" in out and "verification" in out

    code, out, err = run("list", f"--patient={patient}", "--as-of=2026-12-30T09:00:00-06:00")
    assert code == 0
    assert f"Task/{task}" in out and "5 days overdue" in out and NAME not in out

    code, out, _ = run("extend", task, "--reason=Backup restore", f"--user={officer}")
    assert code == 0 and "due 2027-01-24" in out
    code, _, err = run("extend", task, "--reason=Again", f"--user={officer}")
    assert code == 2 and "already extended" in err and "Traceback" not in err

    code, out, _ = run("close", task, "--deny=Records under a legal hold", f"--user={officer}")
    assert code == 0 and "denied" in out
    code, out, _ = run("list", f"--patient={patient}")
    assert f"Task/{task}" not in out
    code, out, _ = run("list", f"--patient={patient}", "--all")
    assert f"Task/{task}" in out


def test_the_portal_path_verify_match_and_no_handler(
    run, client, smtp_catcher, monkeypatch
) -> None:
    for key, value in smtp_catcher.config().items():
        monkeypatch.setenv(f"SYMFHIR_SMTP_{key.upper()}", str(value))
    email = f"cli.{uuid.uuid4().hex[:10]}@example.com"
    patient = synthetic_patient(
        client, birthDate="1985-04-12", telecom=[{"system": "email", "value": email}]
    )
    code, out, _ = run(
        "new", "--kind=correction", f"--name={NAME}", "--birth-date=1985-04-12", f"--email={email}"
    )
    task = _task_id(out)
    code, _, err = run("process", task)
    assert code == 2 and "not verified" in err
    code, _, err = run("match", task)
    assert code == 2 and "verify" in err
    code, out, _ = run("verify", task, "--method=email-code")
    assert code == 0 and "identity-verified" in out
    code, out, _ = run("match", task)
    assert code == 0 and f"matched to Patient/{patient}" in out
    code, _, err = run("process", task)
    assert code == 2 and "correction: proposed: is required" in err  # nothing proposed

    code, out, err = run("extend", task, "--reason=Our records archive is being restored")
    assert code == 0 and "e-mailed" in err
    [notice] = smtp_catcher.wait_for(1)
    assert notice.to == email
    assert "Our records archive is being restored" in notice.text
    assert "Correction" in notice.text and "We will answer by" in notice.text


def test_an_ambiguous_match_lists_candidates_without_names(run, client) -> None:
    officer = synthetic_practitioner(client).fhir_user
    email = f"twins.{uuid.uuid4().hex[:10]}@example.com"
    telecom = [{"system": "email", "value": email}]
    first = synthetic_patient(client, birthDate="1985-04-12", telecom=telecom)
    second = synthetic_patient(client, birthDate="1985-04-12", telecom=telecom)
    _, out, _ = run(
        "new", "--kind=access", f"--name={NAME}", "--birth-date=1985-04-12", f"--email={email}"
    )
    task = _task_id(out)
    run("verify", task, "--method=email-code")
    code, out, err = run("match", task)
    assert code == 1
    assert f"Patient/{first}" in out and f"Patient/{second}" in out and NAME not in out
    assert "--patient" in err
    code, out, _ = run("match", task, f"--patient={second}")
    assert code == 2  # who chose must be named
    code, out, _ = run("match", task, f"--patient={second}", f"--user={officer}")
    assert code == 0 and f"Patient/{second}" in out


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--email=not-an-email"], "email: is not a valid e-mail address"),
        (["--phone=12"], "phone: is not a valid phone number"),
        (["--input=novalue"], "NAME=VALUE"),
        (["--verified-in-person"], "--user"),
    ],
)
def test_bad_input_is_refused_with_the_reason(run, argv, reason) -> None:
    code, out, err = run("new", "--kind=access", f"--name={NAME}", *argv)
    assert code == 2
    assert reason in err and out == ""


def test_remind_emails_the_officer(run, client, smtp_catcher, monkeypatch) -> None:
    for key, value in smtp_catcher.config().items():
        monkeypatch.setenv(f"SYMFHIR_SMTP_{key.upper()}", str(value))
    email = f"late.{uuid.uuid4().hex[:10]}@example.com"
    _, out, _ = run(
        "new",
        "--kind=opt-out",
        f"--name={NAME}",
        f"--email={email}",
        "--as-of=2026-06-01T09:00:00-05:00",
    )
    task = _task_id(out)
    code, out, err = run("remind", "--as-of=2026-07-06T09:00:00-05:00", "--to=officer@example.com")
    assert code == 0, err
    assert f"Task/{task}" in out and "5 days overdue" in out
    mail = smtp_catcher.wait_for(1)[0]
    assert mail.to == "officer@example.com"
    assert mail.subject.startswith("Privacy requests: ")
    assert f"Task/{task}" in mail.text
    assert NAME not in mail.text and email not in mail.text
