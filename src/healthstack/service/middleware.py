"""One pure-ASGI middleware for every request: id, trace context, metrics, access log, drain, size.

Kept as a single layer on purpose: each extra Starlette middleware costs a coroutine hop per request.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry import trace
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthstack.core.outcome import issue, outcome_body
from healthstack.service import tracing
from healthstack.service.logs import request_id_var, trace_id_var, user_id_var
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.access")
# Probes and scrapes are frequent and carry no PHI: no access log, no request metrics, no spans.
QUIET_PATHS = frozenset({"/health", "/health/ready", "/metrics"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyTooLarge(Exception):
    pass


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    if isinstance(route, Mount):
        # Answered inside the mount before its router ran (e.g. a 401 from the auth layer).
        return f"{route.path}/*"
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    return f"{scope.get('root_path', '')}{path}"


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
    # 128 random bits in hex, as uuid4().hex but without building and checking a UUID object.
    return os.urandom(16).hex()


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    body = orjson.dumps(
        outcome_body([issue("too-costly", f"request body exceeds the {limit}-byte limit")])
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/fhir+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestMiddleware:
    """``direct``: mounts (the FHIR API) reached without Starlette's exception layer, route table
    and Mount, about 50 of a read's 700 Python calls (docs/performance.md). Such a mount's app
    must answer every exception itself: the FHIR app's ErrorBoundary does."""

    def __init__(self, app: ASGIApp, state: ServiceState, direct: Sequence[Mount] = ()) -> None:
        self.app = app
        self.direct = tuple(direct)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.state = state
        self.metrics = state.metrics
        self.max_body = state.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, self._drain_aware(send))
            return
        await self._observed(scope, receive, send)

    def _drain_aware(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add_headers(message, [])
            await send(message)

        return wrapped

    def _add_headers(self, start: Message, extra: list[tuple[bytes, bytes]]) -> None:
        """``extra`` on a response start, and ``Connection: close`` while draining: keep-alive
        connections close after this response, so their clients reconnect to another pod."""
        if self.state.draining:
            extra = [*extra, (b"connection", b"close")]
        if extra:
            start["headers"] = [*start.get("headers", []), *extra]

    async def _observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope)
        request_id_var.set(request_id)
        user_id_var.set(None)
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            # The request id and the drain in one wrapper (not _drain_aware's too): a layer less.
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                self._add_headers(message, [(b"x-request-id", request_id.encode())])
            await send(message)

        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _send_413(send_wrapper, self.max_body)
            self._record(scope, 413, started)
            return
        self.metrics.in_flight.inc()
        try:
            await self._traced(scope, self._limited(receive), send_wrapper)
        except BodyTooLarge:
            if not response_started:
                await _send_413(send_wrapper, self.max_body)
        finally:
            self.metrics.in_flight.dec()
            self._record(scope, status, started)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not tracing.exporting:
            # No exporter: spans would be discarded, so only carry the caller's trace id
            # (a span per request cost ~4% of a read in the profile).
            trace_id_var.set(None)
            for name, value in scope["headers"]:
                if name == b"traceparent":
                    trace_id_var.set(tracing.incoming_trace_id(value.decode("latin-1")))
            await self._target(scope)(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate")
        }
        context = tracing.propagator.extract(carrier) if carrier else None
        # The span name is refined to the route template once routing has run (never a raw path).
        # No exception text in spans: messages can quote PHI (values, dates); the type is enough.
        with tracing.tracer.start_as_current_span(
            scope["method"],
            context=context,
            kind=trace.SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=True,
        ) as span:
            span_context = span.get_span_context()
            if span_context.is_valid:
                trace_id_var.set(format(span_context.trace_id, "032x"))
            await self._target(scope)(scope, receive, send)
            if span.is_recording():
                span.update_name(f"{scope['method']} {route_template(scope)}")

    def _target(self, scope: Scope) -> ASGIApp:
        """The application to call: a direct mount's own app when the path is under it (with the
        scope Starlette's Router would give it), else the Starlette app behind this layer."""
        for mount in self.direct:
            match, child_scope = mount.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                scope["route"] = mount
                return mount.app
        return self.app

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
            return message

        return wrapped

    def _series(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter's and duration histogram's children for these labels, kept: a
        ``labels()`` call takes a lock and builds its key each time. The label values are few
        (parser-checked methods, route templates, status codes), as they are in the registry."""
        key = (method, route, status)
        series = self._children.get(key)
        if series is None:
            series = self._children[key] = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.duration.labels(method, route),
            )
        return series

    def _record(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        method = scope["method"]
        route = route_template(scope)
        counter, histogram = self._series(method, route, status)
        counter.inc()
        histogram.observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            extra: dict[str, Any] = {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            log.info("request", extra=extra)
