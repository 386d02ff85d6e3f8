"""Development tokens: HS256 with a key derived from SECRET_KEY_BASE (never the raw secret)."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

import jwt

DEV_ISSUER = "healthstack-dev"
DEV_AUDIENCE = "healthstack"


def dev_signing_key(secret_key_base: str) -> bytes:
    # A purpose-bound derivation: leaking a token key never reveals SECRET_KEY_BASE itself.
    purpose = b"healthstack/dev-token-key/v1"
    return hmac.new(secret_key_base.encode(), purpose, hashlib.sha256).digest()


def mint_dev_token(
    secret_key_base: str,
    subject: str,
    scopes: str,
    *,
    patient: str | None = None,
    ttl_seconds: int = 900,
    extra: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": subject,
        "scope": scopes,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if patient:
        claims["patient"] = patient
    claims.update(extra or {})
    return jwt.encode(claims, dev_signing_key(secret_key_base), algorithm="HS256")
