"""Repeated authentication failures: aggregated in the audit trail, then refused early (429).

One client sending bad tokens used to cost one audit row (~500 bytes) and one verification per
request, without limit (issue 12 item 16). Now, per source address and fixed window:

* the first ``audit_each`` failures of each reason are audited one by one, as before;
* further failures of that reason are counted, and written as one aggregate record (reason,
  count, first and last time) when the window closes: the evidence a review needs, bounded;
* past ``limit`` failures the source gets ``429`` with ``Retry-After`` until the window ends,
  before any token work, unless its token is one the verifier has already accepted (a clinic
  behind one NAT address keeps working while one of its machines misbehaves).

State is per process (each replica limits what it sees). Aggregates still open when a process
stops are flushed by :meth:`FailureLimiter.drain` at shutdown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0
LIMIT = 30
AUDIT_EACH = 5
MAX_SOURCES = 10_000  # beyond this many addresses in one window, they share one bucket
OVERFLOW_SOURCE = "*"


@dataclass
class Aggregate:
    """Failures of one reason from one source in one window that were not audited one by one."""

    source: str | None
    reason: str
    count: int
    first: float
    last: float

    def detail(self) -> str:
        start = dt.datetime.fromtimestamp(self.first, dt.UTC).isoformat(timespec="seconds")
        end = dt.datetime.fromtimestamp(self.last, dt.UTC).isoformat(timespec="seconds")
        return f"{self.reason}: {self.count} further failures from {start} to {end} (aggregated)"


@dataclass
class _Window:
    started: float
    total: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, Aggregate] = field(default_factory=dict)


class FailureLimiter:
    def __init__(self, *, window: float = WINDOW_SECONDS, limit: int = LIMIT,
                 audit_each: int = AUDIT_EACH) -> None:  # fmt: skip
        self.window = window
        self.limit = limit
        self.audit_each = audit_each
        self._windows: dict[str, _Window] = {}
        self._closed: list[Aggregate] = []
        self._swept = float("-inf")

    def _key(self, source: str | None) -> str:
        key = source or "unknown"
        if key not in self._windows and len(self._windows) >= MAX_SOURCES:
            return OVERFLOW_SOURCE
        return key

    def _current(self, source: str | None, now: float) -> _Window:
        key = self._key(source)
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window:
            if window is not None:
                self._closed.extend(window.suppressed.values())
            window = self._windows[key] = _Window(started=now)
        return window

    def retry_after(self, source: str | None, now: float) -> int | None:
        """Seconds until ``source`` may try again, or None when it is not being refused."""
        window = self._windows.get(self._key(source))
        if window is None or now - window.started >= self.window or window.total < self.limit:
            return None
        return max(1, int(window.started + self.window - now + 0.999))

    def failed(self, source: str | None, reason: str, now: float) -> bool:
        """Count a failure; True when it is to be audited on its own (else it is aggregated)."""
        window = self._current(source, now)
        window.total += 1
        seen = window.by_reason[reason] = window.by_reason.get(reason, 0) + 1
        if seen <= self.audit_each:
            return True
        aggregate = window.suppressed.get(reason)
        if aggregate is None:
            window.suppressed[reason] = Aggregate(source, reason, 1, now, now)
        else:
            aggregate.count += 1
            aggregate.last = now
        return False

    def closed(self, now: float) -> list[Aggregate]:
        """Aggregates of windows that have ended (to be audited now); each is returned once."""
        if now - self._swept >= 1.0:  # a sweep is O(sources): at most once a second
            self._sweep(now)
        done, self._closed = self._closed, []
        return done

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key, window in list(self._windows.items()):
            if now - window.started >= self.window:
                self._closed.extend(window.suppressed.values())
                del self._windows[key]

    def drain(self) -> list[Aggregate]:
        """Every aggregate still open (shutdown): nothing counted is lost."""
        for window in self._windows.values():
            self._closed.extend(window.suppressed.values())
        self._windows.clear()
        done, self._closed = self._closed, []
        return done
