"""Server-side sessions: one Fernet-encrypted file per session, the cookie holds only its id.

The whole session (launch state, patient context and the SMART token response) is encrypted at
rest with ``cryptography``'s MultiFernet: the first key encrypts, every key decrypts, so a new
key can be put first and ``rotate`` re-encrypts the files before the old key is dropped.
A session ends after ``idle`` seconds without a request or ``max_age`` seconds in all.

Anyone can start a launch, so the files of sessions not signed in (``.pending``: a launch on
its way to the EHR's sign-in) are capped at ``max_pending``, the oldest evicted first; signed-in
sessions (``.session``) need the EHR's sign-in and are never evicted. Expired files are swept
at most every ``sweep_interval`` seconds on a save, not only when their cookie comes back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from symfhir.errors import ConfigError

COOKIE_NAME = "symfhir_session"
_SID = re.compile(r"^[A-Za-z0-9_-]{40,64}$")
CREATED = "_created"
SIGNED_IN = ".session"
PENDING = ".pending"
TEMP = ".tmp"


class ServerSession(CallbackDict, SessionMixin):  # type: ignore[misc]
    """The session dict of one request; ``regenerate()`` gives it a new id when saved (after a
    login, against session fixation)."""

    def __init__(self, initial: dict[str, Any] | None, sid: str, new: bool) -> None:
        def on_update(_: CallbackDict) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = new
        self.modified = False
        self.old_sid: str | None = None

    def regenerate(self) -> None:
        self.old_sid = self.old_sid or self.sid
        self.sid = new_session_id()
        self.modified = True


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def make_fernet(keys: list[str]) -> MultiFernet:
    """MultiFernet over ``keys`` (first encrypts). Raises ConfigError for a bad key."""
    if not keys:
        raise ConfigError("SYMFHIR_TOKEN_KEYS: at least one Fernet key is needed")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        raise ConfigError(
            "SYMFHIR_TOKEN_KEYS: not a Fernet key (32 url-safe base64 bytes)"
        ) from None


class FileSessionStore:
    """Encrypted session files under ``directory``, named by the session id."""

    def __init__(
        self,
        directory: Path,
        keys: list[str],
        idle: int,
        max_age: int,
        max_pending: int = 1000,
        sweep_interval: float = 60.0,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.fernet = make_fernet(keys)
        self.idle = idle
        self.max_age = max_age
        self.max_pending = max_pending
        self.sweep_interval = sweep_interval
        self._last_sweep = time.monotonic()
        self._sweeping = threading.Lock()

    def _path(self, sid: str, kind: str = SIGNED_IN) -> Path | None:
        return self.directory / f"{sid}{kind}" if _SID.match(sid) else None

    def _existing(self, sid: str) -> Path | None:
        for kind in (SIGNED_IN, PENDING):
            path = self._path(sid, kind)
            if path is not None and path.is_file():
                return path
        return None

    def load(self, sid: str) -> dict[str, Any] | None:
        """The session's data; None when absent, expired, tampered with or undecryptable."""
        path = self._existing(sid)
        if path is None:
            return None
        try:
            # The idle clock is the file's mtime: a full save or a touch (an unchanged
            # session's request) moves it.
            if time.time() - path.stat().st_mtime > self.idle:
                raise ValueError("idle")
            plain = self.fernet.decrypt(path.read_bytes())
            data = json.loads(plain)
        except (InvalidToken, OSError, ValueError):
            self.delete(sid)
            return None
        if not isinstance(data, dict) or time.time() - float(data.get(CREATED, 0)) > self.max_age:
            self.delete(sid)
            return None
        return data

    def save(self, sid: str, data: dict[str, Any], pending: bool = False) -> None:
        """Write the session; ``pending``: not signed in (capped, see the module doc)."""
        path = self._path(sid, PENDING if pending else SIGNED_IN)
        other = self._path(sid, SIGNED_IN if pending else PENDING)
        if path is None or other is None:
            raise ValueError("bad session id")
        self._maybe_sweep()
        if pending and not path.exists():
            self._make_room()
        data.setdefault(CREATED, time.time())
        token = self.fernet.encrypt(json.dumps(data, separators=(",", ":")).encode())
        # A temp file of its own: the browser sends a page's requests (styles, images) at
        # once, and two saves sharing one temp name would lose one of the files.
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f".{sid}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(token)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        other.unlink(missing_ok=True)

    def touch(self, sid: str) -> None:
        """Restart the idle clock of an unchanged session without rewriting it (a concurrent
        request that did change it, e.g. a token refresh, is not overwritten)."""
        path = self._existing(sid)
        if path is not None:
            # FileNotFoundError: ended meanwhile (sign-out in another tab).
            with contextlib.suppress(FileNotFoundError):
                os.utime(path)

    def delete(self, sid: str) -> None:
        for kind in (SIGNED_IN, PENDING):
            path = self._path(sid, kind)
            if path is not None:
                path.unlink(missing_ok=True)

    def _files(self, *kinds: str) -> list[tuple[float, Path]]:
        """(mtime, path) of the store's files of these kinds; a file removed meanwhile (by
        another request or process) is left out."""
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.endswith(kinds):
                    with contextlib.suppress(FileNotFoundError):
                        found.append((entry.stat().st_mtime, Path(entry.path)))
        return found

    def sweep(self) -> int:
        """Delete the files idle for longer than ``idle`` (sessions, and temp files a crash
        left); returns how many."""
        cutoff = time.time() - self.idle
        old = [path for mtime, path in self._files(SIGNED_IN, PENDING, TEMP) if mtime < cutoff]
        for path in old:
            path.unlink(missing_ok=True)
        return len(old)

    def _maybe_sweep(self) -> None:
        # At most once per interval per process, and never two threads at once.
        if time.monotonic() - self._last_sweep < self.sweep_interval:
            return
        if self._sweeping.acquire(blocking=False):
            try:
                self._last_sweep = time.monotonic()
                self.sweep()
            finally:
                self._sweeping.release()

    def _make_room(self) -> None:
        """Evict the oldest pending sessions so that a new one keeps them within
        ``max_pending`` (expired ones go first, with the sweep)."""
        pending = self._files(PENDING)
        if len(pending) < self.max_pending:
            return
        self.sweep()
        pending = sorted(self._files(PENDING))
        for _, path in pending[: len(pending) - self.max_pending + 1]:
            path.unlink(missing_ok=True)

    def rotate(self) -> int:
        """Re-encrypt every session file with the first key; returns how many were rewritten.
        Files no key can decrypt are deleted (their sessions are lost anyway)."""
        count = 0
        for _, path in self._files(SIGNED_IN, PENDING):
            try:
                path.write_bytes(self.fernet.rotate(path.read_bytes()))
                count += 1
            except InvalidToken:
                path.unlink(missing_ok=True)
        return count


