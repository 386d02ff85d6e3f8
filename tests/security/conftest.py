"""Security test helpers: tokens signed like the service expects, asyncpg on the app role."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import asyncpg
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_SECRET_KEY_BASE

from healthstack.config import Settings
from healthstack.security import tokens
from healthstack.service.state import ServiceState

T = TypeVar("T")


def mint(subject: str, scopes: str, *, patient: str | None = None, ttl: int = 600,
         **extra: Any) -> str:  # fmt: skip
    return tokens.mint_dev_token(TEST_SECRET_KEY_BASE, subject, scopes, patient=patient,
                                 ttl_seconds=ttl, extra=extra or None)  # fmt: skip


def make_state(database_url: str, **settings: Any) -> ServiceState:
    base = Settings(
        env="test", secret_key_base=TEST_SECRET_KEY_BASE, encryption_key=TEST_ENCRYPTION_KEY
    )
    return ServiceState(settings=base.with_overrides(**settings), database_url=database_url)


def run_with_pool(url: str, body: Callable[[asyncpg.Pool], Awaitable[T]], size: int = 4) -> T:
    async def main() -> T:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=size)
        try:
            return await body(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


@contextlib.contextmanager
def json_server(document: Callable[[], Any]) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``document()`` as JSON (a JWKS endpoint);
    yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(document()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    finally:
        server.shutdown()
        server.server_close()
