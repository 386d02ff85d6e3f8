"""Cost of the plugin hooks on a write when no plugin runs: ``python -m bench.plugin_hooks``.

Times ``Caller.before_store`` + ``Caller.after_store`` (what ``ops.create``/``ops.update`` add to
every write) without a PluginHooks, and with one whose loaded snapshot has no enabled plugin.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time

from healthstack.config import Settings
from healthstack.fhir.access import PLUGIN_HOOKS, Caller
from healthstack.fhir.plugin_hooks import PluginHooks
from healthstack.fhir.store import Version
from healthstack.plugins.cache import CachedPluginSource
from healthstack.plugins.registry import PluginRegistry
from healthstack.security.principal import Principal
from healthstack.service.state import ServiceState


async def per_write_ns(caller: Caller, writes: int) -> float:
    version = Version("Observation", "o1", 1, False, dt.datetime.now(dt.UTC), b"{}")
    resource = {"resourceType": "Observation", "status": "final"}
    started = time.perf_counter()
    for _ in range(writes):
        await caller.before_store(None, "Observation", resource, "o1")
        await caller.after_store(None, None, version)  # type: ignore[arg-type]  # never reached
    return (time.perf_counter() - started) / writes * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--writes", type=int, default=200_000)
    args = parser.parse_args()
    state = ServiceState(Settings(env="test"), "")
    caller = Caller(state, Principal("bench"))
    print(f"no PluginHooks: {asyncio.run(per_write_ns(caller, args.writes)):.0f} ns/write")
    source = CachedPluginSource(PluginRegistry(None))  # never queried: the snapshot is set
    source.loaded_at = time.monotonic()  # loaded, empty: as after startup with no plugin
    state.extras[PLUGIN_HOOKS] = PluginHooks(state, source)
    print(f"hooks, nothing enabled: {asyncio.run(per_write_ns(caller, args.writes)):.0f} ns/write")


if __name__ == "__main__":
    main()
