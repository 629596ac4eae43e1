"""SMART Health Link records in the app's store: create, open (the manifest), read a file,
revoke, stop every link of a client, list with the access log.

What is kept, and how (``symfhir.store.tables``: ShareLink, ShareFile, ShareAccess,
FileTicket): the manifest id only as its SHA-256 (256 random bits: nothing to brute-force);
the patient found by a keyed lookup hash; who and what a link discloses (patient, basis,
recipient, resource types, label) sealed; the files as the compact JWE the link's key made
(the key itself is kept nowhere on the server: it is only in the link); a passcode only as
an Argon2id hash; each manifest request's recipient string sealed.

A link is active while it is ready, not revoked, not expired, under its cap of wrong
passcodes (``mappings/links.yaml``, 5 in its lifetime) and under its optional number of
accesses. Every other case is ``LinkInactive`` alike. The passcode cap holds under parallel
requests: each guess first takes one of the allowed failures in a writer-exclusive
transaction, the Argon2id check runs outside it, and a right passcode gives its failure back.
An unknown or truncated id runs the same path as a real inactive link (the same lookup and the
same logged row), so neither the answer nor its time tells them apart.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update

from symfhir.errors import LinkInactive, PasscodeRejected, SharingError
from symfhir.sharing import shl
from symfhir.sharing.gate import Recipient
from symfhir.sharing.link_settings import LinkServiceSettings, load_link_settings
from symfhir.store import Store
from symfhir.store.tables import FileTicket, ShareAccess, ShareFile, ShareLink

if TYPE_CHECKING:
    from symfhir.sharing.package import SharePackage

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
#: Hashed in place of a malformed id: "!" is not base64url, so no real id has this hash.
_PLACEHOLDER = "!" * 43
_PURPOSE_PATIENT = "share-patient"
_LOCK = "share-link:"

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


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _hasher(settings: LinkServiceSettings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2.time_cost,
        memory_cost=settings.argon2.memory_kib,
        parallelism=settings.argon2.parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def _link_id() -> str:
    # A handle for the chart and the CLI: not a secret (revoking also needs the patient).
    return secrets.token_hex(8)


def create_link(
    store: Store,
    package: SharePackage,
    *,
    label: str | None,
    passcode: str | None,
    expires_at: datetime | None,
    max_accesses: int | None,
    single_file: bool,
    created_by: str,
    links_base: str,
    viewer_base: str,
    now: datetime,
    long_term: bool = False,
    settings: LinkServiceSettings | None = None,
) -> NewLink:
    """A new link to ``package``'s files, served at ``links_base`` (the link service) and
    opened by the viewer at ``viewer_base``. ``expires_at`` None: the default expiry of
    links.yaml. The files are read and encrypted one at a time (memory stays flat); the link
    answers only once all are stored.

    Raises SharingError naming the field (label, passcode, expires_at, max_accesses,
    single_file, links_base, package), StoreError when the store fails."""
    settings = settings or load_link_settings()
    label = shl.check_label(label)
    if label is not None and len(label) > settings.label_max:
        raise SharingError(f"label: at most {settings.label_max} characters")
    if passcode is not None:
        _check_passcode(passcode, settings)
    flag = shl.flags(long_term=long_term, passcode=passcode is not None, single_file=single_file)
    if now.tzinfo is None or (expires_at is not None and expires_at.tzinfo is None):
        raise SharingError("expires_at: an aware datetime is needed (with its zone)")
    expires_at = expires_at or now + settings.default_expiry
    if expires_at <= now:
        raise SharingError("expires_at: must be in the future")
    if expires_at > now + settings.max_expiry:
        raise SharingError(f"expires_at: at most {settings.max_expiry.days} days ahead")
    if max_accesses is not None and (isinstance(max_accesses, bool) or max_accesses < 1):
        raise SharingError("max_accesses: at least 1 (or none for no limit)")
    if not package.files:
        raise SharingError("package: it has no files")
    if single_file and len(package.files) != 1:
        raise SharingError(
            f"single_file: a single-file link carries one file, the package has "
            f"{len(package.files)}"
        )
    manifest_id = shl.new_manifest_id()
    manifest_url = f"{links_base.rstrip('/')}/shl/m/{manifest_id}"
    if len(manifest_url) > shl.URL_MAX:
        raise SharingError(f"links_base: too long for a {shl.URL_MAX}-character manifest URL")
    key = shl.new_key()
    payload = shl.link_payload(manifest_url, key, exp=expires_at, flags=flag, label=label)
    plan = package.plan
    details = {
        "patient_id": plan.patient_id,
        "basis": plan.basis,
        "recipient": asdict(plan.recipient),
        "types": sorted(t for t, n in package.counts.items() if n),
        "scopes": sorted(plan.scopes),
        "label": label,
        "created_by": created_by,
    }
    passcode_hash = _hasher(settings).hash(passcode) if passcode is not None else None
    with store.session() as session:
        row = ShareLink(
            link_id=_link_id(),
            manifest_hash=_sha(manifest_id),
            patient_lookup=store.lookup(_PURPOSE_PATIENT, plan.patient_id),
            details_sealed=store.seal(json.dumps(details)),
            flags=flag,
            created_at=now,
            expires_at=expires_at,
            ready=False,
            passcode_hash=passcode_hash,
            failures=0,
            max_failures=settings.max_failures,
            accesses=0,
            max_accesses=max_accesses,
        )
        session.add(row)
        session.flush()
        link_pk, link_id = row.id, row.link_id
    try:
        for position, shared in enumerate(package.files):
            # One file in memory at a time; a photo's base64 JPEG barely deflates, so only the
            # FHIR JSON documents are compressed (DEFLATE would cost more than it saves).
            compress = not shared.name.startswith("photo-")
            token = shl.encrypt(shared.read(), key, shared.content_type, compress=compress)
            with store.session() as session:
                session.add(
                    ShareFile(
                        link_pk=link_pk,
                        position=position,
                        content_type=shared.content_type,
                        size=len(token),
                        jwe=token,
                    )
                )
            del token
        with store.session() as session:
            session.execute(update(ShareLink).where(ShareLink.id == link_pk).values(ready=True))
    except BaseException:
        with store.session() as session:
            session.execute(delete(ShareFile).where(ShareFile.link_pk == link_pk))
            session.execute(delete(ShareLink).where(ShareLink.id == link_pk))
        raise
    link = shl.shlink(payload)
    viewer = shl.viewer_url(viewer_base, link)
    return NewLink(
        link_id=link_id,
        manifest_url=manifest_url,
        payload=payload,
        shlink=link,
        viewer_url=viewer,
        qr_png=shl.qr_png(viewer),
        qr_svg=shl.qr_svg(viewer),
        expires_at=expires_at,
        flags=flag,
    )


def _check_passcode(passcode: str, settings: LinkServiceSettings) -> None:
    if not isinstance(passcode, str):
        raise SharingError("passcode: must be text")
    if len(passcode) < settings.passcode_min:
        raise SharingError(f"passcode: at least {settings.passcode_min} characters")
    if len(passcode) > settings.passcode_max:
        raise SharingError(f"passcode: at most {settings.passcode_max} characters")


def _status(link: ShareLink, now: datetime) -> str:
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
_DUMMY = ShareLink(
    ready=False, revoked_at=None, expires_at=datetime.min, failures=0, max_failures=0
)


def _context(store: Store, link: ShareLink) -> LinkContext:
    details = json.loads(store.unseal(link.details_sealed))
    return LinkContext(
        link_id=link.link_id,
        patient_id=details["patient_id"],
        basis=details["basis"],
        recipient=Recipient(**details["recipient"]),
        types=tuple(details["types"]),
    )


def open_manifest(
    store: Store,
    manifest_id: str,
    *,
    recipient: str,
    passcode: str | None,
    embedded_length_max: int | None,
    files_base: str,
    now: datetime,
    still_allowed: StillAllowed | None = None,
    settings: LinkServiceSettings | None = None,
) -> ManifestAccess:
    """The manifest of the link ``manifest_id`` for ``recipient`` (the string the client
    POSTed): its files in package order, each ``embedded`` when its JWE is at most
    ``embedded_length_max`` characters (capped by links.yaml) or else a ``location`` under
    ``files_base`` (the link service's base URL) that works for a short time.
    ``still_allowed`` is the consent re-check: when it says False, every link of the client
    is stopped and this one answers as inactive. Every call is logged.

    Raises LinkInactive (unknown, malformed, not ready, revoked, expired, locked, used up,
    consent withdrawn), PasscodeRejected (wrong or missing passcode, with the attempts left),
    StoreError."""
    settings = settings or load_link_settings()
    if embedded_length_max is None:
        embed = settings.embedded_default
    else:
        embed = min(max(embedded_length_max, 0), settings.embedded_max)
    link, context = _take(store, manifest_id, recipient, passcode, now, still_allowed, settings)
    files = _finish(store, link, recipient, passcode is not None, now, embed, settings)
    manifest_files = []
    base = files_base.rstrip("/")
    for content_type, jwe_text, ticket in files:
        entry: dict[str, Any] = {"contentType": content_type}
        if jwe_text is not None:
            entry["embedded"] = jwe_text
        else:
            entry["location"] = f"{base}/shl/f/{ticket}"
        manifest_files.append(entry)
    manifest = {"status": "finalized", "files": manifest_files}
    return ManifestAccess(manifest=manifest, context=context, recipient_text=recipient)


def open_single(
    store: Store,
    manifest_id: str,
    *,
    recipient: str,
    now: datetime,
    still_allowed: StillAllowed | None = None,
    settings: LinkServiceSettings | None = None,
) -> tuple[bytes, ManifestAccess]:
    """The one file of a single-file (U) link, fetched directly (the spec's GET on the
    link's URL), and who received what. Raises LinkInactive (as open_manifest, and for a
    link without the U flag), StoreError."""
    settings = settings or load_link_settings()
    link, context = _take(store, manifest_id, recipient, None, now, still_allowed, settings)
    if "U" not in link.flags:
        raise LinkInactive("not a single-file link")
    _finish(store, link, recipient, False, now, None, settings)
    with store.session(readonly=True) as session:
        data = session.execute(
            select(ShareFile.jwe).where(ShareFile.link_pk == link.id).order_by(ShareFile.position)
        ).scalar_one()
    access = ManifestAccess(manifest={}, context=context, recipient_text=recipient)
    return data, access


def _take(
    store: Store,
    manifest_id: str,
    recipient: str,
    passcode: str | None,
    now: datetime,
    still_allowed: StillAllowed | None,
    settings: LinkServiceSettings,
) -> tuple[ShareLink, LinkContext]:
    """Find the link, check it is active, take one allowed failure when a passcode is given,
    re-check the consent, verify the passcode. Returns the link row and its context."""
    valid = isinstance(manifest_id, str) and bool(_TOKEN.match(manifest_id))
    digest = _sha(manifest_id if valid else _PLACEHOLDER)
    sealed_recipient = store.seal(recipient)
    outcome = OK
    remaining = 0
    with store.exclusive(_LOCK + digest) as session:
        row = session.execute(
            select(ShareLink).where(ShareLink.manifest_hash == digest)
        ).scalar_one_or_none()
        status = _status(row if row is not None else _DUMMY, now)
        if status != "active":
            outcome = INACTIVE if row is not None else UNKNOWN
        elif row is not None and row.passcode_hash is not None:
            if not passcode:
                # Not a guess: nothing is counted, but nothing is given either.
                outcome = NO_PASSCODE
                remaining = row.max_failures - row.failures
            else:
                row.failures += 1
                remaining = row.max_failures - row.failures
        if outcome != OK:
            session.add(
                ShareAccess(
                    link_pk=row.id if row is not None else None,
                    at=now,
                    recipient_sealed=sealed_recipient,
                    outcome=outcome,
                )
            )
    if outcome == NO_PASSCODE:
        raise PasscodeRejected(remaining)
    if outcome != OK or row is None:
        raise LinkInactive("inactive")
    context = _context(store, row)
    if still_allowed is not None and not still_allowed(context):
        stop_links(store, context.patient_id, reason="consent withdrawn", now=now)
        _log(store, row.id, sealed_recipient, INACTIVE, now)
        raise LinkInactive("consent withdrawn")
    if row.passcode_hash is not None and not _passcode_matches(
        row.passcode_hash, passcode or "", settings
    ):
        _log(store, row.id, sealed_recipient, WRONG_PASSCODE, now)
        raise PasscodeRejected(remaining)
    return row, context


def _passcode_matches(digest: str, passcode: str, settings: LinkServiceSettings) -> bool:
    try:
        return _hasher(settings).verify(digest, passcode)
    except (VerificationError, InvalidHashError):
        return False


def _log(store: Store, link_pk: int | None, sealed: bytes, outcome: str, now: datetime) -> None:
    with store.session() as session:
        session.add(ShareAccess(link_pk=link_pk, at=now, recipient_sealed=sealed, outcome=outcome))


def _finish(
    store: Store,
    link: ShareLink,
    recipient: str,
    refund: bool,
    now: datetime,
    embed: int | None,
    settings: LinkServiceSettings,
) -> list[tuple[str, str | None, str | None]]:
    """Count the access (giving back the failure a right passcode took), log it, and give
    each file as (content type, embedded JWE or None, ticket or None); ``embed`` None: no
    files (a single-file link's direct read)."""
    sealed = store.seal(recipient)
    files: list[tuple[str, str | None, str | None]] = []
    with store.exclusive(_LOCK + link.manifest_hash) as session:
        row = session.get(ShareLink, link.id)
        if row is None:
            raise LinkInactive("inactive")
        if refund and row.passcode_hash is not None:
            row.failures = max(0, row.failures - 1)
        if _status(row, now) != "active":
            session.add(
                ShareAccess(link_pk=row.id, at=now, recipient_sealed=sealed, outcome=INACTIVE)
            )
            active = False
        else:
            active = True
            row.accesses += 1
            session.add(ShareAccess(link_pk=row.id, at=now, recipient_sealed=sealed, outcome=OK))
            if embed is None:
                return files
            shown = session.execute(
                select(ShareFile.id, ShareFile.content_type, ShareFile.size)
                .where(ShareFile.link_pk == row.id)
                .order_by(ShareFile.position)
            ).all()
            for file_pk, content_type, size in shown:
                if size <= embed:
                    jwe = session.execute(
                        select(ShareFile.jwe).where(ShareFile.id == file_pk)
                    ).scalar_one()
                    files.append((content_type, jwe.decode("ascii"), None))
                else:
                    ticket = secrets.token_urlsafe(32)
                    session.add(
                        FileTicket(
                            ticket_hash=_sha(ticket),
                            file_pk=file_pk,
                            expires_at=now + settings.ticket_lifetime,
                        )
                    )
                    files.append((content_type, None, ticket))
    if not active:
        raise LinkInactive("inactive")
    return files


def read_file(store: Store, ticket: str, *, now: datetime) -> bytes:
    """The JWE behind a location ticket while it lives and its link is neither revoked,
    expired nor locked. Raises LinkInactive otherwise (unknown, malformed, past its time),
    StoreError."""
    valid = isinstance(ticket, str) and bool(_TOKEN.match(ticket))
    digest = _sha(ticket if valid else _PLACEHOLDER)
    with store.session(readonly=True) as session:
        found = session.execute(
            select(ShareFile.jwe, ShareLink)
            .join(FileTicket, FileTicket.file_pk == ShareFile.id)
            .join(ShareLink, ShareLink.id == ShareFile.link_pk)
            .where(FileTicket.ticket_hash == digest, FileTicket.expires_at > now)
        ).first()
    if found is None:
        raise LinkInactive("inactive")
    data, link = found
    # Opened by an access that counted: "used up" by that very access still reads.
    if _status(link, now) not in ("active", "used up"):
        raise LinkInactive("inactive")
    return data


def revoke_link(store: Store, patient_id: str, link_id: str, *, reason: str, now: datetime) -> None:
    """Revoke the client's link ``link_id`` (already revoked: nothing changes). Raises
    LinkInactive when the client has no such link (another client's is not theirs),
    StoreError."""
    with store.session() as session:
        row = session.execute(
            select(ShareLink).where(
                ShareLink.link_id == link_id,
                ShareLink.patient_lookup == store.lookup(_PURPOSE_PATIENT, patient_id),
            )
        ).scalar_one_or_none()
        if row is None:
            raise LinkInactive("link_id: this client has no such link")
        if row.revoked_at is None:
            row.revoked_at = now
            row.revoke_reason_sealed = store.seal(reason)


def stop_links(store: Store, patient_id: str, *, reason: str, now: datetime) -> int:
    """Revoke every link of the client that is not yet revoked (the consent was withdrawn);
    returns how many. Raises StoreError."""
    sealed = store.seal(reason)
    with store.session() as session:
        return session.execute(
            update(ShareLink)
            .where(
                ShareLink.patient_lookup == store.lookup(_PURPOSE_PATIENT, patient_id),
                ShareLink.revoked_at.is_(None),
            )
            .values(revoked_at=now, revoke_reason_sealed=sealed)
        ).rowcount


def links_of(store: Store, patient_id: str, *, now: datetime | None = None) -> list[LinkRecord]:
    """The client's links, newest first, each with its access log. ``now`` decides which are
    expired (default: the current time). Raises StoreError."""
    now = now or datetime.now().astimezone()
    with store.session(readonly=True) as session:
        rows = (
            session.execute(
                select(ShareLink)
                .where(ShareLink.patient_lookup == store.lookup(_PURPOSE_PATIENT, patient_id))
                .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
            )
            .scalars()
            .all()
        )
        logs: dict[int, list[ShareAccess]] = {row.id: [] for row in rows}
        if rows:
            for access in session.execute(
                select(ShareAccess)
                .where(ShareAccess.link_pk.in_(list(logs)))
                .order_by(ShareAccess.at, ShareAccess.id)
            ).scalars():
                logs[access.link_pk].append(access)  # type: ignore[index]
    records = []
    for row in rows:
        details = json.loads(store.unseal(row.details_sealed))
        records.append(
            LinkRecord(
                link_id=row.link_id,
                status=_status(row, now),
                label=details.get("label"),
                flags=row.flags,
                created_at=row.created_at,
                created_by=details.get("created_by", ""),
                expires_at=row.expires_at,
                revoked_at=row.revoked_at,
                revoke_reason=(
                    store.unseal(row.revoke_reason_sealed) if row.revoke_reason_sealed else None
                ),
                passcode=row.passcode_hash is not None,
                failures=row.failures,
                max_failures=row.max_failures,
                access_count=row.accesses,
                max_accesses=row.max_accesses,
                recipient=Recipient(**details["recipient"]),
                basis=details["basis"],
                types=tuple(details["types"]),
                accesses=tuple(
                    AccessRecord(a.at, store.unseal(a.recipient_sealed), a.outcome)
                    for a in logs[row.id]
                ),
            )
        )
    return records


def purge_share_links(store: Store, *, now: datetime, keep: timedelta = timedelta(days=30)) -> int:
    """Delete expired tickets, and the files of links expired or revoked more than ``keep``
    ago (the records and their access log stay for the chart and the accounting). Returns
    how many files were deleted."""
    cutoff = now - keep
    with store.session() as session:
        session.execute(delete(FileTicket).where(FileTicket.expires_at <= now))
        dead = select(ShareLink.id).where(
            (ShareLink.expires_at <= cutoff) | (ShareLink.revoked_at <= cutoff)
        )
        return session.execute(delete(ShareFile).where(ShareFile.link_pk.in_(dead))).rowcount
