"""The sandbox's own signing key (generated at start, never stored) and JWT helpers (joserfc)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

ALGORITHM = "RS256"


class TokenError(Exception):
    """A sandbox-issued JWT is malformed, badly signed, expired or of the wrong kind."""


class SigningKey:
    """An RSA key generated in memory; its public half is served as the JWKS."""

    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex[:16]
        self._key = RSAKey.generate_key(
            2048, parameters={"kid": self.kid, "use": "sig", "alg": ALGORITHM}, private=True
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._key.as_dict(private=False)]}

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": typ}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def verify(self, token: str, kind: str | None = None, check_exp: bool = True) -> dict:
        """Return the claims of a token this key signed.

        Raises TokenError if the signature, `exp` (when `check_exp`) or `token_use` is wrong.
        """
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM]).claims
        except (JoseError, ValueError) as error:
            raise TokenError(f"invalid token: {error}") from error
        if kind is not None and claims.get("token_use") != kind:
            raise TokenError(f"not a {kind} token")
        exp = claims.get("exp")
        if check_exp and (not isinstance(exp, int | float) or exp <= time.time()):
            raise TokenError("token expired")
        return claims
