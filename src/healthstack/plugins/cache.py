"""The API's in-memory view of the registry, so a write with no plugin for it costs a set lookup.

The snapshot (every registered plugin, with its code) is reloaded by :meth:`refresh`: at startup,
right after an administrative change made through this process, and every ``max_age`` seconds by
:meth:`keep_fresh` (changes made by the CLI or by another replica show up within that time).
"""

from __future__ import annotations

import asyncio
import logging
import time

from healthstack.plugins.model import Plugin
from healthstack.plugins.registry import PluginRegistry

log = logging.getLogger("healthstack.plugins")
REFRESH_SECONDS = 10.0


class CachedPluginSource:
    """A :class:`~healthstack.plugins.host.PluginSource` answering from memory."""

    def __init__(self, registry: PluginRegistry, max_age: float = REFRESH_SECONDS) -> None:
        self.registry = registry
        self.max_age = max_age
        self._plugins: dict[str, Plugin] = {}
        self._active: frozenset[tuple[str, str]] = frozenset()
        self.loaded_at: float | None = None  # monotonic time of the last successful load

    @property
    def loaded(self) -> bool:
        return self.loaded_at is not None

    def active(self, trigger: str, resource_type: str) -> bool:
        """Whether an enabled plugin runs for (trigger, type): the hot path's only cost."""
        return (trigger, resource_type) in self._active

    async def refresh(self) -> None:
        plugins = await self.registry.all_plugins()
        self._plugins = {p.name: p for p in plugins}
        self._active = frozenset(
            (t, r) for p in plugins if p.enabled for t in p.triggers for r in p.resource_types
        )
        self.loaded_at = time.monotonic()

    async def ensure_loaded(self) -> None:
        """Before a hook decides anything: a source that never loaded must not answer "none"."""
        if self.loaded_at is None:
            await self.refresh()

    async def keep_fresh(self) -> None:
        """Reload every ``max_age`` seconds until cancelled; a failed reload keeps the snapshot."""
        while True:
            await asyncio.sleep(self.max_age)
            try:
                await self.refresh()
            except Exception as exc:
                # Whatever failed (the database away, a plugin's code replaced between the two
                # reads, a stored manifest refused), the task must live on: an ended one would
                # keep a plugin an admin disabled running on this replica until a restart.
                log.warning("plugin registry refresh failed", extra={"error": type(exc).__name__})

    async def plugins_for(self, trigger: str, resource_type: str) -> list[Plugin]:
        return [p for p in self._plugins.values() if p.runs_for(trigger, resource_type)]

    async def get(self, name: str) -> Plugin | None:
        return self._plugins.get(name)
