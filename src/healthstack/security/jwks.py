"""The identity provider's signing keys (JWKS), cached and refreshed on an unknown ``kid``.

Refreshes are rate-limited (``min_interval``): a flood of tokens with made-up key ids costs one
fetch per interval, not one per request. Keys also expire after ``max_age`` so a key the provider
withdrew stops being accepted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

log = logging.getLogger("healthstack.auth")
ALGORITHMS = ("RS256", "ES256")
# The key type (and curve) each accepted algorithm needs: a token whose header names an algorithm
# of another family than its key is refused before any signature check (RFC 7518 section 3.1).
KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}


class JwksError(Exception):
    pass


@dataclass(frozen=True)
class ProviderKey:
    """A verification key with what the provider published about it."""

    key: Any
    kty: str
    alg: str | None  # the JWK's own `alg`, when the provider names one
    crv: str | None

    def accepts(self, algorithm: str) -> bool:
        if self.alg is not None and self.alg != algorithm:
            return False
        kty, crv = KEY_TYPES.get(algorithm, (None, None))
        return kty == self.kty and (crv is None or crv == self.crv)


class JwksCache:
    def __init__(self, url: str, *, min_interval: float = 30.0, max_age: float = 600.0,
                 timeout: float = 5.0) -> None:  # fmt: skip
        self.url = url
        self.min_interval = min_interval
        self.max_age = max_age
        self.timeout = timeout
        self._keys: dict[str, ProviderKey] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> ProviderKey:
        """The verification key for ``kid``; raises JwksError when the provider does not have it."""
        stale = time.monotonic() - self._fetched_at > self.max_age
        if kid not in self._keys or stale:
            await self._refresh()
        try:
            return self._keys[kid]
        except KeyError:
            raise JwksError("unknown key id") from None

    async def _refresh(self) -> None:
        async with self._lock:
            # Rate limit (and: another request may have refreshed while this one waited).
            if time.monotonic() - self._fetched_at < self.min_interval:
                return
            self._fetched_at = time.monotonic()
            self._keys = await self._fetch()

    async def _fetch(self) -> dict[str, ProviderKey]:
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch failed", extra={"error": type(exc).__name__})
            return self._keys  # keep serving with the keys we had
        return _parse(document)


def _parse(document: Any) -> dict[str, ProviderKey]:
    keys: dict[str, ProviderKey] = {}
    entries = document.get("keys", []) if isinstance(document, dict) else []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            log.warning("JWKS entry skipped", extra={"kid": kid[:64]})
            continue
        alg, crv = entry.get("alg"), entry.get("crv")
        keys[kid] = ProviderKey(
            key, str(entry.get("kty")), alg if isinstance(alg, str) else None,
            crv if isinstance(crv, str) else None,
        )  # fmt: skip
    return keys
