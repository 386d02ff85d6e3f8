"""``ServiceApp``: RequestMiddleware outside Starlette's whole stack (app.py).

A request under the direct mount runs no Starlette layer (no error middleware, no exception
middleware, no route table); any other request runs them all, and an unhandled exception there is
a 500 that carries the request id and is counted as a 500.
"""

from __future__ import annotations

import asyncio
import inspect

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from healthstack.app import ServiceApp
from healthstack.config import Settings
from healthstack.service.state import ServiceState


async def _layers(request: Request) -> Response:
    files = {frame.filename.replace("\\", "/") for frame in inspect.stack()}
    starlette = sorted(
        {f.split("site-packages/")[1] for f in files if "site-packages/starlette/" in f}
    )
    return PlainTextResponse("\n".join(starlette))


async def _boom(request: Request) -> Response:
    raise RuntimeError("a bug outside the FHIR app")


def _app() -> tuple[ServiceApp, ServiceState]:
    settings = Settings.from_env({"HEALTHSTACK_ENV": "test", "SECRET_KEY_BASE": "b" * 64})
    state = ServiceState(settings=settings, database_url="postgresql://x")
    mount = Mount("/api/fhir", routes=[Route("/{rtype}", _layers)])
    app = ServiceApp(state, direct=[mount],
                     routes=[Route("/layers", _layers), Route("/boom", _boom), mount])  # fmt: skip
    return app, state


def test_the_direct_mount_runs_no_starlette_layer_and_other_paths_run_them_all() -> None:
    app, _ = _app()

    async def layers(path: str) -> set[str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return set((await client.get(path)).text.splitlines())

    direct, routed = asyncio.run(layers("/api/fhir/Patient")), asyncio.run(layers("/layers"))
    # The mount's own app is a Router here (the FHIR app has its own layers); nothing around it.
    assert not {f for f in direct if f.startswith("starlette/middleware/")}
    assert (
        "starlette/applications.py" not in direct or "starlette/middleware/errors.py" not in direct
    )
    assert {"starlette/middleware/errors.py", "starlette/middleware/exceptions.py"} <= routed


def test_an_unhandled_exception_outside_the_fhir_app_is_a_counted_500_with_a_request_id() -> None:
    app, state = _app()

    async def boom() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom")

    response = asyncio.run(boom())
    assert response.status_code == 500
    assert response.headers.get("x-request-id")
    assert "a bug" not in response.text
    scraped = [s for family in state.metrics.requests.collect() for s in family.samples]
    assert any(s.name == "http_requests_total" and s.labels.get("status") == "500"
               and s.labels.get("route") == "/boom" for s in scraped)  # fmt: skip
    assert state.metrics.registry.get_sample_value("http_requests_in_flight") == 0
