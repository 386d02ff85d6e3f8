"""A bounded, loopback-only load generator: mixed FHIR reads, searches and conditional creates.

It runs in a thread of its own (an asyncio loop with a fixed number of workers) so the drill's
main thread can orchestrate processes with plain blocking calls. The client never retries: every
failure the service or the load balancer lets through is counted, by kind.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from healthstack.ops.drills import timeline
from healthstack.ops.drills.fhir import FhirClient, Operation, answer_reason

Picker = Callable[[random.Random], Operation]


@dataclass
class Sample:
    op: str
    started: float
    latency: float
    failure: str | None  # None when the answer was the expected one
    reason: str | None = None  # the refusal's own words (``answer_reason``), for the report


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # ids of writes answered 2xx
    # What the drill did when (monotonic time, label): drawn over the load by `drill --report`.
    marks: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, label: str) -> None:
        self.marks.append((time.monotonic(), label))

    @property
    def total(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> Counter[str]:
        return Counter(s.failure for s in self.samples if s.failure)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(f"{s.failure}: {s.reason}" for s in self.samples if s.failure and s.reason)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def by_op(self) -> Counter[str]:
        return Counter(s.op for s in self.samples)

    def percentile(self, p: float) -> float:
        """Latency in milliseconds at percentile ``p`` (nearest rank)."""
        return timeline.percentile_ms([s.latency for s in self.samples], p)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.total,
            "failed": self.failed,
            "failures": dict(self.failures),
            "failure_reasons": dict(self.reasons),
            "by_operation": dict(self.by_op()),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(self.percentile(100), 2),
            "timeline": timeline.build(self.samples, self.marks),
        }


def failure_kind(exc: BaseException) -> str:
    return f"transport:{type(exc).__name__}"


class LoadGenerator:
    """``workers`` concurrent loops through ``base_url`` until stopped or a bound is reached."""

    def __init__(
        self,
        client: FhirClient,
        pick: Picker,
        *,
        workers: int = 8,
        max_requests: int = 200_000,
        max_seconds: float = 600.0,
        seed: int = 7,
    ) -> None:
        self.client = client
        self.pick = pick
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.seed = seed
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0

    def start(self) -> LoadGenerator:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout * 2 + 10)
        return self.result

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` requests were answered (load is really flowing)."""
        deadline = time.monotonic() + timeout
        while self.result.total < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def _done(self) -> bool:
        elapsed = time.monotonic() - self.started_at
        return (
            self._stop.is_set()
            or self.result.total >= self.max_requests
            or elapsed > self.max_seconds
        )

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        async with httpx.AsyncClient(
            base_url=self.client.base_url, limits=limits, timeout=self.client.timeout
        ) as http:
            await asyncio.gather(*(self._worker(http, i) for i in range(self.workers)))

    async def _worker(self, http: httpx.AsyncClient, index: int) -> None:
        rng = random.Random(f"{self.seed}/{index}")
        while not self._done():
            operation = self.pick(rng)
            started = time.monotonic()
            try:
                response = await http.request(
                    operation.method,
                    operation.path,
                    headers=operation.headers,
                    content=operation.body,
                )
                failure = operation.check(response)
                reason = answer_reason(response) if failure else None
                if failure is None and operation.ack is not None:
                    self.result.acknowledged.append(operation.ack(response))
            except httpx.HTTPError as exc:
                failure, reason = failure_kind(exc), str(exc)[:120] or None
            self.result.samples.append(
                Sample(operation.name, started, time.monotonic() - started, failure, reason)
            )


def unique_value() -> str:
    return uuid.uuid4().hex
