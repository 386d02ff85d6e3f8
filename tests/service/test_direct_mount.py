"""A direct mount answers as the Starlette route table would, without its layers.

``RequestMiddleware(direct=[mount])`` hands a request under the FHIR mount straight to the mount's
app (docs/performance.md). Held here: for paths in, at and around the mount, the app behind it
sees the same path, root path and path parameters, the client gets the same answer, and the
request metrics carry the same route labels as through Starlette's Router and Mount.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from healthstack.config import Settings
from healthstack.service.middleware import RequestMiddleware
from healthstack.service.routing import IndexedRouter
from healthstack.service.state import ServiceState

PATHS = ("/api/fhir/Patient/1", "/api/fhir/", "/api/fhir", "/api/fhirx", "/api/fhir/Patient",
         "/api/fhir/nothing/here/at/all", "/api/fhir//Patient", "/health", "/api/fhir/%2E%2E/x",
         "/elsewhere", "/api/fhir/Patient/1/_history/2")  # fmt: skip


async def _seen(request: Request) -> Response:
    scope = request.scope
    return JSONResponse({"path": scope["path"], "root_path": scope.get("root_path", ""),
                         "params": scope.get("path_params", {})})  # fmt: skip


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok")


class Boundary:
    """Stands for the FHIR app's ErrorBoundary: a mount reached directly answers its own misses."""

    def __init__(self, app: IndexedRouter) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except HTTPException as error:
            await PlainTextResponse(f"miss {error.status_code}", error.status_code)(
                scope, receive, send
            )


def _service(direct: bool) -> tuple[Starlette, ServiceState]:
    settings = Settings.from_env({"HEALTHSTACK_ENV": "test", "SECRET_KEY_BASE": "b" * 64})
    state = ServiceState(settings=settings, database_url="postgresql://x")
    inner = Boundary(IndexedRouter([Route("/{rtype}/{id}", _seen), Route("/{rtype}", _seen),
                                    Route("/", _seen, methods=["POST"]),
                                    Route("/{rtype}/{id}/_history/{vid}", _seen)]))  # fmt: skip
    mount = Mount("/api/fhir", app=inner)
    app = Starlette(routes=[Route("/health", _health), Route("/api/fhir", _seen), mount])
    app.add_middleware(RequestMiddleware, state=state, direct=[mount] if direct else [])
    return app, state


def _labels(state: ServiceState) -> list[tuple[str, ...]]:
    samples = [s for metric in state.metrics.requests.collect() for s in metric.samples]
    return sorted(tuple(sorted(s.labels.items())) for s in samples if s.name.endswith("_total"))


async def _answers(app: Starlette, method: str) -> list[tuple[int, str]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [
            (response.status_code, response.text)
            for path in PATHS
            for response in [await client.request(method, path)]
        ]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_a_direct_mount_answers_and_is_labelled_as_through_the_route_table(method: str) -> None:
    (routed, routed_state), (direct, direct_state) = _service(False), _service(True)
    assert asyncio.run(_answers(direct, method)) == asyncio.run(_answers(routed, method))
    assert _labels(direct_state) == _labels(routed_state)
    assert _labels(direct_state)  # the requests were counted


@pytest.mark.parametrize("draining", [False, True])
def test_while_draining_every_response_closes_its_connection(draining: bool) -> None:
    """After SIGTERM each response says ``Connection: close`` (the client reconnects to another
    pod), on the quiet paths and the observed ones alike; observed ones keep their request id."""
    app, state = _service(direct=True)
    state.draining = draining

    async def headers() -> dict[str, tuple[str | None, str | None]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = {path: await client.get(path) for path in ("/health", "/api/fhir/P/1")}
        return {path: (r.headers.get("connection"), r.headers.get("x-request-id"))
                for path, r in answers.items()}  # fmt: skip

    seen = asyncio.run(headers())
    close = "close" if draining else None
    assert seen["/health"] == (close, None)
    assert seen["/api/fhir/P/1"][0] == close
    assert seen["/api/fhir/P/1"][1]
