"""One-time codes that verify a requester's e-mail address or phone number.

``issue_code`` makes a code for one address of one request (the caller sends it), refusing
with RateLimited past the limits per address and per requester; ``check_code`` says whether a
code is right. A code is kept only as a salted scrypt hash, lives ``code_minutes``, allows
``max_tries`` attempts (right or wrong) and opens once: a replay fails. A newer code for the
same address replaces the older. Settings: the ``verification:`` block of mappings/privacy.yaml.

The caps hold under parallel requests: issuing counts and records in one writer-exclusive
transaction, and each attempt first takes a try with one conditional UPDATE
(``tries < max_tries``), so parallel guesses can never use more tries than allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from symfhir.contacts import channel_of, normalize
from symfhir.errors import RateLimited, RecordError
from symfhir.privacy.portal_settings import CodeSettings, RateLimit, load_code_settings
from symfhir.store import Store
from symfhir.store.tables import RateEvent, VerificationCode

# scrypt at 16 MiB and ~50 ms a hash: slow enough that a stolen table does not give the codes
# away at once, fast enough for a web request.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
_LOCK = "verification-codes"
_PURPOSE_ADDRESS = "verification-address"
_PURPOSE_REQUESTER = "verification-requester"
_SPACES = re.compile(r"[\s-]+")


def _hash(code: str, salt: bytes) -> bytes:
    return hashlib.scrypt(code.encode("ascii"), salt=salt, **_SCRYPT)


def issue_code(
    store: Store,
    request_ref: str,
    channel: str,
    address: str,
    *,
    now: datetime,
    requester: str | None = None,
    settings: CodeSettings | None = None,
) -> str:
    """A new code for ``address`` (on ``channel``: ``email`` or ``sms``) of the request
    ``request_ref``; send it to the address. ``requester`` keys the per-requester limit
    (default: the request itself). Any older code of the same address and request is dead.

    Raises RecordError for an invalid address or channel, RateLimited (with ``retry_after``)
    past a limit, StoreError when the store fails.
    """
    settings = settings or load_code_settings()
    normal = normalize(channel, address)
    address_key = store.lookup(_PURPOSE_ADDRESS, normal)
    requester_key = store.lookup(_PURPOSE_REQUESTER, requester or request_ref)
    code = f"{secrets.randbelow(10**settings.digits):0{settings.digits}d}"
    salt = secrets.token_bytes(16)
    # Hashed before the exclusive transaction: no one waits on scrypt.
    digest = _hash(code, salt)
    sealed = store.seal(normal)
    with store.exclusive(_LOCK) as session:
        _check_limit(session, "address", address_key, settings.per_address, now)
        _check_limit(session, "requester", requester_key, settings.per_requester, now)
        session.execute(
            update(VerificationCode)
            .where(
                VerificationCode.request_ref == request_ref,
                VerificationCode.address_lookup == address_key,
                VerificationCode.used_at.is_(None),
                VerificationCode.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        session.add(
            VerificationCode(
                request_ref=request_ref,
                channel=channel,
                address_lookup=address_key,
                address_sealed=sealed,
                salt=salt,
                code_hash=digest,
                issued_at=now,
                expires_at=now + settings.lifetime,
                tries=0,
            )
        )
        session.add(RateEvent(bucket="address", key_lookup=address_key, at=now))
        session.add(RateEvent(bucket="requester", key_lookup=requester_key, at=now))
    return code


def _check_limit(session: Session, bucket: str, key: str, limit: RateLimit, now: datetime) -> None:
    since = now - limit.window
    count, oldest = session.execute(
        select(func.count(), func.min(RateEvent.at)).where(
            RateEvent.bucket == bucket, RateEvent.key_lookup == key, RateEvent.at > since
        )
    ).one()
    if count >= limit.codes:
        # The oldest code in the window leaves it first; then one more may be issued.
        wait = (oldest + limit.window - now).total_seconds()
        raise RateLimited(bucket, max(1, math.ceil(wait)))


def check_code(
    store: Store,
    request_ref: str,
    address: str,
    code: str,
    *,
    now: datetime,
    settings: CodeSettings | None = None,
) -> bool:
    """Whether ``code`` is the live code of ``address`` for ``request_ref``: issued, not yet
    expired, used or replaced, with a try left. Every call with a live code uses one try.
    Raises StoreError when the store fails; an invalid address is simply not verified."""
    settings = settings or load_code_settings()
    try:
        normal = normalize(channel_of(address), address)
    except RecordError:  # no such address can hold a code
        return False
    address_key = store.lookup(_PURPOSE_ADDRESS, normal)
    candidate = _SPACES.sub("", code or "")
    with store.session() as session:
        row = session.execute(
            _latest_live(
                select(VerificationCode.id, VerificationCode.salt, VerificationCode.code_hash),
                request_ref,
                address_key,
                now,
            )
        ).first()
        if row is None:
            return False
        code_id, salt, digest = row
        # Take a try first, atomically: parallel guesses cannot share one.
        taken = session.execute(
            update(VerificationCode)
            .where(
                VerificationCode.id == code_id,
                VerificationCode.tries < settings.max_tries,
                VerificationCode.used_at.is_(None),
                VerificationCode.revoked_at.is_(None),
                VerificationCode.expires_at > now,
            )
            .values(tries=VerificationCode.tries + 1)
        ).rowcount
    if taken != 1 or not (candidate.isascii() and candidate.isdigit()):
        return False
    if len(candidate) != settings.digits:
        return False
    if not hmac.compare_digest(_hash(candidate, salt), digest):
        return False
    with store.session() as session:
        # Only one of two parallel right answers marks it used: the other is a replay.
        return (
            session.execute(
                update(VerificationCode)
                .where(VerificationCode.id == code_id, VerificationCode.used_at.is_(None))
                .values(used_at=now)
            ).rowcount
            == 1
        )


def is_verified(store: Store, request_ref: str, address: str) -> bool:
    """Whether a code sent to ``address`` for ``request_ref`` was checked right."""
    try:
        normal = normalize(channel_of(address), address)
    except RecordError:
        return False
    address_key = store.lookup(_PURPOSE_ADDRESS, normal)
    with store.session(readonly=True) as session:
        found = session.execute(
            select(VerificationCode.id)
            .where(
                VerificationCode.request_ref == request_ref,
                VerificationCode.address_lookup == address_key,
                VerificationCode.used_at.is_not(None),
            )
            .limit(1)
        ).first()
    return found is not None


def purge_codes(store: Store, *, now: datetime, settings: CodeSettings | None = None) -> int:
    """Delete codes past their lifetime and rate events past the longest window (the codes
    that verified someone too: the Task records the verification). Returns rows deleted."""
    settings = settings or load_code_settings()
    window = max(settings.per_address.window, settings.per_requester.window)
    with store.session() as session:
        codes = session.execute(
            delete(VerificationCode).where(VerificationCode.expires_at <= now)
        ).rowcount
        events = session.execute(delete(RateEvent).where(RateEvent.at <= now - window)).rowcount
    return codes + events


def tries_left(
    store: Store,
    request_ref: str,
    address: str,
    *,
    now: datetime,
    settings: CodeSettings | None = None,
) -> int:
    """How many tries the live code of ``address`` for ``request_ref`` has left (0 when there
    is no live code: none issued, expired, used or out of tries): what a form tells the user."""
    settings = settings or load_code_settings()
    try:
        normal = normalize(channel_of(address), address)
    except RecordError:
        return 0
    address_key = store.lookup(_PURPOSE_ADDRESS, normal)
    with store.session(readonly=True) as session:
        tries = session.execute(
            _latest_live(select(VerificationCode.tries), request_ref, address_key, now)
        ).scalar()
    return 0 if tries is None else max(0, settings.max_tries - tries)


def _latest_live(query: Select[Any], request_ref: str, address_key: str, now: datetime) -> Any:
    """``query`` narrowed to the newest unused, unrevoked, unexpired code of that address."""
    return (
        query.where(
            VerificationCode.request_ref == request_ref,
            VerificationCode.address_lookup == address_key,
            VerificationCode.used_at.is_(None),
            VerificationCode.revoked_at.is_(None),
            VerificationCode.expires_at > now,
        )
        .order_by(VerificationCode.issued_at.desc(), VerificationCode.id.desc())
        .limit(1)
    )
