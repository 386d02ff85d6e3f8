"""The per-day token budget: what one process may spend with the provider per UTC day.

In memory, per process (replicas each have their own; docs/ai.md says so). A call reserves its
estimate before it is sent and settles to the provider's reported usage afterwards.
"""

from __future__ import annotations

import datetime as dt


class BudgetExceeded(Exception):
    pass


class Budget:
    def __init__(self, daily: int) -> None:
        self.daily = daily
        self.day = dt.datetime.now(dt.UTC).date()
        self.used = 0

    def _roll(self) -> None:
        today = dt.datetime.now(dt.UTC).date()
        if today != self.day:
            self.day, self.used = today, 0

    def reserve(self, estimate: int) -> None:
        self._roll()
        if self.used + estimate > self.daily:
            raise BudgetExceeded
        self.used += estimate

    def settle(self, estimate: int, actual: int) -> None:
        """Replace the reservation by the provider's count (kept when it reports none)."""
        self._roll()
        self.used = max(0, self.used - estimate + (actual or estimate))
