"""A Starlette router that tries only the routes a path can match, in their declared order.

Starlette's ``Router`` runs every route's regular expression in turn until one matches. The FHIR
API declares 37 routes with its most frequent one (``GET /{rtype}/{id}``) 32nd, so a read paid
31 failed matches: dispatch 27 us against 11 us here (``python -m bench.routing``), about 3 % of
a read's service CPU (docs/performance.md). This router indexes routes by their segments. A
route whose every segment is a literal or a whole ``{param}`` (default ``str`` convertor: one non-empty segment)
can only match a path with as many segments and the same literals, so only those are tried;
any other route (a ``Mount``, a ``{path:path}`` or mixed segment) is tried for every path.
Order is kept, so the first full match and the 405 partial match are the ones ``Router`` finds.
A path no candidate matches goes to ``Router.app`` itself (trailing-slash redirect, 404). On a
full match an ``async def`` endpoint is called without Starlette's per-request wrapper
(``lean_endpoint``).
"""

from __future__ import annotations

import inspect
import operator
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

# The very function Route.matches uses: the index must see the path exactly as the routes do.
from starlette._utils import get_route_path, is_async_callable
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

_PARAM = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")
# (position, literal) pairs a path's segments must equal (empty: any path of the route's length).
Literals = tuple[tuple[int, str], ...]


def segments(path: str) -> list[str]:
    return path.split("/")


def route_literals(route: BaseRoute) -> tuple[int, Literals] | None:
    """(segment count, literal segments) when the route's path is made only of literals and
    whole ``str`` parameters; None when the route has to be tried for every path."""
    if not isinstance(route, Route) or any(
        c.regex != "[^/]+" for c in route.param_convertors.values()
    ):
        return None
    parts = segments(route.path)
    literals = []
    for position, part in enumerate(parts):
        if _PARAM.match(part):
            continue
        if "{" in part or "}" in part:
            return None
        literals.append((position, part))
    return len(parts), tuple(literals)


Endpoint = Callable[[Request], Awaitable[Response]]


class Candidate:
    """A route to try for paths of its segment count; its literals are compared in one C call."""

    __slots__ = ("_expected", "_pick", "endpoint", "literals", "route")

    def __init__(self, route: BaseRoute, literals: Literals, endpoint: Endpoint | None) -> None:
        self.route = route
        self.literals = literals
        # The endpoint to call directly on a full match (see ``lean_endpoint``), else None.
        self.endpoint = endpoint
        positions = [position for position, _ in literals]
        expected = tuple(literal for _, literal in literals)
        # itemgetter of one position gives the item itself, of several a tuple.
        self._pick = operator.itemgetter(*positions) if positions else None
        self._expected: object = expected[0] if len(expected) == 1 else expected

    def fits(self, parts: list[str]) -> bool:
        return self._pick is None or self._pick(parts) == self._expected


def lean_endpoint(route: BaseRoute) -> Endpoint | None:
    """An ``async def`` endpoint Starlette would wrap in ``request_response``, called directly.

    That wrapper adds a layer per request which maps exceptions to the application's handlers;
    the FHIR app answers every exception itself (its handlers, then ``ErrorBoundary``), so on a
    full match the endpoint is awaited here and its response sent, as the wrapper would do.
    """
    if not isinstance(route, Route) or not _plain_wrapper(route.app):
        return None  # an ASGI application, or a route with middleware of its own: kept whole
    endpoint = route.endpoint
    if not (inspect.isfunction(endpoint) or inspect.ismethod(endpoint)):
        return None
    return endpoint if is_async_callable(endpoint) else None


def _plain_wrapper(app: object) -> bool:
    """``app`` is the bare wrapper ``request_response`` made, not middleware around it (a
    route's ``middleware=`` replaces ``route.app`` with the outermost layer)."""
    return (getattr(app, "__module__", None) == "starlette.routing"
            and getattr(app, "__qualname__", None) == "request_response.<locals>.app")  # fmt: skip


class IndexedRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], **options: Any) -> None:
        super().__init__(routes=list(routes), **options)
        self._index = build_index(self.routes)

    def candidates(self, segment_count: int) -> list[Candidate]:
        return self._index.get(segment_count, self._index[-1])

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        parts = segments(get_route_path(scope))
        partial: tuple[BaseRoute, Scope] | None = None
        for candidate in self.candidates(len(parts)):
            if not candidate.fits(parts):
                continue
            route = candidate.route
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.setdefault("router", self)
                scope["route"] = route
                scope.update(child_scope)
                if candidate.endpoint is None:
                    await route.handle(scope, receive, send)
                    return
                response = await candidate.endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial = route, child_scope
        if partial is not None:  # the method is not allowed: Route.handle answers 405
            route, child_scope = partial
            scope.setdefault("router", self)
            scope["route"] = route
            scope.update(child_scope)
            await route.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)  # nothing can match: redirect or 404 as Router


def build_index(routes: Sequence[BaseRoute]) -> dict[int, list[Candidate]]:
    """Per segment count, the routes to try in declared order; key -1: routes for any count."""
    shaped = [(route, route_literals(route)) for route in routes]
    counts = {shape[0] for _, shape in shaped if shape is not None}
    index: dict[int, list[Candidate]] = {}
    for count in [*counts, -1]:
        index[count] = [
            Candidate(route, () if shape is None else shape[1], lean_endpoint(route))
            for route, shape in shaped
            if shape is None or shape[0] == count
        ]
    return index
