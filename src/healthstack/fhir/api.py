"""The FHIR API application mounted at ``/api/fhir`` (placeholder until the API lands)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp

from healthstack.fhir.outcome import FhirResponse
from healthstack.service.state import ServiceState


async def metadata(request: Request) -> Response:
    return FhirResponse(
        {"resourceType": "CapabilityStatement", "status": "draft", "fhirVersion": "4.0.1",
         "kind": "instance", "format": ["json"], "rest": []}
    )  # fmt: skip


def build_fhir_app(state: ServiceState) -> ASGIApp:
    return Router(routes=[Route("/metadata", metadata)])


async def startup(state: ServiceState) -> None:
    return None


async def shutdown(state: ServiceState) -> None:
    return None
