"""Synthetic share packages for the SMART Health Link tests (no FHIR server): a summary
document, optional records and photos, each file's bytes made on demand."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from symfhir.sharing.gate import Recipient, SharePlan
from symfhir.sharing.links import NewLink, create_link
from symfhir.sharing.package import SharedFile, SharePackage
from symfhir.store import Store

FHIR_JSON = "application/fhir+json"
LINKS = "https://links.example.org"
VIEWER = LINKS + "/view"
DOCTOR = Recipient(
    reference="Practitioner/doc1",
    name="Dr. Ada Rivera",
    npi="1234567893",
    organization="Rivera Family Medicine",
)


def summary_bytes(patient_id: str = "p1") -> bytes:
    return json.dumps(
        {
            "resourceType": "Bundle",
            "type": "document",
            "entry": [{"resource": {"resourceType": "Patient", "id": patient_id}}],
        }
    ).encode()


def photo_bytes(media_id: str, size: int = 3000) -> bytes:
    data = base64.b64encode(os.urandom(size)).decode()
    return json.dumps(
        {
            "resourceType": "Media",
            "id": media_id,
            "content": {"contentType": "image/jpeg", "data": data},
        }
    ).encode()


def make_package(
    patient_id: str = "p1",
    *,
    photos: int = 0,
    photo_size: int = 3000,
    basis: str = "Consent/c1",
    extra: Sequence[tuple[str, Callable[[], bytes]]] = (),
) -> SharePackage:
    plan = SharePlan(
        patient_id=patient_id,
        basis=basis,
        recipient=DOCTOR,
        scopes=frozenset({"summary", "photos"} if photos else {"summary"}),
        types=frozenset({"Patient", "Media"} if photos else {"Patient"}),
        photos=bool(photos),
        start=None,
        end=None,
    )
    files = [SharedFile("patient-summary.json", FHIR_JSON, lambda: summary_bytes(patient_id))]
    for n in range(photos):
        media = f"m{n}"
        files.append(
            SharedFile(f"photo-{media}.json", FHIR_JSON, lambda m=media: photo_bytes(m, photo_size))
        )
    files.extend(SharedFile(name, FHIR_JSON, read) for name, read in extra)
    counts: dict[str, Any] = {"Patient": 1}
    if photos:
        counts["Media"] = photos
    return SharePackage(plan=plan, files=tuple(files), counts=counts, photos=photos)


def make_link(
    store: Store,
    now: datetime,
    package: SharePackage | None = None,
    *,
    passcode: str | None = None,
    expires_at: datetime | None = None,
    max_accesses: int | None = None,
    single_file: bool = False,
    label: str | None = "For Dr. Rivera",
    links_base: str = LINKS,
    **kwargs: Any,
) -> NewLink:
    return create_link(
        store,
        package or make_package(),
        label=label,
        passcode=passcode,
        expires_at=expires_at or now + timedelta(days=7),
        max_accesses=max_accesses,
        single_file=single_file,
        created_by="Practitioner/nurse1",
        links_base=links_base,
        viewer_base=links_base + "/view",
        now=now,
        **kwargs,
    )


def manifest_id(link: NewLink) -> str:
    return link.manifest_url.rsplit("/", 1)[1]
