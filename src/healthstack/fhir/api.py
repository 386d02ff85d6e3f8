"""The FHIR R4 REST API mounted at ``/api/fhir``: routing, HTTP headers and error shape.

Handlers parse HTTP, take one pooled connection, call :mod:`healthstack.fhir.ops` (which
authorizes, works and audits on that connection) and turn the result into a response. Resource
bodies go out as the decrypted bytes exactly as stored: no parse/serialize round trip on reads.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from healthstack import auth
from healthstack.auth import discovery
from healthstack.core.crypto import DecryptionError, Keyring
from healthstack.core.outcome import (
    FHIR_JSON,
    UNEXPECTED,
    FhirError,
    FhirResponse,
    issue,
    outcome_body,
)
from healthstack.errors import HealthstackError
from healthstack.fhir import (
    ai_summary,
    audit_api,
    bulk_api,
    bulk_runner,
    bundle_ops,
    conditional,
    everything,
    history,
    ops,
    patch,
    plugins_api,
    search,
    system_api,
    vitals,
)
from healthstack.fhir.access import Caller, audit_failure, protect
from healthstack.fhir.boundary import ErrorBoundary
from healthstack.fhir.bundle import BundleRunner, parse_bundle, parse_if_match
from healthstack.fhir.capability import capability_statement
from healthstack.fhir.http import (
    bundle_entry,
    database_error,
    form_params,
    history_bundle,
    json_body,
    negotiate,
    not_modified,
    path_id,
    path_type,
    prefer,
    query_params,
    resource_response,
)
from healthstack.fhir.xml_http import XmlLayer
from healthstack.numbers import INT4_MAX, ascii_int
from healthstack.security import audit
from healthstack.service.db import DATABASE_ERRORS
from healthstack.service.routing import IndexedRouter
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.fhir")
Handler = Callable[[Request], Awaitable[Response]]


@functools.lru_cache(maxsize=64)
def request_base(scheme: str, host: bytes | None, server: Any, root_path: str) -> str:
    """``scheme://netloc/root`` as Starlette's ``request.url`` gives it, computed once per
    (scheme, Host, server, mount): building a URL object per request showed in the search
    profile. Bounded: the Host header is the client's to choose."""
    headers = [(b"host", host)] if host is not None else []
    url = URL(scope={"type": "http", "scheme": scheme, "server": server, "path": "/",
                     "query_string": b"", "headers": headers})  # fmt: skip
    return f"{url.scheme}://{url.netloc}{root_path}"


