"""SMART Health Links in the app's store: create, revoke, stop every link of a client, list
with the access log, purge. Opening a link (the manifest, the files) is
``symfhir.sharing.link_access``, re-exported here; what is kept and how is
``symfhir.sharing.link_records``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, update

from symfhir.errors import LinkInactive, SharingError
from symfhir.sharing import shl
from symfhir.sharing.gate import Recipient
from symfhir.sharing.link_access import open_manifest, open_single, read_file
from symfhir.sharing.link_records import (
    PURPOSE_PATIENT,
    AccessRecord,
    LinkContext,
    LinkRecord,
    ManifestAccess,
    NewLink,
    link_status,
    passcode_hasher,
    stop_links,
    token_hash,
)
from symfhir.sharing.link_settings import LinkServiceSettings, load_link_settings
from symfhir.store import Store
from symfhir.store.tables import FileTicket, ShareAccess, ShareFile, ShareLink

if TYPE_CHECKING:
    from symfhir.sharing.package import SharedFile, SharePackage

__all__ = [
    "AccessRecord",
    "LinkContext",
    "LinkRecord",
    "ManifestAccess",
    "NewLink",
    "create_link",
    "encrypt_file",
    "links_of",
    "open_manifest",
    "open_single",
    "purge_share_links",
    "read_file",
    "revoke_link",
    "stop_links",
]


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
    links.yaml. The files are read, encrypted and stored one at a time (memory stays flat),
    as their JWE's binary parts; the link answers only once all are stored.

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
    passcode_hash = passcode_hasher(settings).hash(passcode) if passcode is not None else None
    with store.session() as session:
        row = ShareLink(
            link_id=_link_id(),
            manifest_hash=token_hash(manifest_id),
            patient_lookup=store.lookup(PURPOSE_PATIENT, plan.patient_id),
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
            # One file in memory at a time, kept as the JWE's binary parts (the compact
            # form's base64url is made only when the file is served).
            parts = encrypt_file(shared, key)
            with store.session() as session:
                # A Core insert, not an ORM object: an object's reference cycle would keep
                # its megabytes until the next garbage collection.
                session.execute(
                    insert(ShareFile).values(
                        link_pk=link_pk,
                        position=position,
                        content_type=shared.content_type,
                        size=parts.compact_length,
                        protected=parts.protected,
                        iv=parts.iv,
                        ciphertext=parts.ciphertext,
                        tag=parts.tag,
                    )
                )
            del parts
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


def encrypt_file(shared: SharedFile, key: bytes) -> shl.EncryptedFile:
    """``shared`` read and encrypted under the link's ``key`` (a fresh IV): the encryption
    step of ``create_link``. A photo's base64 JPEG barely deflates, so only the FHIR JSON
    documents are compressed (DEFLATE would cost more than it saves). Raises SharingError
    (shl.encrypt_parts) and whatever reading the file raises."""
    compress = not shared.name.startswith("photo-")
    return shl.encrypt_parts(shared.read(), key, shared.content_type, compress=compress)


def _check_passcode(passcode: str, settings: LinkServiceSettings) -> None:
    if not isinstance(passcode, str):
        raise SharingError("passcode: must be text")
    if len(passcode) < settings.passcode_min:
        raise SharingError(f"passcode: at least {settings.passcode_min} characters")
    if len(passcode) > settings.passcode_max:
        raise SharingError(f"passcode: at most {settings.passcode_max} characters")


def revoke_link(store: Store, patient_id: str, link_id: str, *, reason: str, now: datetime) -> None:
    """Revoke the client's link ``link_id`` (already revoked: nothing changes). Raises
    LinkInactive when the client has no such link (another client's is not theirs),
    StoreError."""
    with store.session() as session:
        row = session.execute(
            select(ShareLink).where(
                ShareLink.link_id == link_id,
                ShareLink.patient_lookup == store.lookup(PURPOSE_PATIENT, patient_id),
            )
        ).scalar_one_or_none()
        if row is None:
            raise LinkInactive("link_id: this client has no such link")
        if row.revoked_at is None:
            row.revoked_at = now
            row.revoke_reason_sealed = store.seal(reason)


def links_of(store: Store, patient_id: str, *, now: datetime | None = None) -> list[LinkRecord]:
    """The client's links, newest first, each with its access log. ``now`` decides which are
    expired (default: the current time). Raises StoreError."""
    now = now or datetime.now().astimezone()
    with store.session(readonly=True) as session:
        rows = (
            session.execute(
                select(ShareLink)
                .where(ShareLink.patient_lookup == store.lookup(PURPOSE_PATIENT, patient_id))
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
                status=link_status(row, now),
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
    """Delete expired tickets, the log of requests for unknown ids older than ``keep``, and
    the files of links expired or revoked more than ``keep`` ago (the records and their
    access log stay for the chart and the accounting). Returns how many files were deleted."""
    cutoff = now - keep
    with store.session() as session:
        session.execute(delete(FileTicket).where(FileTicket.expires_at <= now))
        session.execute(
            delete(ShareAccess).where(ShareAccess.link_pk.is_(None), ShareAccess.at <= cutoff)
        )
        dead = select(ShareLink.id).where(
            (ShareLink.expires_at <= cutoff) | (ShareLink.revoked_at <= cutoff)
        )
        return session.execute(delete(ShareFile).where(ShareFile.link_pk.in_(dead))).rowcount
