"""Text messages through a pluggable sender.

``HttpSmsSender`` posts in the form common SMS providers take: a form-encoded POST of ``To``,
``From`` and ``Body`` with HTTP basic auth (account id and token), answered with JSON carrying
the message's ``sid`` or ``id``. A 429 or 503 (the provider did not take the message) is
retried after its Retry-After when that is short, else raised with it; any other failure is
not retried, since the provider may already have sent the text. ``OutboxSmsSender`` appends
each message to a JSON-lines file instead (the demo; the sandbox EHR's /mail page shows it).
``SmsSender.from_config`` picks one from a mapping or the ``SYMFHIR_SMS_*`` variables.
Errors are DeliveryError naming the provider's host, never the number or the text.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from symfhir.contacts import normalize_phone
from symfhir.errors import ConfigError, DeliveryError, RecordError
from symfhir.urls import secure_url

log = logging.getLogger(__name__)

#: The longest body providers take (ten concatenated segments).
MAX_BODY = 1600
_KEYS = ("sender", "url", "account", "token", "from", "outbox", "timeout", "retries")


class SmsSender(ABC):
    """Sends one text message; ``send`` returns the provider's message id."""

    @abstractmethod
    def send(self, to: str, body: str) -> str:
        """Send ``body`` to the phone number ``to``. Raises RecordError for a bad number or
        body (before anything is sent), DeliveryError when it could not be handed over."""

    @staticmethod
    def from_config(
        mapping: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> SmsSender:
        """The sender of ``mapping`` (``sender``: ``http`` or ``outbox``; url, account,
        token, from, timeout, retries for http; outbox, from for outbox), each missing key
        from ``SYMFHIR_SMS_<KEY>`` in ``env``. Raises ConfigError."""
        env = os.environ if env is None else env
        given = dict(mapping or {})
        unknown = set(given) - set(_KEYS)
        if unknown:
            raise ConfigError(f"SMS settings: unknown keys {', '.join(sorted(unknown))}")

        def value(key: str) -> Any:
            found = given.get(key)
            if found in (None, ""):
                found = env.get(f"SYMFHIR_SMS_{key.upper()}") or None
            return found

        kind = str(value("sender") or "").lower()
        if kind == "outbox":
            outbox = value("outbox")
            if not outbox:
                raise ConfigError("SMS outbox: SYMFHIR_SMS_OUTBOX (a file path) is not set")
            return OutboxSmsSender(Path(outbox), str(value("from") or "+15555550100"))
        if kind == "http":
            try:
                timeout = float(value("timeout") or 10.0)
                retries = int(value("retries") or 2)
            except (TypeError, ValueError):
                raise ConfigError("SMS timeout and retries must be numbers") from None
            return HttpSmsSender(
                url=str(value("url") or ""),
                account=str(value("account") or ""),
                token=str(value("token") or ""),
                from_number=str(value("from") or ""),
                timeout=timeout,
                retries=retries,
            )
        raise ConfigError("SMS sender must be http or outbox (SYMFHIR_SMS_SENDER)")


def _checked(to: str, body: str) -> str:
    number = normalize_phone(to)
    if not isinstance(body, str) or not body.strip():
        raise RecordError("sms", "body", "empty")
    if len(body) > MAX_BODY:
        raise RecordError("sms", "body", f"longer than {MAX_BODY} characters")
    return number


class HttpSmsSender(SmsSender):
    """Posts to a provider's messages endpoint ``url`` (https; http only on loopback)."""

    def __init__(
        self,
        url: str,
        account: str,
        token: str,
        from_number: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        max_wait: float = 5.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(url)
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise ConfigError("SMS provider URL (SYMFHIR_SMS_URL) is not an http(s) URL")
        if not secure_url(url):
            # The token travels with every request.
            raise ConfigError("SMS provider URL must be https")
        if not account or not token:
            raise ConfigError("SMS provider needs an account and a token")
        try:
            self.from_number = normalize_phone(from_number)
        except RecordError:
            raise ConfigError("SMS from number (SYMFHIR_SMS_FROM) is not a phone number") from None
        if retries < 0 or timeout <= 0:
            raise ConfigError("SMS retries must be >= 0 and the timeout > 0")
        self.url = url
        self.server = parts.netloc
        self.timeout = timeout
        self.retries = retries
        self.max_wait = max_wait
        self._auth = (account, token)
        self._session = session or requests.Session()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpSmsSender({self.server!r})"

    def send(self, to: str, body: str) -> str:
        number = _checked(to, body)
        data = {"To": number, "From": self.from_number, "Body": body}
        for attempt in range(self.retries + 1):
            try:
                response = self._session.post(
                    self.url, data=data, auth=self._auth, timeout=self.timeout
                )
            except requests.ConnectTimeout:
                raise self._error("cannot connect (timed out)", True) from None
            except requests.ReadTimeout:
                # Not retried here: the provider may have taken it.
                raise self._error("no answer in time (it may have been sent)", True) from None
            except requests.ConnectionError:
                raise self._error("connection failed", True) from None
            except requests.RequestException as exc:
                raise self._error(f"request failed ({type(exc).__name__})", False) from None
            status = response.status_code
            if 200 <= status < 300:
                log.info("text message handed to %s", self.server)
                return _message_id(response)
            if status in (429, 503):
                wait = _retry_after(response.headers.get("Retry-After"))
                if attempt < self.retries and (wait is None or wait <= self.max_wait):
                    self._sleep(wait if wait is not None else 0.5 * 2**attempt)
                    continue
                reason = "rate limited" if status == 429 else "provider unavailable"
                raise self._error(
                    f"{reason} (HTTP {status})", True, None if wait is None else int(wait)
                )
            if status in (401, 403):
                raise self._error(f"credentials refused (HTTP {status})", False)
            # The provider's own message may quote the number: only its code is kept.
            code = _provider_code(response)
            reason = f"refused (HTTP {status}{f', code {code}' if code else ''})"
            raise self._error(reason, status >= 500)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _error(self, reason: str, retryable: bool, retry_after: int | None = None) -> DeliveryError:
        log.warning("text message not handed to %s: %s", self.server, reason)
        return DeliveryError(
            "sms", self.server, reason, retryable=retryable, retry_after=retry_after
        )


def _message_id(response: requests.Response) -> str:
    with contextlib.suppress(ValueError):
        answer = response.json()
        if isinstance(answer, dict):
            return str(answer.get("sid") or answer.get("id") or answer.get("message_id") or "")
    return ""


def _provider_code(response: requests.Response) -> str:
    with contextlib.suppress(ValueError):
        answer = response.json()
        if isinstance(answer, dict) and isinstance(answer.get("code"), int | str):
            code = str(answer["code"])
            return code if code.isalnum() and len(code) <= 12 else ""
    return ""


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110: delta-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    with contextlib.suppress(TypeError, ValueError):
        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None


class OutboxSmsSender(SmsSender):
    """Appends each message as one JSON line to ``path`` (made owner-only): the demo's
    stand-in for a provider. Safe across threads and processes (an exclusive file lock)."""

    def __init__(
        self,
        path: Path,
        from_number: str = "+15555550100",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = Path(path)
        self.from_number = from_number
        self._clock = clock
        self._lock = threading.Lock()

    def send(self, to: str, body: str) -> str:
        number = _checked(to, body)
        message_id = f"OB{uuid.uuid4().hex}"
        line = {
            "id": message_id,
            "at": self._clock().isoformat(timespec="seconds"),
            "to": number,
            "from": self.from_number,
            "body": body,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, data)
            finally:
                os.close(fd)
        return message_id


def read_outbox(path: Path | str) -> list[dict[str, str]]:
    """The messages in an outbox file, newest first; [] when there is none. A line that is
    not a message (a half-written one) is skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    messages = []
    for line in lines:
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict) and {"id", "to", "body"} <= item.keys():
                messages.append({k: str(v) for k, v in item.items()})
    return messages[::-1]
