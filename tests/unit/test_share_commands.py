"""``symfhir share``: the actions are registered, secrets come only from the environment, the
link is printed and its QR codes written, a push target is built from the options, and a
refusal is exit code 2 with the reason (the workflows are replaced by recorders here; they are
tested on their own)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from symfhir import cli
from symfhir.errors import ConsentMissing
from symfhir.sharing import commands
from symfhir.sharing.gate import Recipient, SharePlan
from symfhir.sharing.links import NewLink
from symfhir.sharing.push import MODES, PushReport, PushTarget

pytestmark = pytest.mark.unit

EXPIRES = datetime(2026, 12, 25, 9, 30).astimezone()


@dataclass
class Created:
    link: NewLink
    plan: SharePlan
    counts: dict[str, int]
    photos: int


def _link() -> NewLink:
    return NewLink(
        link_id="L1",
        manifest_url="http://links.example/shl/m/x",
        payload={},
        shlink="shlink:/eyJ1cmwiOiJ4In0",
        viewer_url="http://links.example/view#shlink:/eyJ1cmwiOiJ4In0",
        qr_png=b"\x89PNG qr",
        qr_svg="<svg>qr</svg>",
        expires_at=EXPIRES,
        flags="P",
    )


def _plan() -> SharePlan:
    return SharePlan(
        patient_id="p1",
        basis="Consent/c1",
        recipient=Recipient("Practitioner/doc1", "Dr. Dana Ashgrove"),
        scopes=frozenset({"summary"}),
        types=frozenset({"Patient"}),
        photos=False,
        start=None,
        end=None,
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[tuple[str, Any]]]:
    """Workflows replaced by recorders; the store a SQLite file of the test's own."""
    seen: list[tuple[str, Any]] = []
    monkeypatch.setenv("SYMFHIR_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("SYMFHIR_STORE_KEYS", Fernet.generate_key().decode())

    @contextlib.contextmanager
    def no_server(args: argparse.Namespace) -> Iterator[object]:
        seen.append(("server", args.server))
        yield object()

    def create_share(*args: Any, **kw: Any) -> Created:
        seen.append(("create", kw))
        return Created(_link(), _plan(), {"Patient": 1, "AllergyIntolerance": 2}, 0)

    def push_share(*args: Any, **kw: Any) -> PushReport:
        seen.append(("push", kw))
        return PushReport(kw["target"].base_url, kw["mode"], "Dr. A", {"Bundle": 1}, {})

    def refuse(*args: Any, **kw: Any) -> None:
        raise ConsentMissing("the client's consent does not cover: photos", ("photos",))

    monkeypatch.setattr(commands, "open_client", no_server)
    monkeypatch.setattr("symfhir.sharing.workflow.create_share", create_share)
    monkeypatch.setattr("symfhir.sharing.push.push_share", push_share)
    monkeypatch.setattr("symfhir.sharing.transfer.transfer_request", refuse)
    yield seen


def test_share_is_registered_with_every_action() -> None:
    assert "symfhir.sharing.commands" in cli.FEATURE_COMMANDS
    assert commands.MODES == MODES
    for action in ("create", "list", "revoke", "log", "push", "transfer", "purge"):
        with pytest.raises(SystemExit) as done:
            cli.main(["share", action, "--help"])
        assert done.value.code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["share", "push", "--patient", "p1", "--to", "https://x.example/fhir", "--token", "t"],
        ["share", "push", "--patient", "p1", "--to", "https://x.example/fhir", "--bearer", "t"],
        ["share", "create", "--patient", "p1", "--passcode", "1234"],
    ],
)
def test_no_secret_is_taken_on_the_command_line(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 2  # argparse: unknown option


def test_create_prints_the_link_and_writes_both_qr_codes(
    calls: list[tuple[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHARE_PASSCODE", "correct horse")
    png, svg = tmp_path / "qr.png", tmp_path / "qr.svg"
    code = cli.main(
        [
            "share", "create", "--patient", "p1", "--scope", "intake", "--scope", "photos",
            "--label", "For Dr. Ashgrove", "--passcode-env", "SHARE_PASSCODE", "--days", "7",
            "--max-accesses", "3", "--start", "2026-01-01", "--qr-png", str(png),
            "--qr-svg", str(svg), "--user", "Practitioner/n1",
        ]
    )  # fmt: skip
    assert code == 0
    (kw,) = [kw for name, kw in calls if name == "create"]
    assert kw["scopes"] == ("summary", "intake", "photos")
    assert kw["passcode"] == "correct horse"
    assert kw["label"] == "For Dr. Ashgrove"
    assert kw["max_accesses"] == 3
    assert kw["start"].isoformat() == "2026-01-01"
    assert kw["expires_at"] - kw["now"] == timedelta(days=7)
    assert kw["links"].viewer_base.endswith("/view")
    out = capsys.readouterr()
    assert "shlink:/eyJ1cmwiOiJ4In0" in out.out
    assert "http://links.example/view#shlink:/" in out.out
    assert "correct horse" not in out.out + out.err
    assert png.read_bytes() == b"\x89PNG qr"
    assert svg.read_text() == "<svg>qr</svg>"


def test_a_passcode_variable_that_is_not_set_stops_before_anything_is_made(
    calls: list[tuple[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["share", "create", "--patient", "p1", "--passcode-env", "NOT_SET_ANYWHERE"])
    assert code == 2
    assert "--passcode-env: the environment variable it names is not set" in capsys.readouterr().err
    assert calls == []


def test_push_reads_the_token_from_the_environment(
    calls: list[tuple[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PHYSICIAN_TOKEN", "tok-secret")
    code = cli.main(
        [
            "share", "push", "--patient", "p1", "--to", "https://doc.example/fhir/",
            "--bearer-token-env", "PHYSICIAN_TOKEN", "--mode", "document",
        ]
    )  # fmt: skip
    assert code == 0
    (kw,) = [kw for name, kw in calls if name == "push"]
    target: PushTarget = kw["target"]
    assert target.base_url == "https://doc.example/fhir"
    assert target.bearer_token == "tok-secret"
    assert kw["mode"] == "document"
    out = capsys.readouterr()
    assert "pushed to https://doc.example/fhir as a document" in out.out
    assert "tok-secret" not in out.out + out.err


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--key", "k.pem"], "--key needs --client-id"),
        (["--client-id", "c"], "client id and a key file"),
        (["--to", "ftp://doc.example"], "must be https"),
        (["--to", "http://doc.example/fhir"], "plain http only on this machine"),
    ],
)
def test_bad_push_targets_are_refused_with_the_reason(
    calls: list[tuple[str, Any]],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    reason: str,
) -> None:
    argv = ["share", "push", "--patient", "p1", "--to", "https://doc.example/fhir", *extra]
    assert cli.main(argv) == 2
    assert reason in capsys.readouterr().err
    assert [name for name, _ in calls if name == "push"] == []


def test_transfer_needs_exactly_one_of_a_push_or_a_link(
    calls: list[tuple[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["share", "transfer", "--task", "t1"]) == 2
    assert "--to URL" in capsys.readouterr().err
    argv = ["share", "transfer", "--task", "t1", "--link", "--to", "https://x.example/fhir"]
    assert cli.main(argv) == 2


def test_a_refusal_is_exit_2_with_its_reason(
    calls: list[tuple[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["share", "transfer", "--task", "t1", "--link"]) == 2
    assert "does not cover: photos" in capsys.readouterr().err


def test_purge_removes_dead_links_files_and_refuses_a_negative_keep(
    calls: list[tuple[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["share", "purge", "--keep-days", "0"]) == 0
    assert "purged the files of 0 dead links" in capsys.readouterr().out
    assert cli.main(["share", "purge", "--keep-days", "-1"]) == 2
    assert "--keep-days" in capsys.readouterr().err


def test_list_shows_the_links_times_on_the_spas_clock(
    calls: list[tuple[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from symfhir.spa import load_spa
    from symfhir.store import Store
    from tests.unit.shl_packages import make_link

    made = datetime(2026, 12, 4, 21, 30, tzinfo=UTC)  # the store keeps UTC
    link = make_link(Store.from_env(), made)
    assert cli.main(["share", "list", "--patient", "p1"]) == 0
    out = capsys.readouterr().out
    local = made.astimezone(load_spa().zone).isoformat(timespec="minutes")
    assert link.link_id in out and f"created {local}" in out
