"""IndexedRouter answers every request exactly as Starlette's Router over the same routes.

Held over the FHIR API's real route table (paths and methods), inside a Mount as in the service,
for every path built from the routes' own segments and a set of awkward ones, and every method.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator

import pytest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthstack.config import Settings
from healthstack.fhir.api import Api
from healthstack.service.routing import IndexedRouter, build_index, lean_endpoint, route_literals
from healthstack.service.state import ServiceState

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")
VALUES = ("Patient", "123", "$meta", "$export", "$lastn", "_history", "_search", "bulk-status",
          "", "%24meta")  # fmt: skip
ODD_PATHS = ("/", "", "//", "/Patient/", "/Patient//", "/Patient/1/", "/Patient/1/_history/",
             "/Patient/1/_history/2/3", "/a/b/c/d/e/f", "/$plugins/", "/$export/")  # fmt: skip


def fhir_routes() -> list[BaseRoute]:
    settings = Settings.from_env(
        {"HEALTHSTACK_ENV": "test", "SECRET_KEY_BASE": "b" * 64, "ENCRYPTION_KEY": "ab" * 32}
    )
    return list(Api(ServiceState(settings=settings, database_url="postgresql://x")).routes())


def recorders(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The same paths and methods, each answering with its position (which route won). The
    endpoints are ``async def`` as the API's are, so IndexedRouter calls them directly."""

    def answer(position: int) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return PlainTextResponse(f"{position} {sorted(request.path_params.items())}")

        return endpoint

    copies: list[BaseRoute] = []
    for position, route in enumerate(routes):
        assert isinstance(route, Route), route
        methods = sorted(route.methods - {"HEAD"}) if route.methods else None
        copies.append(Route(route.path, answer(position), methods=methods))
    return copies


def paths(routes: list[BaseRoute]) -> Iterator[str]:
    yield from ODD_PATHS
    for route in routes:
        assert isinstance(route, Route)
        parts = route.path.split("/")
        slots = [i for i, part in enumerate(parts) if part.startswith("{")]
        for values in itertools.product(VALUES, repeat=len(slots)):
            filled = list(parts)
            for slot, value in zip(slots, values, strict=True):
                filled[slot] = value
            path = "/".join(filled)
            yield from (path, path + "/", path + "/x", path.rsplit("/", 1)[0] or "/")


Outcome = tuple[int, bytes, bytes | None]


async def outcome(app: ASGIApp, method: str, path: str) -> Outcome:
    """Status, body and Location of one request, straight through the ASGI interface."""
    scope = {"type": "http", "method": method, "path": f"/api/fhir{path}", "root_path": "",
             "raw_path": f"/api/fhir{path}".encode(), "query_string": b"", "headers": [],
             "scheme": "http", "server": ("test", 80), "http_version": "1.1"}  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    headers = dict(sent[0]["headers"])
    return (
        sent[0]["status"],
        b"".join(m.get("body", b"") for m in sent[1:]),
        headers.get(b"location"),
    )


@pytest.fixture(scope="module")
def routers() -> tuple[ASGIApp, ASGIApp, list[str]]:
    routes = recorders(fhir_routes())
    plain = Router(routes=[Mount("/api/fhir", app=Router(routes=routes))])
    indexed = Router(routes=[Mount("/api/fhir", app=IndexedRouter(routes))])
    return plain, indexed, sorted(set(paths(routes)))


@pytest.mark.parametrize("method", METHODS)
def test_every_path_and_method_reaches_the_route_the_plain_router_reaches(
    routers: tuple[ASGIApp, ASGIApp, list[str]], method: str
) -> None:
    plain, indexed, all_paths = routers
    assert len(all_paths) > 1000  # the product above, not a handful

    async def differences() -> list[tuple[str, Outcome, Outcome]]:
        found = []
        for path in all_paths:
            expected = await outcome(plain, method, path)
            got = await outcome(indexed, method, path)
            if expected != got:
                found.append((path, expected, got))
        return found

    assert asyncio.run(differences()) == []


def test_the_fhir_routes_are_all_indexed_so_a_read_tries_few_of_them() -> None:
    routes = fhir_routes()
    assert all(route_literals(route) is not None for route in routes)
    parts = ["", "Patient", "123"]
    tried = [c.route for c in IndexedRouter(routes).candidates(len(parts)) if c.fits(parts)]
    # Router ran a regular expression for every route up to GET /{rtype}/{id} (~30 of them).
    assert len(tried) <= 6 < len(routes)


def test_routes_it_cannot_index_are_tried_for_every_path() -> None:
    def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    mounted = Mount("/static", app=PlainTextResponse("static"))
    wide = Route("/files/{rest:path}", hello)
    mixed = Route("/x-{name}", hello)
    assert [route_literals(r) for r in (mounted, wide, mixed)] == [None, None, None]
    plain = Route("/a/{b}", hello)
    index = build_index([mounted, wide, mixed, plain])
    assert [c.route for c in index[-1]] == [mounted, wide, mixed]
    assert [c.route for c in index[3]] == [mounted, wide, mixed, plain]


def test_every_fhir_endpoint_is_called_directly_and_others_through_starlette() -> None:
    """The API's endpoints skip ``request_response``; a plain function or an ASGI app does not."""
    assert all(lean_endpoint(route) is not None for route in fhir_routes())

    def plain(request: Request) -> Response:
        return PlainTextResponse("sync")

    async def asynchronous(request: Request) -> Response:
        return PlainTextResponse("async")

    assert lean_endpoint(Route("/a", plain)) is None
    assert lean_endpoint(Route("/a", PlainTextResponse("asgi"))) is None
    assert lean_endpoint(Mount("/m", app=PlainTextResponse("m"))) is None
    assert lean_endpoint(Route("/a", asynchronous)) is asynchronous


def test_a_route_with_middleware_of_its_own_keeps_it() -> None:
    """A route's ``middleware=`` wraps Starlette's wrapper: such a route is not called directly,
    so its middleware still runs (the lean path would skip it)."""

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("x")

    def tagged(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            async def tagging(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message["headers"], (b"location", b"tagged")]
                await send(message)

            await app(scope, receive, tagging)

        return middleware

    route = Route("/a", endpoint, middleware=[Middleware(tagged)])
    assert lean_endpoint(route) is None
    router = Router(routes=[Mount("/api/fhir", app=IndexedRouter([route]))])
    assert asyncio.run(outcome(router, "GET", "/a")) == (200, b"x", b"tagged")
