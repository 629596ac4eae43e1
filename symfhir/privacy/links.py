"""Unguessable links of the portal: a request's status page and short-lived downloads.

A token is 256 random bits (``secrets.token_urlsafe(32)``); the store keeps only its SHA-256
(enough for a random token of that size: nothing to brute-force) and the link's target
sealed. ``resolve_link`` gives the target of a live link and counts one use; a link expired,
revoked, used up, of another kind, or a token altered by a single character gives None.
Kinds, lifetimes and use counts: the ``links:`` block of mappings/privacy.yaml (deny by
default: an unlisted kind cannot be created).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from symfhir.errors import ConfigError
from symfhir.privacy.portal_settings import load_link_kinds
from symfhir.store import Store
from symfhir.store.tables import Link

TOKEN_BYTES = 32
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_PURPOSE_TARGET = "link-target"
#: "the kind's setting" for ``max_uses`` (None already means "no limit").
KIND_DEFAULT = -1


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def create_link(
    store: Store,
    kind: str,
    target: str,
    *,
    now: datetime,
    ttl: timedelta | None = None,
    max_uses: int | None = KIND_DEFAULT,
) -> str:
    """A new token for ``target`` (e.g. ``Task/123``, a package's path) of ``kind``, live for
    ``ttl`` and ``max_uses`` opens (None: no limit), each by default the kind's setting.
    Raises ConfigError for a kind not in the settings, ValueError for a ttl or max_uses
    below 1, StoreError when the store fails."""
    kinds = load_link_kinds()
    if kind not in kinds:
        raise ConfigError(f"links: no link kind {kind!r} in the privacy settings")
    ttl = kinds[kind].lifetime if ttl is None else ttl
    uses = kinds[kind].max_uses if max_uses == KIND_DEFAULT else max_uses
    if ttl <= timedelta(0) or (uses is not None and uses < 1):
        raise ValueError("a link needs a positive lifetime and at least one use")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with store.session() as session:
        session.add(
            Link(
                token_hash=_token_hash(token),
                kind=kind,
                target_lookup=store.lookup(_PURPOSE_TARGET, target),
                target_sealed=store.seal(target),
                created_at=now,
                expires_at=now + ttl,
                max_uses=uses,
                uses=0,
            )
        )
    return token


def resolve_link(store: Store, token: str, *, now: datetime, kind: str | None = None) -> str | None:
    """The target of the live link ``token`` (of ``kind``, when given), counting one use;
    None when it is unknown, malformed, expired, revoked, used up or of another kind.
    Parallel opens of a link with uses left never count past ``max_uses``."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        return None
    live = (
        Link.token_hash == _token_hash(token),
        Link.revoked_at.is_(None),
        Link.expires_at > now,
        (Link.max_uses.is_(None)) | (Link.uses < Link.max_uses),
    )
    if kind is not None:
        live = (*live, Link.kind == kind)
    with store.session() as session:
        # One conditional UPDATE takes the use: the count cannot be raced.
        taken = session.execute(update(Link).where(*live).values(uses=Link.uses + 1)).rowcount
        if taken != 1:
            return None
        sealed = session.execute(
            select(Link.target_sealed).where(Link.token_hash == _token_hash(token))
        ).scalar_one()
    return store.unseal(sealed)


def revoke_link(store: Store, token: str, *, now: datetime) -> bool:
    """Revoke one link; False when no live link has that token."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        return False
    with store.session() as session:
        return (
            session.execute(
                update(Link)
                .where(Link.token_hash == _token_hash(token), Link.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            == 1
        )


def revoke_links(store: Store, kind: str, target: str, *, now: datetime) -> int:
    """Revoke every live link of ``kind`` to ``target`` (e.g. when a request is closed or its
    package replaced); returns how many."""
    with store.session() as session:
        return session.execute(
            update(Link)
            .where(
                Link.kind == kind,
                Link.target_lookup == store.lookup(_PURPOSE_TARGET, target),
                Link.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        ).rowcount


def purge_links(store: Store, *, now: datetime, keep: timedelta = timedelta(days=30)) -> int:
    """Delete links expired or revoked more than ``keep`` ago (kept that long so a late
    click still finds "expired", not "unknown"); returns how many."""
    cutoff = now - keep
    with store.session() as session:
        return session.execute(
            delete(Link).where((Link.expires_at <= cutoff) | (Link.revoked_at <= cutoff))
        ).rowcount
