"""``symfhir policy notify`` against the local HAPI FHIR server and a local SMTP catcher:
after a significant change, a client whose consent predates it and who has an e-mail in use
is e-mailed once (a Communication records it), one without is listed to tell in person."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from symfhir.audit import ClientAuditTrail
from symfhir.cli import main
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.policy_versions import PolicyHistory, PolicyVersion
from symfhir.privacy import policy_notice
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import capture_consent
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration

# The bundled version (what a capture records today) followed by a significant change.
HISTORY = PolicyHistory(
    (
        PolicyVersion("2026-01-01", date(2026, 1, 1), False, ""),
        PolicyVersion("2099-01-01", date(2099, 1, 1), True, "Photos may appear on social media."),
    )
)


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


def client_with_consent(client: FhirClient, actor: Actor, email: str | None) -> str:
    telecom = [{"system": "email", "value": email}] if email else []
    pid = synthetic_patient(client, birthDate="1990-04-01", telecom=telecom)
    form = {
        "kind": "treatment",
        "decision": "given",
        "signer": "client",
        "signer_name": "Avery Quillfeather",
        "typed_signature": "Avery Quillfeather",
    }
    trail = ClientAuditTrail(client, pid, actor.fhir_user)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    assert capture_consent(client, actor, pid, form, audit=trail, now=earlier).outcome == "saved"
    return pid


def test_notify_emails_once_and_lists_the_rest(
    client, fhir_base, smtp_catcher, monkeypatch, capsys
):
    actor = synthetic_practitioner(client)
    address = f"avery.{uuid.uuid4().hex[:12]}@example.com"
    emailed = client_with_consent(client, actor, address)
    in_person = client_with_consent(client, actor, None)
    monkeypatch.setattr(policy_notice, "load_policy_history", lambda: HISTORY)
    settings = smtp_catcher.config()
    for key in ("host", "port", "security", "from"):
        monkeypatch.setenv(f"SYMFHIR_SMTP_{key.upper()}", str(settings[key]))
    args = ["policy", "notify", "--patient", emailed, "--patient", in_person]
    args += ["--server", fhir_base, "--user", str(actor.fhir_user)]

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"Patient/{emailed}\tto-send\ttreatment" in out
    assert f"Patient/{in_person}\tin-person\ttreatment" in out
    assert address not in out  # addresses stay on the server
    assert smtp_catcher.messages() == []

    assert main(args) == 0
    assert f"Patient/{emailed}\tsent\ttreatment" in capsys.readouterr().out
    (mail,) = smtp_catcher.wait_for(1)
    assert mail.envelope_to == (address,)
    assert mail.subject == "Symetrie Studio Spa: changes to our privacy policy"
    assert "Photos may appear on social media." in mail.message.get_content()
    (record,) = client.search_all("Communication", {"subject": f"Patient/{emailed}"})
    assert record["status"] == "completed"
    assert record["identifier"][0]["value"] == emailed

    # Run again: already told of this version, so no second e-mail.
    assert main(args) == 0
    assert f"Patient/{emailed}\talready-sent\ttreatment" in capsys.readouterr().out
    assert len(smtp_catcher.messages()) == 1


def test_without_a_significant_change_nobody_is_told(client, fhir_base, capsys):
    actor = synthetic_practitioner(client)
    pid = client_with_consent(client, actor, "someone@example.com")
    assert main(["policy", "notify", "--patient", pid, "--server", fhir_base, "--dry-run"]) == 0
    assert "nobody to tell" in capsys.readouterr().out
