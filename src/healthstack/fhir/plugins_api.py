"""HTTP side of the WASM plugins: ``Patient/{id}/$evaluate`` and the ``$plugins`` admin API.

``$plugins`` is not a FHIR resource: it answers ``application/json`` and needs scopes naming the
pseudo-type ``Plugin`` (``system/Plugin.cruds`` or ``user/Plugin.cruds``; wildcards do not reach
it): ``s`` to list, ``c`` to register, ``u`` to enable/disable, ``d`` to remove. Every change is
audited (``resource_type=Plugin``) in the transaction that makes it. See docs/plugins.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from healthstack.core.outcome import FhirError, FhirResponse
from healthstack.fhir.access import PLUGIN_HOOKS, Caller
from healthstack.fhir.ops import Engine
from healthstack.fhir.plugin_hooks import PluginHooks
from healthstack.numbers import ascii_int
from healthstack.plugins.cache import CachedPluginSource
from healthstack.plugins.errors import PluginError
from healthstack.plugins.model import Plugin
from healthstack.plugins.registry import PluginRegistry, audit_detail, validate_manifest
from healthstack.service.db import DATABASE_ERRORS
from healthstack.service.state import ServiceState

Handler = Callable[[Request], Awaitable[Response]]


class Host(Protocol):
    """What the plugin routes use of the FHIR API (``api.Api`` provides it), without importing it."""

    state: ServiceState

    @property
    def engine(self) -> Engine: ...

    def caller(self, request: Request) -> Caller: ...

    def guarded(self, handler: Handler, interaction: str | None = None,
                resource_type: str | None = None) -> Handler: ...  # fmt: skip


log = logging.getLogger("healthstack.plugins")
MAX_WASM_BYTES = 16 * 1024 * 1024  # the registry table's CHECK
WASM_TYPES = ("application/wasm", "application/octet-stream")
PLUGIN = "Plugin"
REFRESH_TASK = "plugin_refresh_task"


# -- lifecycle ----------------------------------------------------------------------------------------
async def start(state: ServiceState) -> None:
    """Load the registry into memory and keep it fresh; the wasm runtime starts on first use."""
    source = CachedPluginSource(PluginRegistry(state.require_pool()))
    try:
        await source.refresh()
    except DATABASE_ERRORS as exc:
        # Not loaded: every hook tries again before it decides (writes fail closed meanwhile).
        log.error("plugin registry not loaded", extra={"error": type(exc).__name__})
    state.extras[PLUGIN_HOOKS] = PluginHooks(state, source)
    state.extras[REFRESH_TASK] = asyncio.create_task(source.keep_fresh())


async def stop(state: ServiceState) -> None:
    task: asyncio.Task[None] | None = state.extras.pop(REFRESH_TASK, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    hooks: PluginHooks | None = state.extras.pop(PLUGIN_HOOKS, None)
    if hooks is not None:
        await asyncio.to_thread(hooks.close)  # waits for running calls (at most one deadline)


def hooks_of(state: ServiceState) -> PluginHooks:
    hooks: PluginHooks | None = state.extras.get(PLUGIN_HOOKS)
    if hooks is None:
        raise FhirError(503, "transient", "plugins are not available yet; retry")
    return hooks


# -- request helpers ----------------------------------------------------------------------------------
def _single(request: Request, name: str) -> str:
    values = request.query_params.getlist(name)
    if len(values) != 1 or not values[0]:
        raise FhirError(400, "invalid", f"give the query parameter {name!r} once", expression=name)
    return values[0]


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise FhirError(400, "invalid", f"{name} must be true or false", expression=name)
    return value == "true"


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "0")
    size = ascii_int(declared)
    if size is not None and size > 2 * MAX_WASM_BYTES:
        raise FhirError(413, "too-long", f"a plugin is at most {MAX_WASM_BYTES} bytes")
    body = await request.body()
    if len(body) > 2 * MAX_WASM_BYTES:
        raise FhirError(413, "too-long", f"a plugin is at most {MAX_WASM_BYTES} bytes")
    return body


def parameters_of(body: bytes) -> dict[str, Any]:
    """``$evaluate`` input: an optional Parameters resource of primitive ``value[x]`` parts."""
    if not body.strip():
        return {}
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FhirError(400, "structure", "the body is not valid JSON") from None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "send a Parameters resource (or no body)")
    params: dict[str, Any] = {}
    for i, part in enumerate(resource.get("parameter", [])):
        values = (
            [v for k, v in part.items() if k.startswith("value")] if isinstance(part, dict) else []
        )
        if not isinstance(part, dict) or not isinstance(part.get("name"), str) or len(values) != 1:
            raise FhirError(
                400, "invalid", "each parameter needs a name and one value[x]",
                expression=f"Parameters.parameter[{i}]",
            )  # fmt: skip
        params[part["name"]] = values[0]
    return params


def _manifest_from_json(body: bytes) -> tuple[Plugin, bool]:
    try:
        spec = orjson.loads(body)
        wasm = base64.b64decode(spec["wasm"], validate=True)
        plugin = Plugin(
            spec["name"], spec["version"], wasm, frozenset(spec["triggers"]),
            frozenset(spec["resourceTypes"]), frozenset(spec.get("grants", [])),
            bool(spec.get("enabled", True)),
        )  # fmt: skip
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error) as exc:
        raise FhirError(
            400, "invalid", "expected JSON with name, version, triggers, resourceTypes, "
            f"wasm (base64) and optional grants, enabled, replace ({type(exc).__name__})",
        ) from None  # fmt: skip
    return plugin, bool(spec.get("replace", False))


def _manifest_from_query(request: Request, wasm: bytes) -> tuple[Plugin, bool]:
    q = request.query_params
    plugin = Plugin(
        _single(request, "name"), _single(request, "version"), wasm,
        frozenset(q.getlist("trigger")), frozenset(q.getlist("resource-type")),
        frozenset(q.getlist("grant")), _flag(request, "enabled", True),
    )  # fmt: skip
    return plugin, _flag(request, "replace", False)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _registry_error(exc: Exception) -> FhirError:
    if isinstance(exc, PluginError):
        status = 404 if exc.code == "not-found" else 422
        return FhirError(status, "processing", exc.message, issues=[exc.to_issue()])
    text = str(exc)
    status = 409 if "already exists" in text else 422
    return FhirError(status, "conflict" if status == 409 else "invalid", text)


# -- handlers -----------------------------------------------------------------------------------------
class PluginsApi:
    def __init__(self, api: Host) -> None:
        self.api = api
        self.state = api.state

    async def evaluate(self, request: Request) -> Response:
        if request.path_params["rtype"] != "Patient":
            raise FhirError(404, "not-supported", "$evaluate is defined on Patient only")
        pid, name = request.path_params["id"], _single(request, "plugin")
        params = parameters_of(await request.body())
        caller, hooks = self.api.caller(request), hooks_of(self.state)
        store = self.api.engine.store
        async with self.state.require_pool().acquire() as conn:
            status, body = await hooks.evaluate(caller, conn, store, pid, name, params)
        return FhirResponse(body, status_code=status)

    async def listing(self, request: Request) -> Response:
        caller = self.api.caller(request)
        await caller.authorize(PLUGIN, "search")
        async with self.state.require_pool().acquire() as conn:
            infos = await PluginRegistry(conn).list_all()
            await caller.audit(conn, "search", PLUGIN, detail=f"{len(infos)} plugins")
        return _json({"plugins": [i.to_json() for i in infos]})

    async def register(self, request: Request) -> Response:
        caller = self.api.caller(request)
        await caller.authorize(PLUGIN, "create")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await _body(request)
        if content_type in WASM_TYPES:
            plugin, replace = _manifest_from_query(request, body)
        elif content_type in ("application/json", "application/fhir+json"):
            plugin, replace = _manifest_from_json(body)
        else:
            raise FhirError(415, "not-supported", "send application/wasm or application/json")
        await self._check(plugin)
        await self._change(caller, "create", plugin.name, audit_detail(plugin),
                           lambda r: r.add(plugin, replace=replace))  # fmt: skip
        info = {"name": plugin.name, "version": plugin.version, "sha256": plugin.sha256,
                "enabled": plugin.enabled}  # fmt: skip
        return _json(info, 201)

    async def _check(self, plugin: Plugin) -> None:
        """Compile and check ABI exports and imports against grants before storing anything."""
        try:
            validate_manifest(plugin)
            await asyncio.to_thread(hooks_of(self.state).runtime.inspect, plugin)
        except (ValueError, PluginError) as exc:
            raise _registry_error(exc) from None

    async def toggle(self, request: Request) -> Response:
        name, enabled = request.path_params["name"], request.path_params["action"] == "$enable"
        if request.path_params["action"] not in ("$enable", "$disable"):
            raise FhirError(404, "not-found", "use $enable or $disable")
        caller = self.api.caller(request)
        await caller.authorize(PLUGIN, "update", resource_id=name[:64])
        await self._change(caller, "update", name, f"plugin={name} enabled={enabled}",
                           lambda r: r.set_enabled(name, enabled))  # fmt: skip
        return _json({"name": name, "enabled": enabled})

    async def remove(self, request: Request) -> Response:
        name, caller = request.path_params["name"], self.api.caller(request)
        await caller.authorize(PLUGIN, "delete", resource_id=name[:64])
        await self._change(caller, "delete", name, f"plugin={name} removed",
                           lambda r: r.remove(name))  # fmt: skip
        return Response(status_code=204)

    async def _change(
        self,
        caller: Caller,
        interaction: str,
        name: str,
        detail: str,
        change: Callable[[PluginRegistry], Awaitable[None]],
    ) -> None:
        """Registry change and its audit record in one transaction, then refresh the snapshot."""
        async with self.state.require_pool().acquire() as conn, conn.transaction():
            try:
                await change(PluginRegistry(conn))
            except (ValueError, PluginError) as exc:
                raise _registry_error(exc) from None
            await caller.audit(conn, interaction, PLUGIN, resource_id=name[:64], detail=detail)
        await hooks_of(self.state).source.refresh()

    def evaluate_endpoint(self) -> Callable[[Request], Awaitable[Response]]:
        return self.api.guarded(self.evaluate, "operation")

    def routes(self) -> list[Route]:
        def g(handler: Callable[[Request], Awaitable[Response]], interaction: str) -> Any:
            return self.api.guarded(handler, interaction, PLUGIN)

        return [
            Route("/$plugins", g(self.listing, "search"), methods=["GET"]),
            Route("/$plugins", g(self.register, "create"), methods=["POST"]),
            Route("/$plugins/{name}/{action}", g(self.toggle, "update"), methods=["POST"]),
            Route("/$plugins/{name}", g(self.remove, "delete"), methods=["DELETE"]),
            Route("/{rtype}/{id}/$evaluate", self.evaluate_endpoint(), methods=["POST"]),
        ]
