"""An open-loop load generator: requests leave on a fixed schedule, whatever the server does.

wrk (closed loop) sends a connection's next request only when the previous answer arrived, so when
the server stalls, wrk stalls with it and the stall is missing from its percentiles (coordinated
omission); with 32 connections on a saturated CPU it mostly measures queueing. Here request ``i``
is due at ``start + i / rate``; its latency is counted from that due time, so waiting for a free
connection or a slow server is in the figure. Run as its own process (``python -m bench.openloop
SPEC.json``) so its CPU is not the service's; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import uvloop


@dataclass
class LoadSpec:
    host: str
    port: int
    paths: list[str]
    headers: dict[str, str]
    rate: float  # requests per second
    seconds: float
    max_connections: int = 64


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


class _Connections:
    """Keep-alive connections: reuse an idle one, else open another up to the limit, else wait."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.opened = 0

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.spec.max_connections:
            self.opened += 1
            return await asyncio.open_connection(self.spec.host, self.spec.port)
        return await self.idle.get()

    def give_back(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.put_nowait(conn)

    def lost(self) -> None:
        self.opened -= 1


def _request(spec: LoadSpec, path: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {spec.host}:{spec.port}"]
    lines += [f"{name}: {value}" for name, value in spec.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _response_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    # The service answers with Content-Length (no chunked reads); a body is read to keep the
    # connection aligned for the next request.
    await reader.readexactly(length)
    return status


async def _one(
    pool: _Connections, payload: bytes, due: float, latencies: list[float], errors: list[int]
) -> None:
    try:
        reader, writer = await pool.take()
    except OSError:
        errors.append(1)
        return
    try:
        writer.write(payload)
        status = await _response_status(reader)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        errors.append(1)
        pool.lost()
        writer.close()
        return
    latencies.append(time.perf_counter() - due)
    if not 200 <= status < 300:
        errors.append(1)
    pool.give_back((reader, writer))


async def run(spec: LoadSpec) -> OpenLoopResult:
    pool = _Connections(spec)
    payloads = [_request(spec, path) for path in spec.paths]
    latencies: list[float] = []
    errors: list[int] = []
    tasks = []
    total = int(spec.rate * spec.seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / spec.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        payload = payloads[i % len(payloads)]
        tasks.append(asyncio.create_task(_one(pool, payload, due, latencies, errors)))
    await asyncio.gather(*tasks)
    return summarize(latencies, spec.rate, total, len(errors))


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list, in milliseconds."""
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank] * 1000


def summarize(latencies: list[float], rate: float, sent: int, errors: int) -> OpenLoopResult:
    ordered = sorted(latencies)
    return OpenLoopResult(
        rate=rate,
        sent=sent,
        errors=errors,
        p50_ms=round(percentile(ordered, 0.50), 3),
        p99_ms=round(percentile(ordered, 0.99), 3),
        p999_ms=round(percentile(ordered, 0.999), 3),
        max_ms=round(ordered[-1] * 1000, 3) if ordered else float("nan"),
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.openloop SPEC.json", file=sys.stderr)
        return 2
    spec = LoadSpec(**json.loads(Path(argv[0]).read_text()))
    print(json.dumps(asdict(uvloop.run(run(spec)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
