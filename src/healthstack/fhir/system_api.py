"""System-level interactions: ``GET /?_type=...`` (search across types), ``GET /_history`` and the
instance ``$meta`` operation.

A search across types is one type search per named type (each authorized, narrowed, confined and
audited exactly as ``GET /{type}`` is), answered in one Bundle; its ``next`` link is a sealed
cursor holding each unfinished type's own cursor. ``_count`` applies per type. ``$meta`` is a read
(authorized and audited as one) that answers only the resource's ``meta``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from healthstack.core.outcome import FhirError, FhirResponse, issue, outcome_body
from healthstack.fhir import cursors, history, ops, search
from healthstack.fhir import query as query_model
from healthstack.fhir.access import Caller
from healthstack.fhir.http import (
    bundle_entry,
    history_bundle,
    path_id,
    path_type,
    prefer,
    query_params,
)
from healthstack.service.state import ServiceState

Handler = Callable[[Request], Awaitable[Response]]
MAX_TYPES = 20  # one search per type: a bound on the work one request starts
SYSTEM = "Resource"  # the resource type failures of system-level interactions are audited under


class Host(Protocol):
    """What these routes use of the FHIR API (``api.Api`` provides it), without importing it."""

    state: ServiceState

    @property
    def engine(self) -> ops.Engine: ...

    def caller(self, request: Request) -> Caller: ...

    def base(self, request: Request) -> str: ...

    def guarded(self, handler: Handler, interaction: str | None = None,
                resource_type: str | None = None) -> Handler: ...  # fmt: skip


async def search_types(
    eng: ops.Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    params: list[tuple[str, str]],
    lenient: bool,
) -> tuple[list[ops.Page], str | None, str]:
    """Each type's page, the cursor of the next pages (None at the end) and of this one."""
    if len(params) == 1 and params[0][0] == "_cursor":
        plan = _open(eng, params[0][1])
    else:
        types: list[str] = []
        rest = []
        for name, value in params:
            if name == "_type":
                types += [t.strip() for t in value.split(",") if t.strip()]
            elif name == "_cursor":
                raise query_model.bad("_cursor", "cannot be combined with other parameters")
            else:
                rest.append((name, value))
        plan = [(t, rest) for t in dict.fromkeys(types)]
    if not plan:
        raise query_model.bad("_type", "a search of the base names the types to search")
    if len(plan) > MAX_TYPES:
        raise FhirError(422, "too-costly", f"_type: at most {MAX_TYPES} types per search")
    for rtype, _ in plan:
        if rtype not in ops.TYPES:
            raise query_model.bad("_type", "names a type this server does not store")
    pages = [await ops.run_search(eng, caller, conn, t, p, lenient) for t, p in plan]
    after = [[p.query.resource_type, search.seal(eng.keyring, p.query, p.after)]
             for p in pages if p.after is not None]  # fmt: skip
    start = [[p.query.resource_type, search.seal(eng.keyring, p.query, p.start)] for p in pages]
    following = cursors.seal(eng.keyring, "search-system", "", after) if after else None
    return pages, following, cursors.seal(eng.keyring, "search-system", "", start)


def _open(eng: ops.Engine, token: str) -> list[tuple[str, list[tuple[str, str]]]]:
    state = cursors.open_(eng.keyring, "search-system", "", token)
    try:
        return [(str(rtype), [("_cursor", str(cursor))]) for rtype, cursor in state]
    except (ValueError, TypeError):
        raise cursors.bad("invalid; repeat the request") from None


def searchset(base: str, pages: list[ops.Page], following: str | None,
              this: str) -> dict[str, Any]:  # fmt: skip
    links = [{"relation": "self", "url": f"{base}/?_cursor={this}"}]
    if following is not None:
        links.append({"relation": "next", "url": f"{base}/?_cursor={following}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if all(p.total is not None for p in pages):
        bundle["total"] = sum(p.total or 0 for p in pages)
    entries = [bundle_entry(base, v, {"mode": "match"}, p.query.shape)
               for p in pages for v in p.versions]  # fmt: skip
    entries += [bundle_entry(base, v, {"mode": "include"}, p.query.shape)
                for p in pages for v in p.included]  # fmt: skip
    ignored = sorted({name for p in pages for name in p.query.ignored})
    if ignored:  # lenient handling: say what was left out (names only)
        note = issue("not-supported", "ignored unknown search parameters: " + ", ".join(ignored),
                     severity="warning")  # fmt: skip
        entries.append({"resource": outcome_body([note]), "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle


class SystemApi:
    def __init__(self, api: Host) -> None:
        self.api = api

    async def search(self, request: Request) -> Response:
        params, caller = query_params(request), self.api.caller(request)
        lenient = prefer(request, "handling") == "lenient"
        async with self.api.state.require_pool().acquire() as conn:
            pages, following, this = await search_types(
                self.api.engine, caller, conn, params, lenient
            )
        return FhirResponse(searchset(self.api.base(request), pages, following, this))

    async def history(self, request: Request) -> Response:
        params, caller = query_params(request), self.api.caller(request)
        async with self.api.state.require_pool().acquire() as conn:
            versions, cursor, total = await history.system_history(
                self.api.engine, caller, conn, params
            )
        base = self.api.base(request)
        links = [{"relation": "self", "url": f"{base}/_history"}]
        if cursor is not None:
            links.append({"relation": "next", "url": f"{base}/_history?_cursor={cursor}"})
        return FhirResponse(history_bundle(base, versions, links, total))

    async def meta(self, request: Request) -> Response:
        """``GET|POST [type]/[id]/$meta``: the current version's meta, as Parameters."""
        rtype, rid, caller = path_type(request), path_id(request), self.api.caller(request)
        async with self.api.state.require_pool().acquire() as conn:
            version = await ops.read(self.api.engine, caller, conn, rtype, rid)
        meta = orjson.loads(version.body or b"{}").get("meta", {})
        parameters = {"resourceType": "Parameters",
                      "parameter": [{"name": "return", "valueMeta": meta}]}  # fmt: skip
        return FhirResponse(parameters)

    def routes(self) -> list[Route]:
        g = self.api.guarded
        return [
            Route("/", g(self.search, "search", SYSTEM), methods=["GET"]),
            Route("/_history", g(self.history, "history-system", SYSTEM), methods=["GET"]),
            Route("/{rtype}/{id}/$meta", g(self.meta, "read"), methods=["GET", "POST"]),
        ]
