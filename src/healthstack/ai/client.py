"""One chat completion against an OpenAI-compatible endpoint: bounded, retried, circuit-broken.

Failures come out as :class:`ProviderError` carrying the HTTP status the FHIR API answers with:
502 (the provider answered wrongly), 503 (unreachable, rate-limited, circuit open, no key),
504 (timed out). Nothing here logs a request or response body: they are payloads about a patient.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from healthstack.ai.settings import AiSettings

log = logging.getLogger("healthstack.ai")
MAX_ANSWER_BYTES = 1_048_576
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class ProviderError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int


class Breaker:
    """Consecutive failures open the circuit; after the cooldown one call may try again."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.failures = 0
        self.opened_at: float | None = None

    def check(self) -> None:
        if self.opened_at is None:
            return
        if time.monotonic() - self.opened_at < self.cooldown:
            raise ProviderError(
                503,
                "transient",
                "the AI provider is failing; calls are paused for a while (circuit open)",
            )
        self.opened_at = None  # half-open: this call decides
        self.failures = self.threshold - 1

    def record(self, ok: bool) -> None:
        if ok:
            self.failures, self.opened_at = 0, None
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


Attempt = Callable[[int], Awaitable[None]]


class ChatClient:
    def __init__(self, settings: AiSettings, api_key: str | None) -> None:
        self.settings, self.api_key = settings, api_key
        self.breaker = Breaker(settings.breaker_threshold, settings.breaker_cooldown)

    async def complete(self, body: bytes, before_attempt: Attempt) -> Completion:
        """POST ``body`` to ``/chat/completions``; ``before_attempt(n)`` runs before each send
        (the disclosure audit record: it must exist before the payload leaves)."""
        if not self.api_key:
            raise ProviderError(
                503, "not-supported", "AI summaries are not configured (OPENAI_API_KEY is not set)"
            )
        self.breaker.check()
        settings = self.settings
        failure = ProviderError(502, "exception", "the AI provider failed")
        async with httpx.AsyncClient(
            timeout=settings.timeout, follow_redirects=False, trust_env=False
        ) as http:
            for attempt in range(1, settings.max_retries + 2):
                await before_attempt(attempt)
                try:
                    response = await self._post(http, body)
                except ProviderError:
                    self.breaker.record(False)
                    raise
                except httpx.TimeoutException:
                    failure = ProviderError(
                        504, "timeout", f"the AI provider did not answer in {settings.timeout:g} s"
                    )
                    retry_after = None
                except httpx.TransportError as error:
                    log.warning("AI provider unreachable", extra={"error": type(error).__name__})
                    failure = ProviderError(503, "transient", "the AI provider is unreachable")
                    retry_after = None
                except httpx.HTTPError:  # e.g. an undecodable body: the provider misbehaves
                    failure = ProviderError(
                        502, "exception", "the AI provider's answer is unreadable"
                    )
                    retry_after = None
                else:
                    if response.status_code not in RETRIED_STATUSES:
                        return self._finish(response)
                    failure = _status_failure(response.status_code)
                    retry_after = _retry_after(response)
                if attempt <= settings.max_retries:
                    await asyncio.sleep(_delay(settings.backoff, attempt, retry_after))
        self.breaker.record(False)
        raise failure

    async def _post(self, http: httpx.AsyncClient, body: bytes) -> httpx.Response:
        """The answer read up to MAX_ANSWER_BYTES: a provider cannot exhaust our memory."""
        request = http.build_request(
            "POST",
            f"{self.settings.base_url}/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        response = await http.send(request, stream=True)
        try:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise ProviderError(502, "exception", "the AI provider's answer is too large")
                chunks.append(chunk)
        finally:
            await response.aclose()
        return httpx.Response(
            response.status_code, headers=response.headers, content=b"".join(chunks)
        )

    def _finish(self, response: httpx.Response) -> Completion:
        try:
            completion = _parse(response)
        except ProviderError:
            self.breaker.record(False)
            raise
        self.breaker.record(True)
        return completion


def _status_failure(status: int) -> ProviderError:
    if status == 429:
        return ProviderError(503, "transient", "the AI provider is rate-limiting this service")
    return ProviderError(502, "exception", f"the AI provider failed (HTTP {status})")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _delay(backoff: float, attempt: int, retry_after: float | None) -> float:
    delay = backoff * 2.0 ** (attempt - 1)
    if retry_after is not None:
        delay = max(delay, min(retry_after, backoff * 10))  # bounded: a client request waits
    return delay


def _parse(response: httpx.Response) -> Completion:
    """The first choice's text; anything else (errors, truncation, odd shapes) is a 502."""
    if response.status_code != 200:
        log.error("AI provider refused the request", extra={"status": response.status_code})
        return _raise(f"the AI provider refused the request (HTTP {response.status_code})")
    try:
        data: Any = orjson.loads(response.content)
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return _raise("the AI provider's answer is not a chat completion")
    if not isinstance(text, str) or not text.strip():
        return _raise("the AI provider's answer is empty")
    if choice.get("finish_reason") not in (None, "stop"):
        return _raise(
            "the AI provider's answer was cut short "
            f"(finish_reason {str(choice.get('finish_reason'))[:32]!r}); nothing stored"
        )
    usage = data.get("usage") if isinstance(data, dict) else None
    tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
    return Completion(text, tokens if isinstance(tokens, int) and tokens >= 0 else 0)


def _raise(message: str) -> Completion:
    raise ProviderError(502, "exception", message)
