"""Shared fixtures: a frozen clock in the spa's (non-UTC) zone and the bundled mappings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from symfhir.mapping.context import MappingContext

if TYPE_CHECKING:
    from symfhir.notify.catcher import MailCatcher
    from symfhir.store import Store

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "sample"
ZONE = ZoneInfo("America/Chicago")


AS_OF = "2026-11-25T09:30:00-06:00"


def map_sample(output: Path, *extra: str) -> int:
    """Run `symfhir map` on the synthetic sample (clients and photos) at a fixed clock."""
    from symfhir.cli import main

    return main(
        [
            "map",
            str(SAMPLE / "clients.csv"),
            "--photos",
            str(SAMPLE / "photos.csv"),
            "-o",
            str(output),
            *extra,
            "--as-of",
            AS_OF,
        ]
    )


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)


@pytest.fixture
def ctx(now: datetime) -> MappingContext:
    return MappingContext.load(now)


@pytest.fixture
def record_context(ctx: MappingContext) -> dict:
    return {
        "today": ctx.today,
        "terminology": ctx.terminology,
        "consent_kinds": ctx.consent_kinds,
    }


def make_record_dict(**overrides: object) -> dict:
    """A complete, valid record in the model's own (native) shape."""
    data = {
        "client": {
            "client_id": "C9001",
            "given_name": "Avery",
            "family_name": "Quillfeather",
            "birth_date": "1985-04-12",
            "sex": "female",
            "email": "avery.q@example.com",
            "phones": {"mobile": "(337) 555-0101"},
            "address": {
                "lines": ["101 Example Oak Ln"],
                "city": "Youngsville",
                "state": "LA",
                "postal_code": "70592",
            },
            "preferred_language": "en",
            "emergency_contact": {
                "name": "Rowan Quillfeather",
                "relationship": "spouse",
                "phone": "(337) 555-0102",
            },
            "physician": {"name": "Dr. Dana Ashgrove"},
        },
        "health": {
            "intake_date": "2026-03-02",
            "conditions": ["migraine"],
            "medications": [{"name": "fish oil", "kind": "supplement", "dose": "1000 mg"}],
            "allergies": [{"substance": "lidocaine", "reaction": "swelling", "severity": "severe"}],
            "prior_treatments": [{"what": "Botox", "when": "2025-06", "where": "Another spa"}],
            "skin_type": "III",
            "skin_concerns": ["melasma", "fine_lines"],
            "contraindications": ["anticoagulants"],
            "pregnancy": "not_pregnant",
            "breastfeeding": "no",
            "smoking": "former",
        },
        "consents": {
            "treatment": {"status": "given", "date": "2026-03-02", "policy_version": "2026-01-01"},
            "photos_website": {
                "status": "withdrawn",
                "date": "2026-03-02",
                "withdrawn_on": "2026-06-01",
                "policy_version": "2026-01-01",
            },
            "marketing_sms": {
                "status": "declined",
                "date": "2026-03-02",
                "policy_version": "2026-01-01",
            },
        },
        "treatments": [
            {
                "id": "T1",
                "date": "2026-03-02T10:30:00",
                "treatment": "botulinum_toxin",
                "product": "Botox Cosmetic",
                "lot": "LOT1",
                "amount": "20",
                "unit": "units",
                "body_sites": ["glabella"],
                "practitioner": "Alex Rivera, RN",
            }
        ],
        "notes": [{"date": "2026-03-02", "author": "Dr. Sam Okafor", "text": "Goals discussed."}],
    }
    for path, value in overrides.items():
        target = data
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[key]
        if value is None:
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = value
    return data


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """The app's own store: a SQLite file of its own, a Fernet key made for the test. With
    SYMFHIR_TEST_STORE_URL set (e.g. a PostgreSQL database), that database, emptied first."""
    import os

    from cryptography.fernet import Fernet

    from symfhir.store import Store
    from symfhir.store.tables import Base

    url = os.environ.get("SYMFHIR_TEST_STORE_URL") or f"sqlite:///{tmp_path / 'store.db'}"
    db = Store(url, [Fernet.generate_key().decode()])
    Base.metadata.drop_all(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def smtp_catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    """A local SMTP server on a free loopback port catching mail into a Maildir under
    tmp_path: ``.config()`` is the EmailSender settings for it, ``.wait_for(n)`` the caught
    messages (newest first) once n have come, ``.directory`` what the /mail page reads."""
    from symfhir.notify.catcher import MailCatcher

    with MailCatcher(tmp_path / "caught-mail") as catcher:
        yield catcher