class EncryptedSessionInterface(SessionInterface):
    """Flask's session backed by FileSessionStore; the cookie carries the random id only.
    A session without the key ``signed_in`` is stored as pending (capped)."""

    def __init__(self, store: FileSessionStore, signed_in: str) -> None:
        self.store = store
        self.signed_in = signed_in

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app), "")
        data = self.store.load(sid) if sid else None
        if data is None:
            return ServerSession(None, new_session_id(), new=True)
        return ServerSession(data, sid, new=False)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if session.old_sid:
            self.store.delete(session.old_sid)
        if not session:
            if not session.new:
                self.store.delete(session.sid)
                response.delete_cookie(name, domain=domain, path=path)
            return
        if session.modified or session.new or session.old_sid:
            self.store.save(session.sid, dict(session), pending=self.signed_in not in session)
        else:
            self.store.touch(session.sid)
        response.vary.add("Cookie")
        if session.new or session.old_sid:
            response.set_cookie(
                name,
                session.sid,
                httponly=True,
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
                domain=domain,
                path=path,
            )


def cookie_flags(secure: bool) -> dict[str, Any]:
    """Flask cookie settings.

    SameSite=None lets the cookie reach the app inside the EHR's iframe on another site, but
    browsers accept SameSite=None only on Secure cookies; so over plain http (local dev) it is
    Lax: http://localhost:5000 and :5100 are the same site (ports do not count), so the iframe
    and the /callback redirect still carry it. Secure is off by default only for an http base
    URL, because not every client sends a Secure cookie back over http (Safari, requests,
    Werkzeug's test client) and local dev would lose its session; any https deployment gets
    Secure and SameSite=None (SYMFHIR_COOKIE_SECURE overrides the default)."""
    return {
        "SESSION_COOKIE_NAME": COOKIE_NAME,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SECURE": secure,
        "SESSION_COOKIE_SAMESITE": "None" if secure else "Lax",
    }
