"""The store's tables. Addresses and link targets are sealed (``*_sealed``) and found by their
lookup hash (``*_lookup``); codes and link tokens are kept only as hashes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Index, Integer, LargeBinary, String
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
