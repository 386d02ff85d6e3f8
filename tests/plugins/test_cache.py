"""The API's in-memory registry snapshot: what the hot path sees, and when it changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg

from healthstack.plugins import Plugin
from healthstack.plugins.cache import CachedPluginSource
from healthstack.plugins.registry import PluginRegistry


def test_snapshot_follows_the_registry_on_refresh(
    database: Any, wat: Callable[..., Plugin]
) -> None:
    async def body(pool: asyncpg.Pool) -> None:
        registry = PluginRegistry(pool)
        source = CachedPluginSource(registry, max_age=0.05)
        assert not source.loaded
        await source.ensure_loaded()
        assert source.loaded
        assert not source.active("validate", "Patient")
        await registry.add(wat("reject"))
        assert not source.active("validate", "Patient")  # memory only: not yet seen
        await source.refresh()
        assert source.active("validate", "Patient")
        assert source.active("derive", "Observation")
        assert [p.name for p in await source.plugins_for("validate", "Patient")] == ["reject"]
        await registry.set_enabled("reject", False)
        refresher = asyncio.create_task(source.keep_fresh())
        await asyncio.sleep(0.2)  # a few periods of the background refresh
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        assert not source.active("validate", "Patient")
        disabled = await source.get("reject")  # kept: $evaluate answers "disabled", not 404
        assert disabled is not None
        assert not disabled.enabled
        await registry.remove("reject")
        await source.refresh()
        assert await source.get("reject") is None

    async def run() -> None:
        async with asyncpg.create_pool(database.url, min_size=1, max_size=2) as pool:
            await body(pool)

    asyncio.run(run())


class _FlakyRegistry:
    """Fails its first reads with what is not a database error, then answers."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures

    async def all_plugins(self) -> list[Plugin]:
        if self.failures:
            raise self.failures.pop(0)
        return []


def test_the_background_refresh_survives_any_failed_reload() -> None:
    async def body() -> None:
        failures: list[Exception] = [KeyError("code replaced between reads"), ValueError("x")]
        registry: Any = _FlakyRegistry(failures)  # stands in for PluginRegistry
        source = CachedPluginSource(registry, max_age=0.01)
        refresher = asyncio.create_task(source.keep_fresh())
        for _ in range(500):
            if source.loaded:
                break
            await asyncio.sleep(0.01)
        assert not refresher.done()  # still running after both failures
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        assert source.loaded
        assert failures == []

    asyncio.run(body())
