"""The app's signing key for private_key_jwt client authentication, its JWKS, and the client
assertion (hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from symfhir.errors import ConfigError
from symfhir.fhir.auth import load_private_key

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART: exp at most 5 minutes ahead; stay under it in case this clock runs a little fast.
ASSERTION_LIFETIME_S = 240


class ClientKey:
    """One private key (RSA → RS384, EC P-384 → ES384) with its key id."""

    def __init__(self, key: RSAKey | ECKey, alg: str, kid: str) -> None:
        self.key = key
        self.alg = alg
        self.kid = kid

    @classmethod
    def load(cls, path: Path | None, kid: str | None) -> ClientKey:
        """From a PEM file, or a fresh ES384 key when ``path`` is None. Raises ConfigError."""
        if path is None:
            key: RSAKey | ECKey = ECKey.generate_key("P-384", private=True)
            alg = "ES384"
        else:
            try:
                pem = Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"SYMFHIR_PRIVATE_KEY_FILE: cannot read ({exc.strerror})"
                ) from None
            try:
                raw = load_pem_private_key(pem, password=None)
            except (ValueError, TypeError):
                raise ConfigError("SYMFHIR_PRIVATE_KEY_FILE: not an unencrypted PEM key") from None
            if isinstance(raw, rsa.RSAPrivateKey):
                alg = "RS384"
            elif isinstance(raw, ec.EllipticCurvePrivateKey):
                alg = "ES384"
            else:
                raise ConfigError("SYMFHIR_PRIVATE_KEY_FILE: must be an RSA or EC P-384 key")
            key = load_private_key(pem, alg)
        return cls(key, alg, kid or key.thumbprint())

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set to register with the EHR."""
        public = dict(self.key.as_dict(private=False))
        public.update({"kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]})
        return {"keys": [public]}

    def client_assertion(self, client_id: str, token_url: str) -> str:
        """A signed JWT: iss = sub = client_id, aud = the token URL, short exp, unique jti."""
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_S,
            "jti": secrets.token_urlsafe(24),
        }
        header = {"alg": self.alg, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])


class AssertionAuth(PrivateKeyJWT):
    """authlib's private_key_jwt client auth (used for refresh), signing a fresh assertion
    with ClientKey every time (authlib's default: RS256 and a reused jti)."""

    def __init__(self, token_url: str, client_key: ClientKey) -> None:
        super().__init__(token_url, alg=client_key.alg)
        self._client_key = client_key

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return self._client_key.client_assertion(auth.client_id, token_endpoint)
