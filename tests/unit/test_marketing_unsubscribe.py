"""Unsubscribe tokens (round trip, tampering, expiry, another key) and the RFC 8058 headers."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta
from urllib.parse import unquote

import pytest

from symfhir.errors import ConfigError, UnsubscribeLinkError
from symfhir.marketing.unsubscribe import (
    EXPIRED,
    TAMPERED,
    make_token,
    marketing_headers,
    marketing_key,
    read_token,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


def test_a_token_reads_back_what_it_carries(key: bytes, now: datetime) -> None:
    token = make_token(key, "pat-1", "email", now=now)
    claim = read_token(key, token, now=now + timedelta(days=3))
    assert (claim.patient_id, claim.channel) == ("pat-1", "email")
    assert claim.issued_at == now.replace(microsecond=0)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged_payload(key: bytes, now: datetime) -> str:
    token = make_token(key, "pat-1", "email", now=now)
    _payload, mac = token.split(".")
    other = _b64(f"v1|pat-2|email|{int(now.timestamp())}".encode())
    return f"{other}.{mac}"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t, k, n: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t, k, n: t[1:],
        lambda t, k, n: t + "A",
        lambda t, k, n: t.replace(".", ""),
        lambda t, k, n: t + ".x",
        lambda t, k, n: t.split(".")[0] + ".",
        lambda t, k, n: "." + t.split(".")[1],
        lambda t, k, n: t.replace(t[0], "=", 1),
        lambda t, k, n: _forged_payload(k, n),
        lambda t, k, n: make_token(secrets.token_bytes(32), "pat-1", "email", now=n),
        lambda t, k, n: "x" * 600,
        lambda t, k, n: "",
    ],
    ids=[
        "mac-changed",
        "cut-front",
        "extended",
        "no-dot",
        "two-dots",
        "no-mac",
        "no-payload",
        "bad-alphabet",
        "other-patient",
        "other-key",
        "too-long",
        "empty",
    ],
)
def test_tampered_tokens_are_refused(key: bytes, now: datetime, tamper) -> None:
    token = make_token(key, "pat-1", "email", now=now)
    with pytest.raises(UnsubscribeLinkError) as refused:
        read_token(key, tamper(token, key, now), now=now)
    assert str(refused.value) == TAMPERED


def test_a_signed_payload_with_an_unknown_channel_or_version_is_refused(
    key: bytes, now: datetime
) -> None:
    import hashlib
    import hmac

    for payload in (
        f"v1|pat-1|fax|{int(now.timestamp())}",
        f"v2|pat-1|email|{int(now.timestamp())}",
        f"v1|../Patient|email|{int(now.timestamp())}",
        "v1|pat-1|email|soon",
    ):
        mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        with pytest.raises(UnsubscribeLinkError):
            read_token(key, f"{_b64(payload.encode())}.{_b64(mac)}", now=now)


def test_expired_and_future_tokens_are_refused(key: bytes, now: datetime) -> None:
    token = make_token(key, "pat-1", "sms", now=now)
    read_token(key, token, now=now + timedelta(days=90))  # the last day still works
    with pytest.raises(UnsubscribeLinkError) as refused:
        read_token(key, token, now=now + timedelta(days=90, seconds=1))
    assert str(refused.value) == EXPIRED
    with pytest.raises(UnsubscribeLinkError):
        read_token(key, token, now=now - timedelta(hours=1))


def test_tokens_refuse_bad_ids_and_channels(key: bytes, now: datetime) -> None:
    with pytest.raises(ValueError):
        make_token(key, "../x", "email", now=now)
    with pytest.raises(ConfigError):
        make_token(key, "pat-1", "fax", now=now)


def test_headers_offer_no_mailbox_nobody_reads(key: bytes, now: datetime) -> None:
    # The bundled rules name no unsubscribe mailbox: the one-click link is the one way out.
    headers = marketing_headers("https://portal.example.com/", "pat-1", "email", now=now, key=key)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (https,) = headers["List-Unsubscribe"].split(", ")
    assert https.startswith("<https://portal.example.com/unsubscribe/") and https.endswith(">")
    assert "mailto" not in headers["List-Unsubscribe"]


def test_headers_follow_rfc_8058(key: bytes, now: datetime) -> None:
    headers = marketing_headers(
        "https://portal.example.com/",
        "pat-1",
        "email",
        now=now,
        key=key,
        mailto="unsubscribe@example.com",
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = headers["List-Unsubscribe"].split(", ")
    assert https.startswith("<https://portal.example.com/unsubscribe/") and https.endswith(">")
    token = https[len("<https://portal.example.com/unsubscribe/") : -1]
    assert read_token(key, token, now=now).patient_id == "pat-1"
    assert mailto.startswith("<mailto:unsubscribe@example.com?subject=")
    assert unquote(mailto[:-1].split("subject=")[1]) == f"unsubscribe {token}"


def test_headers_need_https_and_a_key(monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
    with pytest.raises(ConfigError):
        marketing_headers("http://portal.example.com", "p", "email", now=now, key=b"k" * 32)
    # Plain http only on a loopback host (the demo).
    marketing_headers("http://localhost:5200", "p", "email", now=now, key=b"k" * 32)
    monkeypatch.delenv("SYMFHIR_MARKETING_KEY", raising=False)
    with pytest.raises(ConfigError):
        marketing_headers("https://portal.example.com", "p", "email", now=now)
    with pytest.raises(ConfigError):
        marketing_key({"SYMFHIR_MARKETING_KEY": "short"})
    assert marketing_key({"SYMFHIR_MARKETING_KEY": "s" * 32}) == b"s" * 32
