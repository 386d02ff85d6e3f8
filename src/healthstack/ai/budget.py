"""The per-day token budget: what the deployment may spend with the provider per UTC day.

Kept in the table ``ai_token_budget`` (migration 0012), so every replica draws on one budget. A
call reserves its estimate before it is sent (one conditional upsert: refused when it would pass
the budget) and settles to the provider's reported usage afterwards.
"""

from __future__ import annotations

import asyncpg

RESERVE_SQL = """
INSERT INTO ai_token_budget AS b (day, used)
SELECT (now() AT TIME ZONE 'UTC')::date, $1::bigint WHERE $1::bigint <= $2::bigint
ON CONFLICT (day) DO UPDATE SET used = b.used + EXCLUDED.used WHERE b.used + EXCLUDED.used <= $2::bigint
RETURNING used
"""
SETTLE_SQL = """
UPDATE ai_token_budget SET used = greatest(0, used - $1::bigint + $2::bigint)
WHERE day = (now() AT TIME ZONE 'UTC')::date
"""


class BudgetExceeded(Exception):
    pass


class Budget:
    def __init__(self, daily: int) -> None:
        self.daily = daily

    async def reserve(self, conn: asyncpg.Connection, estimate: int) -> None:
        if await conn.fetchval(RESERVE_SQL, estimate, self.daily) is None:
            raise BudgetExceeded

    async def settle(self, conn: asyncpg.Connection, estimate: int, actual: int) -> None:
        """Replace the reservation by the provider's count (kept when it reports none)."""
        await conn.execute(SETTLE_SQL, estimate, actual or estimate)
