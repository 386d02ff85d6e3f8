"""The identity provider's signing keys (JWKS), cached and refreshed on an unknown ``kid``.

Refreshes are rate-limited (``min_interval``): a flood of tokens with made-up key ids costs one
fetch per interval, not one per request. Keys also expire after ``max_age`` so a key the provider
withdrew stops being accepted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt

log = logging.getLogger("healthstack.auth")
ALGORITHMS = ("RS256", "ES256")


class JwksError(Exception):
    pass


class JwksCache:
    def __init__(self, url: str, *, min_interval: float = 30.0, max_age: float = 600.0,
                 timeout: float = 5.0) -> None:  # fmt: skip
        self.url = url
        self.min_interval = min_interval
        self.max_age = max_age
        self.timeout = timeout
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> Any:
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

    async def _fetch(self) -> dict[str, Any]:
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


def _parse(document: Any) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for entry in document.get("keys", []) if isinstance(document, dict) else []:
        kid = entry.get("kid")
        if not kid or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = jwt.PyJWK(entry).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            log.warning("JWKS entry skipped", extra={"kid": kid})
    return keys
