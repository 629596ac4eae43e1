"""The store's tables. Addresses and link targets are sealed (``*_sealed``) and found by their
lookup hash (``*_lookup``); codes and link tokens are kept only as hashes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC, so that SQLite (which keeps no offset) and
    PostgreSQL compare the same instants. A naive value is refused: it has no instant."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store keeps aware datetimes only (pass now with its zone)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class VerificationCode(Base):
    """One code sent to one address for one request. ``used_at`` is set once by the right code
    (a replay finds it used); ``revoked_at`` when a newer code for the same address replaced it."""

    __tablename__ = "verification_codes"
    __table_args__ = (Index("ix_codes_request_address", "request_ref", "address_lookup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_ref: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(8))
    address_lookup: Mapped[str] = mapped_column(String(64))
    address_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RateEvent(Base):
    """One code issued, counted against ``bucket`` (``address``, ``requester``) for the key
    whose lookup hash is ``key_lookup``; events older than the longest window are purged."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_bucket_key_at", "bucket", "key_lookup", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(32))
    key_lookup: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class Link(Base):
    """A status-page or download link: its token kept as a SHA-256 hash, its target sealed."""

    __tablename__ = "links"
    __table_args__ = (Index("ix_links_kind_target", "kind", "target_lookup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    target_lookup: Mapped[str] = mapped_column(String(64))
    target_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ShareLink(Base):
    """A SMART Health Link (``symfhir.sharing.links``). The manifest id is kept only as its
    SHA-256; the patient is found by a lookup hash; who and what it discloses (patient, basis,
    recipient, types, label) is one sealed JSON; a passcode only as an Argon2id hash. The
    files' key is kept nowhere: it lives only in the link. ``ready`` is set once every file
    is stored (a link is never served half made)."""

    __tablename__ = "share_links"
    __table_args__ = (Index("ix_share_links_patient", "patient_lookup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[str] = mapped_column(String(32), unique=True)
    manifest_hash: Mapped[str] = mapped_column(String(64), unique=True)
    patient_lookup: Mapped[str] = mapped_column(String(64))
    details_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    flags: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    passcode_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    max_failures: Mapped[int] = mapped_column(Integer)
    accesses: Mapped[int] = mapped_column(Integer, default=0)
    max_accesses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoke_reason_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ShareFile(Base):
    """One file of a link, in package order: its compact JWE's parts, binary (already
    ciphertext; ``symfhir.sharing.shl.EncryptedFile``): the base64url protected header, the
    IV, the ciphertext and the tag. ``size`` is the length of the compact serialization made
    of them when served (what a manifest's ``embeddedLengthMax`` is compared with)."""

    __tablename__ = "share_files"
    __table_args__ = (Index("ix_share_files_link", "link_pk", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_pk: Mapped[int] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    protected: Mapped[str] = mapped_column(String(200))
    iv: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    tag: Mapped[bytes] = mapped_column(LargeBinary)


class ShareAccess(Base):
    """One manifest request: when, the recipient string it gave (sealed), and its outcome
    (``ok``, ``wrong-passcode``, ``no-passcode``, ``inactive``). A request for an unknown id is
    logged too (no link, outcome ``unknown``): it then costs what a real inactive one does."""

    __tablename__ = "share_accesses"
    __table_args__ = (Index("ix_share_accesses_link", "link_pk", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_pk: Mapped[int | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="CASCADE"), nullable=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    recipient_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    outcome: Mapped[str] = mapped_column(String(16))


class FileTicket(Base):
    """A short-lived ``location`` URL for one file: its token kept as a SHA-256 hash."""

    __tablename__ = "share_file_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_hash: Mapped[str] = mapped_column(String(64), unique=True)
    file_pk: Mapped[int] = mapped_column(ForeignKey("share_files.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
