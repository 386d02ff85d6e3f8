"""Invocation overhead of a plugin: ``python -m bench.plugin_calls FILE.wasm [--calls N]``.

Prints the cold compile time, the cost of a cached call, and calls per second both on the caller's
thread and through the async worker pool. The input is five normal vital signs (NEWS2's input).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from healthstack.plugins.model import Plugin
from healthstack.plugins.runtime import ModuleCache, PluginRuntime, new_engine

VITALS = {"9279-1": 16, "59408-5": 97, "8480-6": 120, "8867-4": 70, "8310-5": 37.0}


def sample_input() -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Observation",
            "id": f"v{i}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-03-01T10:00:00Z",
            "valueQuantity": {"value": value},
        }
        for i, (code, value) in enumerate(VITALS.items())
    ]


def cold_compile_ms(wasm: bytes, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        cache = ModuleCache(new_engine(), 1)
        started = time.perf_counter()
        cache.get(wasm)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def sequential_rate(rt: PluginRuntime, plugin: Plugin, calls: int) -> float:
    resources = sample_input()
    started = time.perf_counter()
    for _ in range(calls):
        rt.call(plugin, "derive", resources)
    return calls / (time.perf_counter() - started)


async def pooled_rate(rt: PluginRuntime, plugin: Plugin, calls: int, concurrency: int) -> float:
    resources = sample_input()

    async def worker(n: int) -> None:
        for _ in range(n):
            await rt.invoke(plugin, "derive", resources)

    started = time.perf_counter()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    return (calls // concurrency * concurrency) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wasm", type=Path)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    wasm = args.wasm.read_bytes()
    plugin = Plugin("bench", "1", wasm)
    print(f"cold compile (median of 5): {cold_compile_ms(wasm):.2f} ms")
    with PluginRuntime() as rt:
        first = time.perf_counter()
        rt.call(plugin, "derive", sample_input())
        print(f"first call incl. compile: {(time.perf_counter() - first) * 1000:.2f} ms")
        rate = sequential_rate(rt, plugin, args.calls)
        print(f"cached, one thread: {rate:.0f} calls/s ({1000 / rate:.3f} ms/call)")
        for concurrency in (1, 4, 16):
            pooled = asyncio.run(pooled_rate(rt, plugin, args.calls, concurrency))
            print(f"cached, async pool, {concurrency} concurrent: {pooled:.0f} calls/s")


if __name__ == "__main__":
    main()
