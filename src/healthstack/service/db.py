"""The asyncpg pool, database readiness, and the TimescaleDB capability probe."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import orjson

from healthstack.service.migrate import head_revision

T = TypeVar("T")

# asyncpg's own DataError (an InterfaceError and a ValueError: a value it cannot encode), not
# the server's class 22 ``asyncpg.DataError``.
ClientDataError: type[Exception] = asyncpg.exceptions._base.DataError


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


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no stubs
    """A pool whose ``acquire`` waits at most ``acquire_timeout`` by default.

    When the database hangs, every pooled connection ends up in a statement that never returns;
    without a bound, later requests would queue for a free connection forever instead of failing
    with a 503 the client can retry elsewhere (the db-outage drill's hang control shows this).
    """

    acquire_timeout: float | None = None
    loop: asyncio.AbstractEventLoop | None = None  # the loop it serves (set by create_pool)

    def acquire(self, *, timeout: float | None = None) -> Any:
        bound = self.acquire_timeout if timeout is None else timeout
        return super().acquire() if bound is None else BoundedAcquire(self, bound)


class BoundedAcquire:
    """``pool.acquire()`` within a deadline, used as asyncpg's own acquire context is (``async
    with`` or ``await``), at less cost per request: asyncpg bounds a wait with ``wait_for``,
    which runs the acquisition in a Task of its own; ``asyncio.timeout`` asks for the running
    loop three times, each a ``getpid()`` system call on CPython 3.11. The release keeps the same
    bound. The ``await`` form (the caller releases) is asyncpg's own, which stores the bound for
    that release; only ``async with``, the request path, takes the lean one."""

    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: BoundedPool, timeout: float) -> None:
        self._pool, self._timeout = pool, timeout
        self._conn: Any = None

    async def _acquire(self) -> Any:
        loop = self._pool.loop or asyncio.get_running_loop()
        acquiring = asyncpg.Pool.acquire(self._pool)  # unbounded itself: no wait_for Task
        return await within(loop, self._timeout, acquiring)

    async def __aenter__(self) -> Any:
        self._conn = await self._acquire()
        return self._conn

    async def __aexit__(self, *exc_info: object) -> None:
        conn, self._conn = self._conn, None
        await self._pool.release(conn, timeout=self._timeout)

    def __await__(self) -> Any:
        return asyncpg.Pool.acquire(self._pool, timeout=self._timeout).__await__()


async def within(loop: asyncio.AbstractEventLoop, seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable`` or TimeoutError after ``seconds``, as ``asyncio.timeout`` does it (a
    cancellation from elsewhere stays a cancellation), for a caller that knows its loop."""
    task = asyncio.current_task(loop)
    assert task is not None, "within() runs in a task"
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    deadline = loop.call_at(loop.time() + seconds, expire)
    try:
        result = await awaitable
    except BaseException as error:
        # Fired: take our cancellation back whatever came out (an awaitable may turn it into
        # another error), as asyncio.timeout does.
        if expired and task.uncancel() <= cancelling and isinstance(error, asyncio.CancelledError):
            raise TimeoutError from None  # ours, and no other cancellation is pending
        raise
    finally:
        deadline.cancel()
    if expired:  # fired as the wait completed
        task.uncancel()
    return result


async def create_pool(
    url: str,
    size: int,
    pooler: str | None = None,
    *,
    statement_timeout: float = 30.0,
    connect_timeout: float = 5.0,
) -> asyncpg.Pool:
    """The service's pool; a timeout of 0 means none (tests and the drill's negative control)."""
    # min_size=1 so a pod becomes ready fast; connections grow on demand up to POOL_SIZE.
    # Behind PgBouncer in transaction mode consecutive statements may reach different server
    # connections, where asyncpg's named prepared statements do not exist: no statement cache.
    pool = BoundedPool(
        url,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        min_size=1,
        max_size=size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connect=None,
        setup=None,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=statement_timeout or None,
        timeout=connect_timeout or None,
        statement_cache_size=0 if pooler == "pgbouncer" else 100,
    )
    pool.acquire_timeout = statement_timeout or None
    pool.loop = asyncio.get_running_loop()
    return await pool


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
    except DATABASE_ERRORS as exc:
        return f"database: {type(exc).__name__}"
    if version != head_revision():
        return f"migrations: at {version}, expected {head_revision()}"
    return None


def pool_stats(pool: asyncpg.Pool) -> dict[str, Any]:
    size = pool.get_size()
    return {"size": size, "in_use": size - pool.get_idle_size(), "max": pool.get_max_size()}


# Errors that mean "the database cannot be reached right now" (retryable: 503), as opposed to a
# statement the database refused (the request's or the code's fault). Callers ask ``unavailable``,
# the one definition of an outage (it also tells asyncpg's own errors apart), never this tuple.
_UNREACHABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    # The server shutting down (fast or immediate stop, crash recovery) under a running statement.
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    OSError,  # TimeoutError included
)
# Every error a database call raises: the server's refusals and the client library's own
# (``InternalClientError`` is not an ``InterfaceError``).
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InternalClientError, *_UNREACHABLE)
# asyncpg's protocol left mid-operation by a server that went away: "cannot switch to state 15;
# another operation (2) is in progress" on the COMMIT after a killed statement (a 500 in the
# db-outage drill). asyncpg's other InternalClientErrors (a bad bind, no codec, a pool misuse) are
# bugs: they stay 500s, so nothing retries them forever and they alert.
_PROTOCOL_LEFT_MID_OPERATION = "another operation"


def unavailable(error: BaseException) -> bool:
    """The database cannot be reached right now (a 503 the client may retry)."""
    if isinstance(error, ClientDataError):  # a value asyncpg cannot encode: never an outage
        return False
    if isinstance(error, asyncpg.InternalClientError):
        return _PROTOCOL_LEFT_MID_OPERATION in str(error)
    return isinstance(error, _UNREACHABLE)
