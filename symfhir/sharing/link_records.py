"""SMART Health Link records, what the store keeps of them and how they are read back:
the records the chart and the service see (NewLink, LinkRecord, AccessRecord, LinkContext,
ManifestAccess), a link's status, the hashes and the passcode hasher, and ``stop_links``
(``symfhir.sharing.links`` makes and lists links, ``symfhir.sharing.link_access`` opens them).

What is kept (``symfhir.store.tables``: ShareLink, ShareFile, ShareAccess, FileTicket): the
manifest id only as its SHA-256 (256 random bits: nothing to brute-force); the patient found
by a keyed lookup hash; who and what a link discloses (patient, basis, recipient, resource
types, label) sealed; the files as the binary parts (protected header, IV, ciphertext, tag)
of the compact JWE the link's key made, serialized only when served (the key itself is kept
nowhere on the server: it is only in the link); a passcode only as an Argon2id hash; each
manifest request's recipient string sealed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher, Type
from sqlalchemy import update

from symfhir.sharing.gate import Recipient
from symfhir.sharing.link_settings import LinkServiceSettings
from symfhir.store import Store
from symfhir.store.tables import ShareLink

TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
#: Hashed in place of a malformed id: "!" is not base64url, so no real id has this hash.
PLACEHOLDER = "!" * 43
PURPOSE_PATIENT = "share-patient"
#: The writer-exclusive lock of one link (its manifest hash follows).
LOCK = "share-link:"

OK = "ok"
WRONG_PASSCODE = "wrong-passcode"
NO_PASSCODE = "no-passcode"
INACTIVE = "inactive"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class NewLink:
    """A link just made: give ``shlink``/``viewer_url``/the QR to the physician."""

    link_id: str
    manifest_url: str
    payload: dict[str, Any]
    shlink: str
    viewer_url: str
    qr_png: bytes
    qr_svg: str
    expires_at: datetime | None
    flags: str


@dataclass(frozen=True)
class AccessRecord:
    """One manifest request to a link: when, the recipient string given, and its outcome
    (``ok``, ``wrong-passcode``, ``no-passcode``, ``inactive``)."""

    at: datetime
    recipient: str
    outcome: str


@dataclass(frozen=True)
class LinkRecord:
    """A link as the chart lists it; ``accesses`` is its access log, oldest first."""

    link_id: str
    status: str  # active, pending, revoked, expired, locked, used up
    label: str | None
    flags: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None
    passcode: bool
    failures: int
    max_failures: int
    access_count: int
    max_accesses: int | None
    recipient: Recipient
    basis: str
    types: tuple[str, ...]
    accesses: tuple[AccessRecord, ...]


@dataclass(frozen=True)
class LinkContext:
    """Whom and what an opened link discloses: what the disclosure AuditEvent and the consent
    re-check need."""

    link_id: str
    patient_id: str
    basis: str
    recipient: Recipient
    types: tuple[str, ...]

    @property
    def consent_id(self) -> str | None:
        """The Consent's id when the link rests on one (a transfer rests on a Task)."""
        kind, _, ident = self.basis.partition("/")
        return ident if kind == "Consent" and ident else None


@dataclass(frozen=True)
class ManifestAccess:
    """A successful manifest request: the manifest to answer, and who received what."""

    manifest: dict[str, Any]
    context: LinkContext
    recipient_text: str

    @property
    def patient_id(self) -> str:
        return self.context.patient_id

    @property
    def consent_id(self) -> str | None:
        return self.context.consent_id

    @property
    def recipient(self) -> Recipient:
        return self.context.recipient

    @property
    def types(self) -> tuple[str, ...]:
        return self.context.types


#: The service's consent re-check: False stops every link of the client (consent withdrawn).
StillAllowed = Callable[[LinkContext], bool]


def token_hash(text: str) -> str:
    """The hex SHA-256 of a manifest id or a ticket (ASCII)."""
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def passcode_hasher(settings: LinkServiceSettings) -> PasswordHasher:
    """Argon2id with the parameters of links.yaml."""
    return PasswordHasher(
        time_cost=settings.argon2.time_cost,
        memory_cost=settings.argon2.memory_kib,
        parallelism=settings.argon2.parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def link_status(link: ShareLink, now: datetime) -> str:
    """``active``, or why not: pending, revoked, expired, locked (too many wrong passcodes),
    used up."""
    if not link.ready:
        return "pending"
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= now:
        return "expired"
    if link.failures >= link.max_failures:
        return "locked"
    if link.max_accesses is not None and link.accesses >= link.max_accesses:
        return "used up"
    return "active"


#: Stands in for the row of an unknown id, so that the same checks run (and fail).
UNKNOWN_LINK = ShareLink(
    ready=False, revoked_at=None, expires_at=datetime.min, failures=0, max_failures=0
)


def link_context(store: Store, link: ShareLink) -> LinkContext:
    """Whom and what ``link`` discloses, unsealed."""
    details = json.loads(store.unseal(link.details_sealed))
    return LinkContext(
        link_id=link.link_id,
        patient_id=details["patient_id"],
        basis=details["basis"],
        recipient=Recipient(**details["recipient"]),
        types=tuple(details["types"]),
    )


def stop_links(store: Store, patient_id: str, *, reason: str, now: datetime) -> int:
    """Revoke every link of the client that is not yet revoked (the consent was withdrawn);
    returns how many. Raises StoreError."""
    sealed = store.seal(reason)
    with store.session() as session:
        return session.execute(
            update(ShareLink)
            .where(
                ShareLink.patient_lookup == store.lookup(PURPOSE_PATIENT, patient_id),
                ShareLink.revoked_at.is_(None),
            )
            .values(revoked_at=now, revoke_reason_sealed=sealed)
        ).rowcount
