"""Sealed fields of the store: MultiFernet encryption, and keyed lookup hashes (HMAC-SHA256)
that find a value again without storing it in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from symfhir.errors import ConfigError, StoreError

_LOOKUP_INFO = b"symfhir store lookup v1"


class Sealer:
    """Encrypts with the first of ``keys`` and decrypts with any (rotation: put a new key first,
    keep the old ones until their data has expired). ``lookup_key`` keys the lookup hashes; by
    default it is derived from the last key, the one kept longest during a rotation."""

    def __init__(self, keys: Sequence[str], lookup_key: bytes | None = None) -> None:
        if not keys:
            raise ConfigError("SYMFHIR_STORE_KEYS: at least one Fernet key is needed")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError):
            raise ConfigError(
                "SYMFHIR_STORE_KEYS: not a Fernet key (32 url-safe base64 bytes)"
            ) from None
        if lookup_key is None:
            raw = base64.urlsafe_b64decode(keys[-1])
            lookup_key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=_LOOKUP_INFO
            ).derive(raw)
        if len(lookup_key) < 32:
            raise ConfigError("SYMFHIR_STORE_LOOKUP_KEY: needs at least 32 bytes")
        self._lookup_key = lookup_key

    def seal(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode("utf-8"))

    def unseal(self, token: bytes) -> str:
        """The clear value. Raises StoreError when no key opens it (a key was dropped)."""
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise StoreError("a sealed field cannot be opened with the configured keys") from None

    def lookup(self, purpose: str, value: str) -> str:
        """The hex HMAC of ``value`` (already normalized) for ``purpose``; the purpose keeps an
        e-mail's hash from matching the same text used elsewhere."""
        message = purpose.encode("utf-8") + b"\x00" + value.encode("utf-8")
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()
