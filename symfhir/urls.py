"""Which URLs may carry secrets: https, or plain http to this machine alone (a local relay, a
test server). One rule for the SMTP and SMS senders, the push to another provider, and the
app's own cookies."""

from __future__ import annotations

from urllib.parse import urlsplit

#: Host names of this machine.
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str | None) -> bool:
    return (host or "") in LOOPBACK


def secure_url(url: str) -> bool:
    """An https URL, or plain http to this machine only: nothing sent to it (a token, a
    client's records) crosses a network in clear."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))
