"""The client's signing key and its private_key_jwt client assertions (RFC 7523 §2.2), as
SMART's asymmetric client authentication wants them: RS384 or ES384, ``kid`` and ``typ`` in
the header, ``exp`` at most five minutes ahead, a fresh ``jti`` for every assertion.

https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html

This is the one place symfhir signs client assertions: the app's code exchange and refresh,
the FHIR client's Backend Services tokens and the app's audit channel all use ``ClientKey``.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from symfhir.errors import ConfigError

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART: exp at most five minutes after now; stay under it in case this clock runs ahead of
# the server's.
ASSERTION_LIFETIME_S = 240
ALGORITHMS = ("RS384", "ES384")


class ClientKey:
    """One private key (RSA → RS384, EC P-384 → ES384) with its key id."""

    def __init__(self, key: RSAKey | ECKey, alg: str, kid: str) -> None:
        self.key = key
        self.alg = alg
        self.kid = kid

    @classmethod
    def generate(cls, kid: str | None = None) -> ClientKey:
        """A fresh ES384 key (a demo or test app; a real one registers a lasting key)."""
        key = ECKey.generate_key("P-384", private=True)
        return cls(key, "ES384", kid or key.thumbprint())

    @classmethod
    def from_pem(
        cls, pem: bytes | str, kid: str | None = None, alg: str | None = None
    ) -> ClientKey:
        """The key in ``pem``; ``alg`` (RS384 or ES384) is taken from the key when None, and
        ``kid`` defaults to the key's RFC 7638 thumbprint. Raises ConfigError."""
        if alg is None:
            alg = _algorithm_of(pem)
        key = load_private_key(pem, alg)
        return cls(key, alg, kid or key.thumbprint())

    @classmethod
    def load(cls, path: Path | None, kid: str | None) -> ClientKey:
        """From a PEM file, or a fresh ES384 key when ``path`` is None. Raises ConfigError."""
        if path is None:
            return cls.generate(kid)
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the private key ({exc.strerror})") from None
        try:
            return cls.from_pem(pem, kid)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set to register with the EHR."""
        public = dict(self.key.as_dict(private=False))
        public.update({"kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]})
        return {"keys": [public]}

    def assertion(self, client_id: str, audience: str, *, now: float | None = None) -> str:
        """A signed JWT: iss = sub = ``client_id``, aud = the token URL, short exp, unique jti."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME_S,
            "jti": secrets.token_urlsafe(24),
        }
        header = {"alg": self.alg, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])

    def __repr__(self) -> str:
        return f"ClientKey(alg={self.alg!r}, kid={self.kid!r})"


class AssertionAuth(PrivateKeyJWT):
    """authlib's private_key_jwt client authentication, signing every request with a fresh
    ``ClientKey.assertion`` (authlib's own keeps its claims between calls, so it would reuse
    the first jti, and defaults to RS256 and a one-hour lifetime)."""

    def __init__(self, token_url: str, client_key: ClientKey) -> None:
        super().__init__(token_url, alg=client_key.alg)
        self.client_key = client_key

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return self.client_key.assertion(auth.client_id, token_endpoint)


def load_private_key(pem: bytes | str, algorithm: str) -> RSAKey | ECKey:
    """The private key for ``algorithm`` (RS384: RSA; ES384: EC P-384).

    Raises ConfigError when the PEM is not such a private key.
    """
    try:
        if algorithm == "RS384":
            key: RSAKey | ECKey = RSAKey.import_key(pem)
        elif algorithm == "ES384":
            key = ECKey.import_key(pem)
            if key.curve_name != "P-384":
                raise ConfigError("private key: ES384 needs an EC key on curve P-384")
        else:
            raise ConfigError(f"algorithm: {algorithm!r} is not RS384 or ES384")
    except (ValueError, TypeError, JoseError):
        kind = "RSA" if algorithm == "RS384" else "EC"
        raise ConfigError(f"private key: not a PEM {kind} key (needed for {algorithm})") from None
    if not key.is_private:
        raise ConfigError("private key: the PEM holds a public key, not a private key")
    return key


def _algorithm_of(pem: bytes | str) -> str:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        raw = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError("private key: not an unencrypted PEM private key") from None
    if isinstance(raw, rsa.RSAPrivateKey):
        return "RS384"
    if isinstance(raw, ec.EllipticCurvePrivateKey):
        return "ES384"
    raise ConfigError("private key: must be an RSA or EC P-384 key")