class Api:
    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self._engine: ops.Engine | None = None
        self._metadata: dict[str, bytes] = {}
        try:
            self._engine = ops.Engine.create(Keyring.from_settings(state.settings))
        except HealthstackError:
            # The app still builds (probes work); every FHIR request says what is missing.
            log.error("ENCRYPTION_KEY missing or malformed: the FHIR API answers 503")

    @property
    def engine(self) -> ops.Engine:
        if self._engine is None:
            raise FhirError(503, "exception", "the service has no PHI encryption key configured")
        return self._engine

    # -- plumbing ---------------------------------------------------------------------------------
    def base(self, request: Request) -> str:
        """Absolute base for links: the public host in production, the request's own otherwise."""
        settings = self.state.settings
        if settings.production:
            return f"https://{settings.public_host}/api/fhir"
        scope = request.scope
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        server = scope.get("server")
        server = tuple(server) if server is not None else None
        # ASGI makes "scheme" optional (default "http"), as Starlette's URL reads it.
        return request_base(scope.get("scheme", "http"), host, server, scope.get("root_path", ""))

    def guarded(
        self, handler: Handler, interaction: str | None = None, resource_type: str | None = None
    ) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                negotiate(request)
                return await handler(request)
            except FhirError as error:
                if interaction is not None:
                    error = await audit_failure(
                        request, self.state, interaction, error, resource_type
                    )
                return error.response()
            except RecursionError:
                # Pathologically nested JSON (orjson allows 1024 levels; our walkers recurse).
                return FhirError(400, "structure", "the resource is nested too deeply").response()
            except DecryptionError as error:
                # Key ids only: never content. A missing old key is an operator error.
                log.error("cannot decrypt a stored resource", extra={"error": str(error)})
                return FhirError(
                    500, "exception", "a stored resource could not be decrypted"
                ).response()
            except DATABASE_ERRORS as error:
                # The type only: messages and DETAIL lines can quote row values.
                log.error("database error", extra={"error": type(error).__name__})
                failure = database_error(error)
                if interaction is not None:  # records written in a rolled-back transaction are gone
                    failure = await audit_failure(
                        request, self.state, interaction, failure, resource_type
                    )
                return failure.response()
            except Exception as error:  # a bug: answered and audited, never a bare 500
                log.error("unexpected error in the FHIR API", extra={"error": type(error).__name__})
                failure = FhirError(500, "exception", UNEXPECTED)
                if interaction is not None:
                    failure = await audit_failure(
                        request, self.state, interaction, failure, resource_type
                    )
                return failure.response()

        return endpoint

    def caller(self, request: Request) -> Caller:
        return Caller.of(request, self.state)

    # -- reads --------------------------------------------------------------------------------------
    async def read(self, request: Request) -> Response:
        rtype, rid = path_type(request), path_id(request)
        caller = self.caller(request)
        async with self.state.require_pool().acquire() as conn:
            version = await ops.read(self.engine, caller, conn, rtype, rid)
        if not_modified(request, version):  # audited as the read it is: the client knows it
            return Response(status_code=304, headers={"ETag": version.etag})
        return resource_response(version, 200)

    async def vread(self, request: Request) -> Response:
        rtype, rid, vid = path_type(request), path_id(request), request.path_params["vid"]
        number = ascii_int(vid, INT4_MAX)
        if number is None:
            raise FhirError(404, "not-found", f"{rtype}/{rid}/_history/{vid} not found")
        caller = self.caller(request)
        async with self.state.require_pool().acquire() as conn:
            version = await ops.vread(self.engine, caller, conn, rtype, rid, number)
        return resource_response(version, 200)

    async def history(self, request: Request) -> Response:
        rtype, rid = path_type(request), path_id(request)
        params, caller = query_params(request), self.caller(request)
        async with self.state.require_pool().acquire() as conn:
            versions, before, total = await history.history(
                self.engine, caller, conn, rtype, rid, params
            )
        base = self.base(request)
        links = [{"relation": "self", "url": f"{base}/{rtype}/{rid}/_history"}]
        if before is not None:
            count = len(versions)
            links.append(
                {
                    "relation": "next",
                    "url": f"{base}/{rtype}/{rid}/_history?_count={count}&_before={before}",
                }
            )
        return FhirResponse(history_bundle(base, versions, links, total))

    async def type_history(self, request: Request) -> Response:
        rtype, params, caller = path_type(request), query_params(request), self.caller(request)
        async with self.state.require_pool().acquire() as conn:
            versions, cursor, total = await history.type_history(
                self.engine, caller, conn, rtype, params
            )
        base = self.base(request)
        links = [{"relation": "self", "url": f"{base}/{rtype}/_history"}]
        if cursor is not None:
            links.append({"relation": "next", "url": f"{base}/{rtype}/_history?_cursor={cursor}"})
        return FhirResponse(history_bundle(base, versions, links, total))

    async def search(self, request: Request) -> Response:
        rtype, params, caller = path_type(request), query_params(request), self.caller(request)
        return await self._search(request, rtype, params, caller)

    async def search_post(self, request: Request) -> Response:
        """``POST [type]/_search``: parameters in the body keep PHI out of URLs and logs."""
        rtype, caller = path_type(request), self.caller(request)
        return await self._search(request, rtype, await form_params(request), caller)

    async def validate_only(self, request: Request) -> Response:
        """``POST [type]/$validate``: the validator's answer, nothing stored (200 either way)."""
        rtype, caller = path_type(request), self.caller(request)
        body = await json_body(request)
        if isinstance(body, dict) and body.get("resourceType") == "Parameters":
            body = next((p.get("resource") for p in body.get("parameter", [])
                         if isinstance(p, dict) and p.get("name") == "resource"), None)  # fmt: skip
        issues = await ops.validate_only(self.engine, caller, rtype, body)
        return FhirResponse(outcome_body(issues))

    async def _search(
        self, request: Request, rtype: str, params: list[tuple[str, str]], caller: Caller
    ) -> Response:
        lenient = prefer(request, "handling") == "lenient"
        async with self.state.require_pool().acquire() as conn:
            page = await ops.run_search(self.engine, caller, conn, rtype, params, lenient)
        return FhirResponse(self.searchset(self.base(request), page))

    def searchset(self, base: str, page: ops.Page) -> dict[str, Any]:
        keyring, rtype = self.engine.keyring, page.query.resource_type
        links = [
            {
                "relation": "self",
                "url": f"{base}/{rtype}?_cursor={search.seal(keyring, page.query, page.start)}",
            }
        ]
        if page.after is not None:
            links.append(
                {
                    "relation": "next",
                    "url": f"{base}/{rtype}?_cursor={search.seal(keyring, page.query, page.after)}",
                }
            )
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
        if page.total is not None:
            bundle["total"] = page.total
        shape = page.query.shape if page.query.shape.reduces else None  # per entry: skip if whole
        entries = [bundle_entry(base, v, {"mode": "match"}, shape) for v in page.versions]
        entries += [bundle_entry(base, v, {"mode": "include"}, shape) for v in page.included]
        if page.query.ignored:  # lenient handling: say what was left out (names only)
            note = issue("not-supported", "ignored unknown search parameters: "
                         + ", ".join(page.query.ignored), severity="warning")  # fmt: skip
            entries.append({"resource": outcome_body([note]), "search": {"mode": "outcome"}})
        if entries:
            bundle["entry"] = entries
        return bundle

    async def lastn(self, request: Request) -> Response:
        params, caller = query_params(request), self.caller(request)
        async with self.state.require_pool().acquire() as conn:
            versions = await vitals.lastn(self.engine, caller, conn, params)
        return FhirResponse(bundle_ops.lastn_bundle(self.base(request), versions))

    async def everything(self, request: Request) -> Response:
        pid, caller = path_id(request), self.caller(request)
        wanted = everything.parse(self.engine.keyring, pid, query_params(request))
        async with self.state.require_pool().acquire() as conn:
            result = await everything.everything(self.engine.store, caller, conn, wanted)
        base = self.base(request)
        self_url = f"{base}/Patient/{pid}/$everything"
        return FhirResponse(everything.bundle(base, result, self_url, bundle_entry))

    async def stats(self, request: Request) -> Response:
        params, caller = query_params(request), self.caller(request)
        capabilities = self.state.capabilities
        bucket_fn = capabilities.time_bucket_function if capabilities else "date_bin"
        async with self.state.require_pool().acquire() as conn:
            body = await vitals.stats(self.engine, caller, conn, params, bucket_fn)
        return FhirResponse(body)

    async def metadata(self, request: Request) -> Response:
        base = self.base(request)
        body = self._metadata.get(base)
        if body is None:
            oauth = discovery.oauth_uris_extension(self.state.settings, base)
            body = orjson.dumps(capability_statement(base, oauth))
            if len(self._metadata) < 16:  # a few bases at most (hosts); never unbounded
                self._metadata[base] = body
        return Response(body, media_type=FHIR_JSON)

    # -- writes -------------------------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        rtype, body, caller = path_type(request), await json_body(request), self.caller(request)
        condition = request.headers.get("if-none-exist")
        async with self.state.require_pool().acquire() as conn, conn.transaction():
            status, version = await ops.create(self.engine, caller, conn, rtype, body, condition)
        return resource_response(version, status, prefer(request), self.base(request))

    async def update(self, request: Request) -> Response:
        rtype, rid = path_type(request), path_id(request)
        body, caller = await json_body(request), self.caller(request)
        if_match = parse_if_match(request.headers.get("if-match"))
        async with self.state.require_pool().acquire() as conn, conn.transaction():
            status, version = await ops.update(
                self.engine, caller, conn, rtype, rid, body, if_match
            )
        return resource_response(version, status, prefer(request))

    async def delete(self, request: Request) -> Response:
        rtype, rid, caller = path_type(request), path_id(request), self.caller(request)
        if_match = parse_if_match(request.headers.get("if-match"))
        async with self.state.require_pool().acquire() as conn, conn.transaction():
            version = await ops.delete(self.engine, caller, conn, rtype, rid, if_match)
        headers = {"ETag": version.etag} if version else {}
        return Response(status_code=204, headers=headers)

    async def patch(self, request: Request) -> Response:
        rtype, rid, caller = path_type(request), path_id(request), self.caller(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json-patch+json":
            try:
                change = patch.json_patch(orjson.loads(await request.body()))
            except orjson.JSONDecodeError:
                raise FhirError(400, "structure", "the body is not valid JSON") from None
        else:  # FHIRPath Patch: a Parameters resource (json_body refuses other media types)
            body = await json_body(request)
            if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
                raise FhirError(400, "invalid", "a FHIRPath Patch is a Parameters resource")
            change = patch.from_resource(rtype, body)
        if_match = parse_if_match(request.headers.get("if-match"))
        async with self.state.require_pool().acquire() as conn, conn.transaction():
            status, version = await patch.apply(
                self.engine, caller, conn, rtype, rid, change, if_match
            )
        return resource_response(version, status, prefer(request))

    async def conditional_update(self, request: Request) -> Response:
        rtype, body, caller = path_type(request), await json_body(request), self.caller(request)
        if_match = parse_if_match(request.headers.get("if-match"))
        params = query_params(request)
        async with self.state.require_pool().acquire() as conn, conn.transaction():
            status, version = await conditional.update(
                self.engine, caller, conn, rtype, params, body, if_match
            )
        return resource_response(version, status, prefer(request), self.base(request))

    async def conditional_delete(self, request: Request) -> Response:
        rtype, caller, params = path_type(request), self.caller(request), query_params(request)
        async with self.state.require_pool().acquire() as conn, conn.transaction():
            await conditional.delete(self.engine, caller, conn, rtype, params)
        return Response(status_code=204)

    async def bundle(self, request: Request) -> Response:
        kind, entries = parse_bundle(await json_body(request))
        caller, base = self.caller(request), self.base(request)
        minimal = prefer(request) == "minimal"

        async def page_bundle(page: ops.Page) -> dict[str, Any]:
            return self.searchset(base, page)

        async with self.state.require_pool().acquire() as conn:
            runner = BundleRunner(self.engine, caller, conn, base, minimal, page_bundle)
            if kind == "transaction":
                result = await runner.transaction(entries)
            else:
                result = await runner.batch(entries)
        return FhirResponse(result)

    def routes(self) -> list[Route]:
        g = self.guarded
        return [
            Route("/metadata", g(self.metadata), methods=["GET"]),
            Route("/.well-known/smart-configuration", auth.well_known(self.state, self.base)),
            # WASM plugins: $evaluate and the $plugins admin API (before the generic routes).
            *plugins_api.PluginsApi(self).routes(),
            Route("/", g(self.bundle, "batch"), methods=["POST"]),
            # Bulk Data Access 2.0 $export, its status and file URLs (docs/bulk.md).
            *bulk_api.BulkApi(self).routes(),
            # System-level search and history, instance $meta (before the generic routes).
            *system_api.SystemApi(self).routes(),
            Route("/Observation/$lastn", g(self.lastn, "operation"), methods=["GET"]),
            Route("/Observation/$stats", g(self.stats, "operation"), methods=["GET"]),
            Route(
                "/Patient/{id}/$everything",
                g(self.everything, "operation", "Patient"),
                methods=["GET"],
            ),
            # De-identified AI summaries (docs/ai.md).
            *ai_summary.Summaries(self).routes(),
            # The audit trail as AuditEvent (healthstack.security owns it; auditor scopes only).
            *audit_api.routes(self.state),
            Route("/{rtype}", g(self.search, "search"), methods=["GET"]),
            Route("/{rtype}/_search", g(self.search_post, "search"), methods=["POST"]),
            Route("/{rtype}/$validate", g(self.validate_only, "operation"), methods=["POST"]),
            Route("/{rtype}/_history", g(self.type_history, "history-type"), methods=["GET"]),
            Route("/{rtype}", g(self.create, "create"), methods=["POST"]),
            Route("/{rtype}", g(self.conditional_update, "update"), methods=["PUT"]),
            Route("/{rtype}", g(self.conditional_delete, "delete"), methods=["DELETE"]),
            Route("/{rtype}/{id}", g(self.read, "read"), methods=["GET"]),
            Route("/{rtype}/{id}", g(self.update, "update"), methods=["PUT"]),
            Route("/{rtype}/{id}", g(self.delete, "delete"), methods=["DELETE"]),
            Route("/{rtype}/{id}", g(self.patch, "update"), methods=["PATCH"]),
            Route("/{rtype}/{id}/_history", g(self.history, "history"), methods=["GET"]),
            Route("/{rtype}/{id}/_history/{vid}", g(self.vread, "vread"), methods=["GET"]),
        ]


def build_fhir_app(state: ServiceState) -> ASGIApp:
    api = Api(state)
    state.extras["fhir_api"] = api
    return protect(XmlLayer(ErrorBoundary(IndexedRouter(api.routes()))), state)


async def startup(state: ServiceState) -> None:
    await plugins_api.start(state)
    api = state.extras.get("fhir_api")
    if isinstance(api, Api) and api._engine is not None:  # no PHI key: no exports either
        await bulk_runner.start(state, api._engine.store)


async def shutdown(state: ServiceState) -> None:
    await bulk_runner.stop(state)
    await plugins_api.stop(state)
    flush = state.extras.get("auth_failure_flush")
    if flush is not None:
        try:
            await flush()  # aggregated authentication failures still open: into the trail
        except (audit.AuditWriteError, *DATABASE_ERRORS):
            log.error("could not write aggregated authentication failures at shutdown")
