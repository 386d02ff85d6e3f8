"""The ASGI application: probes, metrics and the FHIR API, with startup and shutdown of the pool.

The composition root: it sits above every layer it assembles (service, fhir, console, auth), so
those layers never import each other upward (tests/test_layers.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from healthstack import auth
from healthstack.config import Settings
from healthstack.console.app import build_console_app
from healthstack.core.outcome import http_error_response
from healthstack.fhir.api import build_fhir_app
from healthstack.fhir.http import BaseAlias
from healthstack.service import health
from healthstack.service.db import create_pool, pool_stats, probe_capabilities
from healthstack.service.middleware import RequestMiddleware
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.service")


def build_app(settings: Settings, database_url: str) -> Starlette:
    state = ServiceState(settings=settings, database_url=database_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.pool = await create_pool(
            database_url,
            settings.pool_size,
            settings.database_pooler,
            statement_timeout=settings.database_statement_timeout,
            connect_timeout=settings.database_connect_timeout,
        )
        state.metrics.watch_pool(lambda: pool_stats(state.pool) if state.pool else None)
        with contextlib.suppress(OSError, Exception):
            # Best effort: with the database down the service still starts, unready.
            async with state.pool.acquire() as conn:
                state.capabilities = await probe_capabilities(conn)
        await _start_features(state)
        log.info(
            "service started",
            extra={"timescaledb": bool(state.capabilities and state.capabilities.timescaledb)},
        )
        try:
            yield
        finally:
            await _stop_features(state)
            await state.pool.close()

    fhir = build_fhir_app(state)
    fhir_mount = Mount("/api/fhir", app=fhir)
    console = build_console_app(state)
    app = ServiceApp(
        state,
        direct=[fhir_mount],
        routes=[
            Route("/health", health.liveness),
            Route("/health/ready", health.ready),
            Route("/metrics", health.metrics),
            # FHIR clients POST Bundles to (and search across types at) the base itself: no 307.
            Route("/api/fhir", BaseAlias(fhir), methods=["GET", "POST"]),
            fhir_mount,
            # A typed or bookmarked /console answers as /console/ does (login or the trail).
            Route("/console", BaseAlias(console, "/console"), methods=["GET"]),
            Mount("/console", app=console),  # auditors only (docs/console.md)
            *auth.routes(state),  # SMART: the embedded development authorization server
        ],
        lifespan=lifespan,
        # Unknown paths and wrong methods outside the FHIR app answer OperationOutcome too.
        exception_handlers={HTTPException: _http_error},
    )
    app.state.service = state
    return app


class ServiceApp(Starlette):
    """Starlette with :class:`RequestMiddleware` outside its whole stack, the error layer too: a
    request under a ``direct`` mount (the FHIR API, whose ErrorBoundary answers every exception
    itself) passes no Starlette layer at all; others pass them all, and an unhandled exception's
    500 now carries the request id and is counted as the 500 it is."""

    def __init__(self, state: ServiceState, direct: Sequence[Mount], **options: Any) -> None:
        super().__init__(**options)
        self._front = (state, tuple(direct))

    def build_middleware_stack(self) -> ASGIApp:
        state, direct = self._front
        return RequestMiddleware(super().build_middleware_stack(), state=state, direct=direct)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return http_error_response(error.status_code, error.headers)


async def _start_features(state: ServiceState) -> None:
    from healthstack.fhir.api import startup

    await startup(state)


async def _stop_features(state: ServiceState) -> None:
    from healthstack.fhir.api import shutdown

    await shutdown(state)
