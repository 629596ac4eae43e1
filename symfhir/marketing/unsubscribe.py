"""Signed one-click unsubscribe links and the headers every marketing e-mail carries.

A link's token is ``<payload>.<mac>``, both base64url without padding: the payload is
``v1|<patient id>|<channel>|<issued-at, Unix seconds>``, the MAC is HMAC-SHA256 of the
payload text under the marketing key (``SYMFHIR_MARKETING_KEY``). A token is compared in
constant time, and refused when tampered with, unreadable, issued in the future, or older
than ``unsubscribe.max_age_days`` of ``mappings/marketing.yaml``.

The headers follow RFC 8058 (one-click: ``List-Unsubscribe`` with an https URL, and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``) with the RFC 2369 ``mailto:``
alternative for mail clients without one-click.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from symfhir.errors import ConfigError, UnsubscribeLinkError
from symfhir.marketing.rules import load_marketing_rules

KEY_ENV = "SYMFHIR_MARKETING_KEY"
MIN_KEY_CHARS = 32
VERSION = "v1"
ONE_CLICK = "List-Unsubscribe=One-Click"
#: The portal's path of a link (smart_app/portal/optout.py).
PATH = "/unsubscribe/"
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: A clock skew allowance: a token "issued" a little ahead of the checker's clock is fine.
SKEW = timedelta(minutes=5)
TAMPERED = "This unsubscribe link is not valid. It may have been changed or cut short."
EXPIRED = "This unsubscribe link has expired. Reply STOP to a text, or contact the spa."


@dataclass(frozen=True)
class UnsubscribeClaim:
    """What a valid token says: whose consent, for which channel, issued when."""

    patient_id: str
    channel: str
    issued_at: datetime


def marketing_key(environ: Mapping[str, str] = os.environ) -> bytes:
    """The key of ``SYMFHIR_MARKETING_KEY`` (at least 32 characters); ConfigError otherwise."""
    value = environ.get(KEY_ENV, "")
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(f"{KEY_ENV} must be a secret of at least {MIN_KEY_CHARS} characters")
    return value.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def make_token(key: bytes, patient_id: str, channel: str, *, now: datetime) -> str:
    """A token for ``patient_id``'s ``channel`` issued at ``now``; ValueError for an id that
    is not a FHIR id or a channel the rules do not list."""
    if not _ID.fullmatch(patient_id):
        raise ValueError("patient id is not a FHIR id")
    load_marketing_rules().channel(channel)
    payload = f"{VERSION}|{patient_id}|{channel}|{int(now.timestamp())}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def read_token(key: bytes, token: str, *, now: datetime) -> UnsubscribeClaim:
    """The claim of a valid token. Raises UnsubscribeLinkError when it was tampered with or
    cannot be read (TAMPERED) or is too old (EXPIRED); the MAC is checked, in constant time,
    before anything in the payload is believed."""
    if len(token) > 512 or token.count(".") != 1:
        raise UnsubscribeLinkError(TAMPERED)
    payload_text, mac_text = token.split(".")
    try:
        payload = _unb64(payload_text)
        given = _unb64(mac_text)
    except (ValueError, binascii.Error):
        raise UnsubscribeLinkError(TAMPERED) from None
    if not hmac.compare_digest(_mac(key, payload), given):
        raise UnsubscribeLinkError(TAMPERED)
    try:
        version, patient_id, channel, issued = payload.decode("ascii").split("|")
        issued_at = datetime.fromtimestamp(int(issued), UTC)
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise UnsubscribeLinkError(TAMPERED) from None
    rules = load_marketing_rules()
    if version != VERSION or not _ID.fullmatch(patient_id) or channel not in rules.channels:
        raise UnsubscribeLinkError(TAMPERED)
    if issued_at > now + SKEW:
        raise UnsubscribeLinkError(TAMPERED)
    if now - issued_at > timedelta(days=rules.unsubscribe_max_age_days):
        raise UnsubscribeLinkError(EXPIRED)
    return UnsubscribeClaim(patient_id, channel, issued_at)


def unsubscribe_url(base_url: str, token: str) -> str:
    """The portal's link for ``token`` (``base_url`` is the portal's public https URL)."""
    return f"{base_url.rstrip('/')}{PATH}{token}"


def marketing_headers(
    base_url: str,
    patient_id: str,
    channel: str,
    *,
    now: datetime,
    key: bytes | None = None,
    mailto: str | None = None,
) -> dict[str, str]:
    """The headers of a marketing e-mail to ``patient_id`` (RFC 8058 and RFC 2369):
    ``List-Unsubscribe: <https://…/unsubscribe/TOKEN>``, followed by
    ``<mailto:…?subject=unsubscribe%20TOKEN>`` when an address is configured (someone must
    read that mailbox), and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.

    ``key`` defaults to ``SYMFHIR_MARKETING_KEY``, ``mailto`` to the rules' address (none by
    default).
    Raises ConfigError for a base URL that is not https (RFC 8058 requires it; plain http is
    allowed on a loopback host, for the demo) or a missing key.
    """
    if not base_url.startswith("https://") and not re.match(
        r"http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(/|$)", base_url
    ):
        raise ConfigError("the unsubscribe base URL must be https (RFC 8058)")
    token = make_token(key if key is not None else marketing_key(), patient_id, channel, now=now)
    address = mailto or load_marketing_rules().unsubscribe_mailto
    links = f"<{unsubscribe_url(base_url, token)}>"
    if address:
        links += f", <mailto:{address}?subject={quote(f'unsubscribe {token}')}>"
    return {"List-Unsubscribe": links, "List-Unsubscribe-Post": ONE_CLICK}
