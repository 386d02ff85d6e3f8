"""``python -m bench.routing``: the FHIR API's route dispatch alone, Starlette's Router against
the indexed router (service/routing.py), in process: microseconds per dispatch, median of 3."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from starlette.routing import Route, Router
from starlette.types import Message

from healthstack.config import Settings
from healthstack.fhir.api import Api
from healthstack.service.routing import IndexedRouter
from healthstack.service.state import ServiceState

PATHS = ("/Patient/123", "/Observation", "/Observation/$lastn")
DISPATCHES = 50_000


async def _nothing(*_: Any) -> None:
    return None


async def _receive() -> Message:
    return {"type": "http.request", "body": b""}


async def _send(_: Message) -> None:
    return None


def routes() -> list[Route]:
    settings = Settings.from_env(
        {"HEALTHSTACK_ENV": "test", "SECRET_KEY_BASE": "b" * 64, "ENCRYPTION_KEY": "ab" * 32}
    )
    found: list[Route] = Api(
        ServiceState(settings=settings, database_url="postgresql://x")
    ).routes()
    for route in found:
        route.handle = _nothing  # type: ignore[method-assign,assignment]  # dispatch only
    return found


async def dispatch_us(router: Router, path: str) -> float:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    started = time.perf_counter()
    for _ in range(DISPATCHES):
        await router.app(dict(scope), _receive, _send)
    return (time.perf_counter() - started) / DISPATCHES * 1e6


def main() -> int:
    table = routes()
    for path in PATHS:
        plain = [asyncio.run(dispatch_us(Router(routes=table), path)) for _ in range(3)]
        indexed = [asyncio.run(dispatch_us(IndexedRouter(table), path)) for _ in range(3)]
        print(f"GET {path:22} Router {statistics.median(plain):5.1f} us "
              f"[{min(plain):.1f}-{max(plain):.1f}]  IndexedRouter {statistics.median(indexed):5.1f} us "
              f"[{min(indexed):.1f}-{max(indexed):.1f}]")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
