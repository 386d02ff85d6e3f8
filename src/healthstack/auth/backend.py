"""SMART Backend Services: ``private_key_jwt`` client assertions (RS384, ES384) and their ``jti``.

authlib verifies the assertion (signature, ``iss`` = ``sub`` = client_id, ``aud`` = this token
endpoint, ``exp``); this module adds what SMART asks on top: only RS384/ES384, an assertion living
at most five minutes, keys inline or from the client's ``jwks_uri`` (fetched before authlib's
synchronous check, cached briefly), and each ``jti`` accepted once, across replicas
(:func:`remember_jti`, table ``smart_assertion_jti``).
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

import asyncpg
import httpx
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from healthstack.auth.clients import PRIVATE_KEY_JWT, Client

ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_SECONDS = 300
JWKS_TTL = 300.0
# Per request: the token endpoint URL (the one valid `aud`) and the jti to record once the rest
# of the assertion checked out.
audience_var: contextvars.ContextVar[str] = contextvars.ContextVar("smart_aud", default="")
seen_var: contextvars.ContextVar[list[tuple[str, str, float]] | None] = contextvars.ContextVar(
    "smart_jti", default=None
)


class KeyAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.fetched: dict[str, tuple[float, KeySet]] = {}

    def get_audiences(self) -> list[str]:
        return [audience_var.get()]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if client.jwks is not None:
            return KeySet.import_key_set(dict(client.jwks))  # type: ignore[arg-type]
        cached = self.fetched.get(client.jwks_uri or "")
        if cached is None or time.monotonic() - cached[0] > JWKS_TTL:
            raise InvalidClientError(description="the client's JWKS could not be fetched")
        return cached[1]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="the client assertion was refused "
                                     f"({type(exc).__name__})") from None  # fmt: skip
        claims: dict[str, Any] = token.claims
        self.verify_claims(claims)
        exp = claims["exp"]
        if not isinstance(exp, int | float) or exp - time.time() > MAX_ASSERTION_SECONDS:
            raise InvalidClientError(description="the client assertion must expire within "
                                     f"{MAX_ASSERTION_SECONDS} seconds")  # fmt: skip
        return claims

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            return False
        seen = seen_var.get()
        if seen is not None:  # recorded (and refused if replayed) by the async token endpoint
            seen.append((str(claims["sub"]), jti, float(claims["exp"])))
        return True

    async def prefetch(self, client: Client | None) -> None:
        """Fetch a client's JWKS by URL before authlib's synchronous verification needs it."""
        if client is None or client.jwks is not None or client.jwks_uri is None:
            return
        cached = self.fetched.get(client.jwks_uri)
        if cached is not None and time.monotonic() - cached[0] <= JWKS_TTL:
            return
        try:
            async with httpx.AsyncClient(timeout=5.0) as http:
                response = await http.get(client.jwks_uri)
                response.raise_for_status()
                keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError, TypeError, KeyError):
            return  # resolve_client_public_key refuses: invalid_client
        if len(self.fetched) > 256:
            self.fetched.clear()
        self.fetched[client.jwks_uri] = (time.monotonic(), keys)


REMEMBER_SQL = """
WITH gone AS (DELETE FROM smart_assertion_jti WHERE expires_at < now() - interval '1 minute')
INSERT INTO smart_assertion_jti (client_id, jti, expires_at)
VALUES ($1, $2, to_timestamp($3)) ON CONFLICT DO NOTHING RETURNING 1
"""


async def remember_jti(conn: asyncpg.Connection, client_id: str, jti: str, exp: float) -> bool:
    """True the first time (client, jti) is seen; False for a replay."""
    return await conn.fetchval(REMEMBER_SQL, client_id, jti, exp) is not None
