"""Bearer-token verification (164.312(d)): who is calling, from a signed JWT, or a refusal.

Production accepts only RS256/ES256 tokens from the configured identity provider (keys from its
JWKS). Development and test also accept HS256 tokens signed with the key derived from
SECRET_KEY_BASE (``healthstack token``); production refuses HS256 outright, so a leaked
SECRET_KEY_BASE can never mint production access.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import jwt

from healthstack.config import Settings
from healthstack.security import tokens
from healthstack.security.jwks import ALGORITHMS, JwksCache, JwksError, ProviderKey
from healthstack.security.principal import Principal

LEEWAY_SECONDS = 30
# Verified tokens are remembered until they expire: a client sends the same token with every
# request, and a signature check (HS256 ~20 µs, RS256/ES256 ~50-100 µs) would otherwise be paid
# each time. Bounded; cleared wholesale when full (tokens are short-lived anyway).
CACHE_SIZE = 10_000
_REQUIRED = ("exp", "iat", "sub", "iss", "aud")


class AuthError(Exception):
    """A token was refused. ``reason`` is a short metric label; the message is safe to return."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.max_lifetime = settings.token_max_lifetime
        self.dev_key: bytes | None = None
        if not settings.production and settings.secret_key_base:
            self.dev_key = tokens.dev_signing_key(settings.secret_key_base)
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.jwks = JwksCache(settings.oidc_jwks_url) if settings.oidc_jwks_url else None
        self._cache: dict[str, tuple[Principal, float]] = {}

    def known(self, token: str) -> bool:
        """Whether ``token`` was verified before and has not expired (no new work to check)."""
        cached = self._cache.get(token)
        return cached is not None and time.time() < cached[1]

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        principal, expires = await self._verify(token)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = (principal, expires)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        # Whatever goes wrong while checking a token is a refusal (401, audited, counted), never
        # a 500: libraries raise TypeError/ValueError on inputs their authors did not foresee.
        try:
            return await self._verify_token(token)
        except AuthError:
            raise
        except Exception as exc:
            raise AuthError("invalid", f"the token was refused ({type(exc).__name__})") from None

    async def _verify_token(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthError("malformed", "the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm == "HS256" and self.dev_key is not None:
            claims = self._decode(
                token, self.dev_key, "HS256", tokens.DEV_ISSUER, tokens.DEV_AUDIENCE
            )
        elif algorithm in ALGORITHMS and self.jwks is not None:
            key = await self._provider_key(header)
            if not key.accepts(algorithm):
                raise AuthError("algorithm", "the token's algorithm does not match its key")
            claims = self._decode(token, key.key, algorithm, self.issuer, self.audience)
        else:
            raise AuthError("algorithm", "the token's signing algorithm is not accepted here")
        self._check_lifetime(claims)
        return principal_from(claims), float(claims["exp"]) + LEEWAY_SECONDS

    async def _provider_key(self, header: Mapping[str, Any]) -> ProviderKey:
        kid = header.get("kid")
        if not isinstance(kid, str) or self.jwks is None:
            raise AuthError("key", "the token names no key id")
        try:
            return await self.jwks.key(kid)
        except JwksError:
            raise AuthError("key", "the token's key id is not one of the provider's keys") from None

    def _decode(self, token: str, key: Any, algorithm: str, issuer: str | None,
                audience: str | None) -> dict[str, Any]:  # fmt: skip
        if issuer is None or audience is None:
            raise AuthError("config", "the identity provider is not configured")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[algorithm], issuer=issuer, audience=audience,
                leeway=LEEWAY_SECONDS, options={"require": list(_REQUIRED)},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise AuthError("expired", "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("not_yet_valid", "the token is not valid yet") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError("invalid", f"the token was refused: {_safe(exc)}") from None
        return claims

    def _check_lifetime(self, claims: Mapping[str, Any]) -> None:
        # Automatic logoff: a token living longer than TOKEN_MAX_LIFETIME_SECONDS is refused even
        # if the provider issued it; iat in the future is refused too (beyond the leeway).
        for name in ("iat", "exp", "nbf"):
            if name in claims and not _is_number(claims[name]):
                raise AuthError("invalid", f"the token's {name} is not a number")
        for name in ("sub", "jti", "patient", "client_id", "azp"):
            if name in claims and not isinstance(claims[name], str):
                raise AuthError("invalid", f"the token's {name} is not a string")
        scope = claims.get("scope", claims.get("scp", ""))
        if not isinstance(scope, str) and not (
            isinstance(scope, list) and all(isinstance(s, str) for s in scope)
        ):
            raise AuthError("invalid", "the token's scope is not a string")
        iat, exp = claims["iat"], claims["exp"]
        if iat > time.time() + LEEWAY_SECONDS:
            raise AuthError("invalid", "the token's iat is in the future")
        if exp - iat > self.max_lifetime:
            raise AuthError("lifetime", f"token lifetime exceeds {self.max_lifetime} seconds")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**53  # a time, not an arbitrary-precision integer
    return isinstance(value, float) and math.isfinite(value)


def _safe(exc: Exception) -> str:
    # PyJWT messages name claims, never their values; keep them short anyway.
    return str(exc)[:120]


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    items = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return frozenset(str(s) for s in items)


def principal_from(claims: Mapping[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("invalid", "the token has no subject")
    patient = claims.get("patient")
    client = claims.get("client_id") or claims.get("azp")
    return Principal(
        subject=subject,
        client_id=str(client) if client else None,
        scopes=_scopes(claims),
        patient=str(patient) if patient else None,
        token_id=str(claims["jti"]) if claims.get("jti") else None,
    )
