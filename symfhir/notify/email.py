"""E-mail over real SMTP (RFC 5321): plain, STARTTLS (RFC 3207) or implicit TLS (RFC 8314).

``EmailSender.from_config(mapping)`` reads host, port, security (``none``, ``starttls``,
``tls``), username, password, from address, timeout and a CA file, each from the mapping or else
the ``SYMFHIR_SMTP_*`` environment variable of the same name. ``send`` builds one
``email.message.EmailMessage`` (text, optional HTML alternative, extra headers such as
``List-Unsubscribe``) and hands it over. Failures raise DeliveryError naming the server, never
the recipient; nothing about a message (recipient, subject, body) is logged.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from email_validator import EmailNotValidError, validate_email

from symfhir.errors import ConfigError, DeliveryError, RecordError
from symfhir.urls import is_loopback

log = logging.getLogger(__name__)

SECURITY = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
#: Headers ``send`` sets itself; ``headers`` may not replace them.
OWN_HEADERS = frozenset({"from", "to", "subject", "date", "message-id", "mime-version"})
#: RFC 5322 §3.6.8: printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
_KEYS = ("host", "port", "security", "username", "password", "from", "timeout", "ca_file")


def _address(value: str, what: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except (EmailNotValidError, AttributeError):
        raise RecordError("e-mail", what, "not a valid e-mail address") from None


@dataclass(frozen=True)
class EmailSender:
    """Sends through one SMTP server. ``ssl_context`` overrides the default verification
    (a private CA: prefer ``ca_file``)."""

    host: str
    port: int
    security: str
    from_address: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    ca_file: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ConfigError(f"SMTP security must be one of {', '.join(SECURITY)}")
        if not self.host:
            raise ConfigError("SMTP host is not set (SYMFHIR_SMTP_HOST)")
        if not 0 < self.port < 65536:
            raise ConfigError("SMTP port must be 1-65535")
        if self.username and self.security == "none" and not is_loopback(self.host):
            # A password must never cross the network in clear.
            raise ConfigError("SMTP credentials need security starttls or tls")
        try:
            validate_email(self.from_address, check_deliverability=False)
        except EmailNotValidError:
            raise ConfigError("SMTP from address is not a valid e-mail address") from None

    @classmethod
    def from_config(
        cls, mapping: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> EmailSender:
        """The sender of ``mapping`` (keys host, port, security, username, password, from,
        timeout, ca_file), each missing key from ``SYMFHIR_SMTP_<KEY>`` in ``env`` (default
        the process environment). Security defaults to starttls, the port to the security's
        usual one (25, 587, 465). Raises ConfigError."""
        env = os.environ if env is None else env
        given = dict(mapping or {})
        unknown = set(given) - set(_KEYS) - {"from_address"}
        if unknown:
            raise ConfigError(f"SMTP settings: unknown keys {', '.join(sorted(unknown))}")
        if "from_address" in given:
            given.setdefault("from", given.pop("from_address"))

        def value(key: str) -> Any:
            found = given.get(key)
            if found in (None, ""):
                found = env.get(f"SYMFHIR_SMTP_{key.upper()}") or None
            return found

        security = str(value("security") or "starttls").lower()
        try:
            port = int(value("port") or DEFAULT_PORTS.get(security, 0))
            timeout = float(value("timeout") or 30.0)
        except (TypeError, ValueError):
            raise ConfigError("SMTP port and timeout must be numbers") from None
        return cls(
            host=str(value("host") or ""),
            port=port,
            security=security,
            from_address=str(value("from") or ""),
            username=value("username"),
            password=value("password"),
            timeout=timeout,
            ca_file=value("ca_file"),
        )

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def message(
        self,
        to: str | Sequence[str],
        subject: str,
        text: str,
        html: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> EmailMessage:
        """The message ``send`` would send. Raises RecordError for a bad address, a header
        with a line break, or a header ``send`` sets itself."""
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients:
            raise RecordError("e-mail", "to", "no recipient")
        msg = EmailMessage()
        msg["From"] = self.from_address
        msg["To"] = ", ".join(_address(r, "to") for r in recipients)
        msg["Subject"] = _header_value("subject", subject)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(domain=self.from_address.rpartition("@")[2])
        for name, raw in (headers or {}).items():
            if name.lower() in OWN_HEADERS or not _FIELD_NAME.match(name):
                raise RecordError("e-mail", "headers", f"{name!r} may not be set here")
            msg[name] = _header_value(name, raw)
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        return msg

    def send(
        self,
        to: str | Sequence[str],
        subject: str,
        text: str,
        html: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Send one message; returns its Message-ID. Raises RecordError for a bad message
        (before connecting) and DeliveryError when the server cannot take it."""
        msg = self.message(to, subject, text, html, headers)
        try:
            with self._connect() as smtp:
                if self.security == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPNotSupportedError:
            raise self._error("the server does not offer STARTTLS or AUTH") from None
        except smtplib.SMTPAuthenticationError:
            raise self._error("authentication refused") from None
        except smtplib.SMTPRecipientsRefused as exc:
            # Its text lists the recipients: only the codes go into ours.
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise self._error(f"recipient refused ({', '.join(map(str, codes))})") from None
        except smtplib.SMTPSenderRefused as exc:
            raise self._error(f"sender refused ({exc.smtp_code})", exc.smtp_code) from None
        except smtplib.SMTPDataError as exc:
            raise self._error(f"message refused ({exc.smtp_code})", exc.smtp_code) from None
        except smtplib.SMTPResponseException as exc:
            raise self._error(f"server answered {exc.smtp_code}", exc.smtp_code) from None
        except smtplib.SMTPServerDisconnected:
            # smtplib reports a read timeout this way too.
            raise self._error("the server closed the connection or did not answer", 421) from None
        except smtplib.SMTPException as exc:
            raise self._error(type(exc).__name__) from None
        except ssl.SSLError as exc:
            raise self._error(f"TLS failed ({exc.reason or 'handshake'})") from None
        except TimeoutError:
            raise self._error("timed out", 421) from None
        except ConnectionRefusedError:
            raise self._error("connection refused", 421) from None
        except OSError as exc:
            raise self._error(
                f"cannot connect ({exc.strerror or type(exc).__name__})", 421
            ) from None
        log.info("e-mail handed to %s", self.server)
        return str(msg["Message-ID"])

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _context(self) -> ssl.SSLContext:
        if self.ssl_context is not None:
            return self.ssl_context
        return ssl.create_default_context(cafile=self.ca_file)

    def _error(self, reason: str, code: int | None = None) -> DeliveryError:
        # 4xx (and no answer at all) is temporary in SMTP; 5xx is final.
        retryable = code is not None and 400 <= code < 500
        log.warning("e-mail not handed to %s: %s", self.server, reason)
        return DeliveryError("email", self.server, reason, retryable=retryable)


def _header_value(name: str, value: str) -> str:
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise RecordError("e-mail", name.lower(), "a header value may not contain a line break")
    return value
