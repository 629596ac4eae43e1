"""A local SMTP server that catches every message into a Maildir, for tests and the demo
(as MailHog or Mailpit do): nothing is relayed anywhere.

``MailCatcher(directory)`` listens on loopback (a free port unless one is given), optionally
with STARTTLS or implicit TLS and AUTH for testing those paths; ``read_mailbox(directory)``
reads what was caught, newest first (the sandbox EHR's ``/mail`` page and the tests use it).
``python -m symfhir.notify.catcher --dir out/demo/mail --port 1025`` runs one until stopped.
Development only: it accepts mail for anyone from anyone.
"""

from __future__ import annotations

import argparse
import contextlib
import mailbox
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

#: Added to each caught message: the SMTP envelope, which the headers need not match.
ENVELOPE_FROM = "X-Caught-Envelope-From"
ENVELOPE_TO = "X-Caught-Envelope-To"


@dataclass(frozen=True)
class CaughtMail:
    """One caught message: ``key`` in the Maildir, the envelope, and the parsed message."""

    key: str
    envelope_from: str
    envelope_to: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    @property
    def sender(self) -> str:
        return str(self.message.get("From", ""))

    @property
    def date(self) -> str:
        return str(self.message.get("Date", ""))

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else None


def read_mailbox(directory: Path | str) -> list[CaughtMail]:
    """Every message caught in ``directory``, newest first; [] when there is none yet."""
    root = Path(directory)
    if not (root / "new").is_dir():
        return []
    found: list[tuple[int, str, CaughtMail]] = []
    for folder in ("new", "cur"):
        for path in (root / folder).iterdir():
            if path.name.startswith("."):
                continue
            key = path.name.split(":", 1)[0]
            try:
                mail = _parse(key, path.read_bytes())
                found.append((path.stat().st_mtime_ns, key, mail))
            except OSError:
                continue  # removed while we read
    return [mail for _, _, mail in sorted(found, key=lambda f: (f[0], f[1]), reverse=True)]


def read_message(directory: Path | str, key: str) -> CaughtMail | None:
    """The caught message ``key``; None when there is no such message."""
    return next((m for m in read_mailbox(directory) if m.key == key), None)


def _parse(key: str, raw: bytes) -> CaughtMail:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    envelope_to = tuple(
        a.strip() for a in str(message.get(ENVELOPE_TO, "")).split(",") if a.strip()
    )
    return CaughtMail(key, str(message.get(ENVELOPE_FROM, "")), envelope_to, message)


class _Handler:
    """aiosmtpd's handler: each message goes into the Maildir, envelope headers first."""

    def __init__(self, directory: Path) -> None:
        self.box = mailbox.Maildir(directory, create=False)
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        head = (
            f"{ENVELOPE_FROM}: {envelope.mail_from}\r\n"
            f"{ENVELOPE_TO}: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        with self.lock:
            self.box.add(mailbox.MaildirMessage(head + content))
        return "250 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class MailCatcher:
    """An aiosmtpd server on ``host``:``port`` (0: a free one) catching into ``directory``.

    ``starttls`` offers STARTTLS with that server context; ``tls`` serves implicit TLS;
    ``logins`` ({user: password}) turns on AUTH (only after TLS, as real servers do).
    Use as a context manager, or ``start()``/``stop()``.
    """

    def __init__(
        self,
        directory: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        starttls: ssl.SSLContext | None = None,
        tls: ssl.SSLContext | None = None,
        logins: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        # mailbox.Maildir makes tmp/new/cur only when the folder itself is new.
        for sub in ("tmp", "new", "cur"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.host = host
        self.port = port
        self._starttls = starttls
        self._tls = tls
        self._logins = logins
        self._controller: Any = None

    def start(self) -> MailCatcher:
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {}
        if self._starttls is not None:
            kwargs.update(tls_context=self._starttls, require_starttls=False)
        if self._logins is not None:
            kwargs.update(authenticator=_authenticator(self._logins), auth_require_tls=True)
        handler = _Handler(self.directory)
        for attempt in range(5):
            port = self.port or free_port(self.host)
            controller = Controller(
                handler, hostname=self.host, port=port, ssl_context=self._tls, **kwargs
            )
            try:
                controller.start()
            except (OSError, RuntimeError):
                # Another process took the free port between the probe and the bind.
                if self.port or attempt == 4:
                    raise
                continue
            self.port = port
            self._controller = controller
            return self
        raise RuntimeError("no free port")  # pragma: no cover - the loop returns or raises

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def config(self) -> dict[str, Any]:
        """Settings for ``EmailSender.from_config`` that send here."""
        security = "tls" if self._tls else "starttls" if self._starttls else "none"
        return {
            "host": self.host,
            "port": self.port,
            "security": security,
            "from": "privacy@example.com",
        }

    def messages(self) -> list[CaughtMail]:
        """Everything caught so far, newest first."""
        return read_mailbox(self.directory)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[CaughtMail]:
        """The caught messages once there are at least ``count`` (newest first); raises
        TimeoutError when they have not come within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            caught = self.messages()
            if len(caught) >= count:
                return caught
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(caught)} of {count} messages caught in {timeout} s")
            time.sleep(0.02)


def _authenticator(logins: dict[str, str]) -> Callable[..., Any]:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and logins.get(data.login.decode()) == data.password.decode()
        )
        return AuthResult(success=ok, handled=False)

    return check


def main(argv: Sequence[str] | None = None) -> int:
    """Run a catcher until SIGINT/SIGTERM (the demo's)."""
    parser = argparse.ArgumentParser(prog="python -m symfhir.notify.catcher")
    parser.add_argument("--dir", type=Path, default=Path("out/mail"), help="the Maildir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with MailCatcher(args.dir, args.host, args.port) as catcher:
        print(
            f"mail catcher on {catcher.host}:{catcher.port}, keeping mail in {args.dir}", flush=True
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
