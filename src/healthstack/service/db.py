"""The asyncpg pool, database readiness, and the TimescaleDB capability probe."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from healthstack.service.migrate import head_revision


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as bytes-fast orjson rather than the stdlib json module.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query, one round trip per request saved.

    The default (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) undoes session
    state; the service creates none (no SET, LISTEN, session advisory locks or WITH HOLD cursors:
    its advisory locks are transaction-scoped). asyncpg still rolls back an open transaction and
    drops listeners before calling this, so a connection never goes back mid-transaction.
    """


async def create_pool(url: str, size: int, pooler: str | None = None) -> asyncpg.Pool:
    # min_size=1 so a pod becomes ready fast; connections grow on demand up to POOL_SIZE.
    # Behind PgBouncer in transaction mode consecutive statements may reach different server
    # connections, where asyncpg's named prepared statements do not exist: no statement cache.
    return await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
        timeout=5,
        statement_cache_size=0 if pooler == "pgbouncer" else 100,
    )


@dataclass(frozen=True)
class Capabilities:
    timescaledb: bool

    @property
    def time_bucket_function(self) -> str:
        """SQL function for bucketing time series: TimescaleDB's or PostgreSQL's own (>= 14)."""
        return "time_bucket" if self.timescaledb else "date_bin"


async def probe_capabilities(conn: asyncpg.Connection) -> Capabilities:
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS installed"
    )
    return Capabilities(timescaledb=bool(row and row["installed"]))


async def readiness(pool: asyncpg.Pool, limit_seconds: float = 1.0) -> str | None:
    """None when ready, else a short reason (no connection details, which could hold secrets)."""
    try:
        async with asyncio.timeout(limit_seconds):
            async with pool.acquire() as conn:
                version = await conn.fetchval("SELECT version_num FROM alembic_version")
    except TimeoutError:
        return "database: timeout"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"database: {type(exc).__name__}"
    if version != head_revision():
        return f"migrations: at {version}, expected {head_revision()}"
    return None


def pool_stats(pool: asyncpg.Pool) -> dict[str, Any]:
    size = pool.get_size()
    return {"size": size, "in_use": size - pool.get_idle_size(), "max": pool.get_max_size()}


# Errors that mean "the database cannot be reached right now" (retryable: 503), as opposed to a
# statement the database refused (the request's or the code's fault).
DATABASE_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    OSError,
)
