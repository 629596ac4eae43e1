"""The store's engine and sessions: one transaction per operation, and writer-exclusive ones
for counters that must hold under parallel requests."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from symfhir.errors import ConfigError, StoreError
from symfhir.store.sealing import Sealer
from symfhir.store.tables import Base

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///out/symfhir.db"
#: The execution option naming the statement that opens a SQLite transaction.
_BEGIN = "symfhir_sqlite_begin"


class Store:
    """The app's own database at ``url`` with fields sealed by ``keys`` (see ``Sealer``).

    ``session()`` is one operation: committed when the block ends, rolled back on an error;
    the rows it read stay readable after it (they are not expired on commit).
    ``exclusive(name)`` is the same, but only one such transaction per ``name`` runs at a time
    across threads and processes (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an advisory lock), so
    a count-then-insert cannot be raced. Database errors become StoreError.
    """

    def __init__(self, url: str, keys: Sequence[str], *, lookup_key: bytes | None = None) -> None:
        self.sealer = Sealer(keys, lookup_key)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError("SYMFHIR_STORE_URL: not a database URL") from None
        self.url = parsed
        self.engine = _engine(parsed)
        self._created = False
        self._creating = threading.Lock()

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        generate_key: bool = False,
    ) -> Store:
        """The store of ``SYMFHIR_STORE_URL`` (default ``sqlite:///out/symfhir.db``) with the
        comma-separated Fernet keys of ``SYMFHIR_STORE_KEYS`` and, optionally, the base64url
        ``SYMFHIR_STORE_LOOKUP_KEY``. Raises ConfigError when no key is set, unless
        ``generate_key`` (a development server): then a key is made now, with a warning, and
        what it sealed cannot be read after a restart."""
        env = os.environ if env is None else env
        keys = [k.strip() for k in env.get("SYMFHIR_STORE_KEYS", "").split(",") if k.strip()]
        if not keys and generate_key:
            log.warning(
                "SYMFHIR_STORE_KEYS not set: using a key made at start; sealed fields and "
                "rate counts will not survive a restart (set SYMFHIR_STORE_KEYS in production)"
            )
            keys = [Fernet.generate_key().decode()]
        lookup = env.get("SYMFHIR_STORE_LOOKUP_KEY")
        lookup_key = None
        if lookup:
            try:
                lookup_key = base64.urlsafe_b64decode(lookup + "=" * (-len(lookup) % 4))
            except ValueError:
                raise ConfigError("SYMFHIR_STORE_LOOKUP_KEY: not base64url") from None
        return cls(url or env.get("SYMFHIR_STORE_URL") or DEFAULT_URL, keys, lookup_key=lookup_key)

    @property
    def kind(self) -> str:
        return self.url.get_backend_name()

    def seal(self, value: str) -> bytes:
        return self.sealer.seal(value)

    def unseal(self, token: bytes) -> str:
        return self.sealer.unseal(token)

    def lookup(self, purpose: str, value: str) -> str:
        return self.sealer.lookup(purpose, value)

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """One operation in one transaction (committed at the end, rolled back on error).
        On SQLite a writing one takes the write lock at its start (``BEGIN IMMEDIATE``): a
        transaction that reads and then writes would otherwise fail, not wait, when another
        writer got there between."""
        self._ensure_tables()
        with self._translated("transaction"), self.engine.connect() as conn:
            if self.kind == "sqlite" and not readonly:
                conn.execution_options(**{_BEGIN: "BEGIN IMMEDIATE"})
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                yield session

    @contextmanager
    def exclusive(self, name: str) -> Iterator[Session]:
        """One operation in a transaction that no other ``exclusive`` one overlaps."""
        self._ensure_tables()
        with self._translated("exclusive transaction"), self.engine.connect() as conn:
            if self.kind == "sqlite":
                conn.execution_options(**{_BEGIN: "BEGIN IMMEDIATE"})
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                # Begin now (a session begins lazily): the block runs inside the lock.
                session.connection()
                if self.kind == "postgresql":
                    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(name)})
                yield session

    def create_tables(self) -> None:
        """Create the tables that are missing (done on first use anyway)."""
        with self._translated("creating tables"):
            Base.metadata.create_all(self.engine)
        self._created = True

    def dispose(self) -> None:
        self.engine.dispose()

    def _ensure_tables(self) -> None:
        if self._created:
            return
        with self._creating:
            if not self._created:
                self.create_tables()

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            # SQLAlchemy's message quotes the statement's parameters: never show or log it.
            log.warning("store %s failed: %s", what, type(exc).__name__)
            reason = f"{what} failed ({type(exc).__name__})"
            raise StoreError(f"the {self.kind} store: {reason}") from None


def _engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {}
    memory = False
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        memory = database in ("", ":memory:") or database.startswith("file::memory:")
        # Threads share the engine; the busy timeout makes a writer wait for another.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if memory:
            kwargs["poolclass"] = StaticPool
        elif database:
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise StoreError(f"the sqlite store: cannot make its folder ({reason})") from None
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        backend = url.get_backend_name()
        raise ConfigError(f"SYMFHIR_STORE_URL: cannot use {backend}: {exc}") from None
    if url.get_backend_name() == "sqlite":
        _sqlite_transactions(engine, memory=memory)
    return engine


def _sqlite_transactions(engine: Engine, *, memory: bool) -> None:
    """Let SQLAlchemy, not the sqlite3 module, open transactions (so BEGIN IMMEDIATE works):
    the recipe of SQLAlchemy's pysqlite dialect documentation."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            # Readers do not block the writer nor the writer the readers.
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN, "BEGIN"))


def _lock_id(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
