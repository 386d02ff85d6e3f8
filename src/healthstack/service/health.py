"""Probes and metrics endpoints: cheap, unauthenticated, outside audit and access logs."""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from healthstack.service.db import readiness
from healthstack.service.state import ServiceState


def _json(status: int, body: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


async def liveness(request: Request) -> Response:
    # Answering at all proves the event loop runs; the database is deliberately not consulted,
    # so a database outage makes pods unready, never restarts them all.
    return _json(200, {"status": "alive"})


async def ready(request: Request) -> Response:
    state = _state(request)
    if state.draining:
        return _json(503, {"status": "unready", "reason": "draining"})
    reason = await readiness(state.require_pool())
    state.metrics.db_ready.set(0 if reason and reason.startswith("database") else 1)
    if reason:
        return _json(503, {"status": "unready", "reason": reason})
    return _json(200, {"status": "ready"})


async def metrics(request: Request) -> Response:
    registry = _state(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
