"""Opening SMART Health Links: the manifest, a single-file link's file, a location file.

A link is active while it is ready, not revoked, not expired, under its cap of wrong
passcodes (``mappings/links.yaml``, 5 in its lifetime) and under its optional number of
accesses. Every other case is ``LinkInactive`` alike. The passcode cap holds under parallel
requests: each guess first takes one of the allowed failures in a writer-exclusive
transaction, the Argon2id check runs outside it, and a right passcode gives its failure back.
An unknown or truncated id runs the same path as a real inactive link (the same lookup and the
same logged row), so neither the answer nor its time tells them apart.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from symfhir.errors import LinkInactive, PasscodeRejected
from symfhir.sharing.link_records import (
    INACTIVE,
    LOCK,
    NO_PASSCODE,
    OK,
    PLACEHOLDER,
    TOKEN,
    UNKNOWN,
    UNKNOWN_LINK,
    WRONG_PASSCODE,
    LinkContext,
    ManifestAccess,
    StillAllowed,
    link_context,
    link_status,
    passcode_hasher,
    stop_links,
    token_hash,
)
from symfhir.sharing.link_settings import LinkServiceSettings, load_link_settings
from symfhir.sharing.shl import EncryptedFile
from symfhir.store import Store
from symfhir.store.tables import FileTicket, ShareAccess, ShareFile, ShareLink


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
    for content_type, parts, ticket in files:
        entry: dict[str, Any] = {"contentType": content_type}
        if parts is not None:
            entry["embedded"] = parts.compact()
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
) -> tuple[EncryptedFile, ManifestAccess]:
    """The one file of a single-file (U) link, fetched directly (the spec's GET on the
    link's URL), as its JWE's parts (serve ``compact_chunks``), and who received what.
    Raises LinkInactive (as open_manifest, and for a link without the U flag), StoreError."""
    settings = settings or load_link_settings()
    link, context = _take(
        store, manifest_id, recipient, None, now, still_allowed, settings, direct=True
    )
    _finish(store, link, recipient, False, now, None, settings)
    with store.session(readonly=True) as session:
        row = session.execute(
            select(*_PARTS).where(ShareFile.link_pk == link.id).order_by(ShareFile.position)
        ).one()
    access = ManifestAccess(manifest={}, context=context, recipient_text=recipient)
    return _parts(row), access


#: A file's JWE parts, in EncryptedFile's order.
_PARTS = (ShareFile.protected, ShareFile.iv, ShareFile.ciphertext, ShareFile.tag)


def _parts(row: Any) -> EncryptedFile:
    protected, iv, ciphertext, tag = row
    return EncryptedFile(protected, iv, ciphertext, tag)


#: This process's SQLite writers, one at a time (see ``_writing``).
_SQLITE_WRITERS = threading.Lock()


@contextmanager
def _writing(store: Store, name: str) -> Iterator[Session]:
    """A writer-exclusive transaction. On SQLite, this process's threads first queue on a
    lock of their own: SQLite has one writer at a time anyway, and a thread that finds the
    database locked sleeps in its busy handler (up to 100 ms a turn), which under parallel
    requests makes the slow tail; a queue hands the turn over at once."""
    if store.kind != "sqlite":
        with store.exclusive(name) as session:
            yield session
        return
    with _SQLITE_WRITERS, store.exclusive(name) as session:
        yield session


def _live(now: datetime) -> tuple[Any, ...]:
    """``link_status(...) == "active"`` as SQL, for the conditional updates."""
    return (
        ShareLink.ready.is_(True),
        ShareLink.revoked_at.is_(None),
        ShareLink.expires_at > now,
        ShareLink.failures < ShareLink.max_failures,
        or_(ShareLink.max_accesses.is_(None), ShareLink.accesses < ShareLink.max_accesses),
    )


def _take(
    store: Store,
    manifest_id: str,
    recipient: str,
    passcode: str | None,
    now: datetime,
    still_allowed: StillAllowed | None,
    settings: LinkServiceSettings,
    *,
    direct: bool = False,
) -> tuple[ShareLink, LinkContext]:
    """Find the link and check it is active, re-check the consent, and for a passcode take
    one allowed failure (a conditional update: parallel guesses cannot share one) before
    verifying it. Returns the link row and its context. An unknown id is looked up and
    logged exactly as an inactive link is; so is any link but a single-file one when
    ``direct``."""
    valid = isinstance(manifest_id, str) and bool(TOKEN.match(manifest_id))
    digest = token_hash(manifest_id if valid else PLACEHOLDER)
    sealed = store.seal(recipient)
    with store.session(readonly=True) as session:
        row = session.execute(
            select(ShareLink).where(ShareLink.manifest_hash == digest)
        ).scalar_one_or_none()
    status = link_status(row if row is not None else UNKNOWN_LINK, now)
    if direct and row is not None and "U" not in row.flags:
        status = "not single-file"  # only a U link is fetched directly: as if unknown
    if status != "active" or row is None:
        _log(store, row.id if row is not None else None, sealed, INACTIVE if row else UNKNOWN, now)
        raise LinkInactive("inactive")
    guarded = row.passcode_hash is not None
    if guarded and not passcode:
        # Not a guess: nothing is counted, but nothing is given either.
        _log(store, row.id, sealed, NO_PASSCODE, now)
        raise PasscodeRejected(row.max_failures - row.failures)
    context = link_context(store, row)
    if still_allowed is not None and not still_allowed(context):
        stop_links(store, context.patient_id, reason="consent withdrawn", now=now)
        _log(store, row.id, sealed, INACTIVE, now)
        raise LinkInactive("consent withdrawn")
    if not guarded:
        return row, context
    with _writing(store, LOCK + digest) as session:
        taken = session.execute(
            update(ShareLink)
            .where(ShareLink.id == row.id, *_live(now))
            .values(failures=ShareLink.failures + 1)
        ).rowcount
        if taken == 1:
            failures = session.execute(
                select(ShareLink.failures).where(ShareLink.id == row.id)
            ).scalar_one()
        else:  # locked (or revoked) since it was read
            _insert_log(session, row.id, sealed, INACTIVE, now)
    if taken != 1:
        raise LinkInactive("inactive")
    if not _passcode_matches(row.passcode_hash or "", passcode or "", settings):
        _log(store, row.id, sealed, WRONG_PASSCODE, now)
        raise PasscodeRejected(row.max_failures - failures)
    return row, context


def _passcode_matches(digest: str, passcode: str, settings: LinkServiceSettings) -> bool:
    try:
        return passcode_hasher(settings).verify(digest, passcode)
    except (VerificationError, InvalidHashError):
        return False


def _insert_log(
    session: Session, link_pk: int | None, sealed: bytes, outcome: str, now: datetime
) -> None:
    session.execute(
        insert(ShareAccess).values(
            link_pk=link_pk, at=now, recipient_sealed=sealed, outcome=outcome
        )
    )


def _log(store: Store, link_pk: int | None, sealed: bytes, outcome: str, now: datetime) -> None:
    with _writing(store, LOCK) as session:
        _insert_log(session, link_pk, sealed, outcome, now)


def _finish(
    store: Store,
    link: ShareLink,
    recipient: str,
    refund: bool,
    now: datetime,
    embed: int | None,
    settings: LinkServiceSettings,
) -> list[tuple[str, EncryptedFile | None, str | None]]:
    """In one transaction: give back the failure a right passcode took, count the access
    (unless the link went inactive meanwhile), log it, and give each file as (content type,
    the JWE's parts to embed or None, ticket or None); ``embed`` None: no files (a
    single-file link's direct read). Raises LinkInactive."""
    sealed = store.seal(recipient)
    files: list[tuple[str, EncryptedFile | None, str | None]] = []
    with _writing(store, LOCK + link.manifest_hash) as session:
        if refund and link.passcode_hash is not None:
            session.execute(
                update(ShareLink)
                .where(ShareLink.id == link.id, ShareLink.failures > 0)
                .values(failures=ShareLink.failures - 1)
            )
        counted = session.execute(
            update(ShareLink)
            .where(ShareLink.id == link.id, *_live(now))
            .values(accesses=ShareLink.accesses + 1)
        ).rowcount
        _insert_log(session, link.id, sealed, OK if counted == 1 else INACTIVE, now)
        if counted == 1 and embed is not None:
            shown = session.execute(
                select(ShareFile.id, ShareFile.content_type, ShareFile.size)
                .where(ShareFile.link_pk == link.id)
                .order_by(ShareFile.position)
            ).all()
            small = [file_pk for file_pk, _, size in shown if size <= embed]
            embedded = {
                file_pk: _parts(parts)
                for file_pk, *parts in (
                    session.execute(
                        select(ShareFile.id, *_PARTS).where(ShareFile.id.in_(small))
                    ).all()
                    if small
                    else ()
                )
            }
            tickets = []
            for file_pk, content_type, _ in shown:
                if file_pk in embedded:
                    files.append((content_type, embedded[file_pk], None))
                else:
                    ticket = secrets.token_urlsafe(32)
                    tickets.append(
                        {
                            "ticket_hash": token_hash(ticket),
                            "file_pk": file_pk,
                            "expires_at": now + settings.ticket_lifetime,
                        }
                    )
                    files.append((content_type, None, ticket))
            if tickets:
                session.execute(insert(FileTicket), tickets)
    if counted != 1:
        raise LinkInactive("inactive")
    return files


def read_file(store: Store, ticket: str, *, now: datetime) -> EncryptedFile:
    """The JWE's parts behind a location ticket (serve ``compact_chunks``) while it lives and
    its link is neither revoked, expired nor locked. Raises LinkInactive otherwise (unknown,
    malformed, past its time), StoreError."""
    valid = isinstance(ticket, str) and bool(TOKEN.match(ticket))
    digest = token_hash(ticket if valid else PLACEHOLDER)
    with store.session(readonly=True) as session:
        found = session.execute(
            select(*_PARTS, ShareLink)
            .join(FileTicket, FileTicket.file_pk == ShareFile.id)
            .join(ShareLink, ShareLink.id == ShareFile.link_pk)
            .where(FileTicket.ticket_hash == digest, FileTicket.expires_at > now)
        ).first()
    if found is None:
        raise LinkInactive("inactive")
    *parts, link = found
    # Opened by an access that counted: "used up" by that very access still reads.
    if link_status(link, now) not in ("active", "used up"):
        raise LinkInactive("inactive")
    return _parts(parts)
