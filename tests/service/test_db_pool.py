"""The service's pool: an acquire waits for a busy pool only as long as the statement timeout.

When the database hangs, every pooled connection sits in a statement that never returns; a request
must then fail (503) instead of queueing forever (the db-outage drill's hang shows it end to end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tests.conftest import Database

from healthstack.service.db import create_pool, within


def test_acquire_on_an_exhausted_pool_fails_after_the_statement_timeout(database: Database) -> None:
    async def body() -> None:
        pool = await create_pool(database.url, 1, statement_timeout=1.0, connect_timeout=1.0)
        try:
            async with pool.acquire():  # the only slot, held as by a hung statement
                with pytest.raises(TimeoutError):
                    async with pool.acquire():
                        pass  # never reached: the bound fails the wait
                with pytest.raises(TimeoutError):
                    await pool.acquire()  # the other form, released by its caller
        finally:
            await pool.close()

    asyncio.run(body())


def test_without_a_statement_timeout_nothing_is_bounded(database: Database) -> None:
    # The drill's negative control (DATABASE_STATEMENT_TIMEOUT=0): its acquire must wait as before.
    async def body() -> None:
        pool = await create_pool(database.url, 1, statement_timeout=0, connect_timeout=0)
        try:
            assert pool.acquire_timeout is None
            async with pool.acquire():
                waiting = asyncio.ensure_future(pool.acquire().__aenter__())
                await asyncio.sleep(0.2)
                assert not waiting.done()  # still queued: no bound was applied
                waiting.cancel()
        finally:
            await pool.close()

    asyncio.run(body())


def test_a_bounded_wait_that_ends_early_loses_no_connection(database: Database) -> None:
    """Timed out, cancelled or served: every slot is back afterwards (asyncio.timeout cancels
    asyncpg's queue wait, which puts a holder it already took back)."""

    async def body() -> None:
        pool = await create_pool(database.url, 1, statement_timeout=0.5, connect_timeout=1.0)
        try:
            held = await pool.acquire()
            cancelled = asyncio.ensure_future(pool.acquire().__aenter__())
            await asyncio.sleep(0.05)
            cancelled.cancel()
            with pytest.raises(TimeoutError):
                async with pool.acquire():
                    pass
            served = asyncio.ensure_future(pool.acquire().__aenter__())
            await asyncio.sleep(0.05)
            await pool.release(held)
            conn = await asyncio.wait_for(served, timeout=5)
            assert await conn.fetchval("SELECT 1") == 1
            await pool.release(conn)
            for _ in range(3):  # the one slot, again and again: nothing was lost
                async with pool.acquire() as again:
                    assert await again.fetchval("SELECT 2") == 2
            assert pool.get_idle_size() == pool.get_size() == 1
        finally:
            await pool.close()

    asyncio.run(body())


Bound = Callable[[float, Awaitable[Any]], Awaitable[Any]]


async def _theirs(seconds: float, awaitable: Awaitable[Any]) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


async def _ours(seconds: float, awaitable: Awaitable[Any]) -> Any:
    return await within(asyncio.get_running_loop(), seconds, awaitable)


async def _converting() -> None:
    try:
        await asyncio.sleep(1.0)
    except asyncio.CancelledError:
        raise LookupError("cancelled, reported as another error") from None


async def _outcome(bound: Bound, scenario: str) -> str:
    """What the caller sees, and whether its task is left with a cancellation pending."""

    async def caller() -> str:
        try:
            if scenario == "in time":
                result = await bound(1.0, asyncio.sleep(0.01, "value"))
            elif scenario == "late":
                result = await bound(0.01, asyncio.sleep(1.0))
            elif scenario == "converted":  # late, and the awaitable turns the cancellation
                result = await bound(0.01, _converting())
            else:  # "cancelled": another party cancels the caller during the wait
                result = await bound(1.0, asyncio.sleep(1.0))
        except (TimeoutError, LookupError) as error:
            result = type(error).__name__
        task = asyncio.current_task()
        assert task is not None
        return f"{result} cancelling={task.cancelling()}"

    task = asyncio.ensure_future(caller())
    if scenario == "cancelled":
        await asyncio.sleep(0.02)
        task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return "CancelledError"


@pytest.mark.parametrize("scenario", ["in time", "late", "converted", "cancelled"])
def test_within_answers_as_asyncio_timeout_does(scenario: str) -> None:
    """The pool's deadline (no getpid() where asyncio.timeout makes three) keeps its
    meaning: a value in time, TimeoutError when late, a cancellation from elsewhere kept."""

    async def both() -> tuple[str, str]:
        return await _outcome(_theirs, scenario), await _outcome(_ours, scenario)

    theirs, ours = asyncio.run(both())
    assert ours == theirs
    assert ours == {"in time": "value cancelling=0", "late": "TimeoutError cancelling=0",
                    "converted": "LookupError cancelling=0",
                    "cancelled": "CancelledError"}[scenario]  # fmt: skip
