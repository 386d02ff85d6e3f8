"""SMART App Launch: discovery, the embedded development authorization server, Backend Services.

This package sits beside ``healthstack.security`` (it never imports ``healthstack.fhir``): the
FHIR layer registers :func:`well_known` under its base, ``healthstack.app`` mounts :func:`routes`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount

from healthstack.auth import discovery
from healthstack.core.outcome import FhirError
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.auth")


def well_known(state: ServiceState, base: Callable[[Request], str]) -> Callable[..., object]:
    """``GET [base]/.well-known/smart-configuration``: public, no PHI, cacheable."""

    async def endpoint(request: Request) -> Response:
        document = discovery.smart_configuration(state.settings, base(request))
        if document is None:
            return FhirError(404, "not-found", "no SMART authorization server is configured "
                             "(SMART_AUTHORIZE_URL, SMART_TOKEN_URL)").response()  # fmt: skip
        return Response(orjson.dumps(document), media_type="application/json",
                        headers={"Cache-Control": "public, max-age=300"})  # fmt: skip

    return endpoint


def routes(state: ServiceState) -> list[BaseRoute]:
    """The embedded authorization server under ``/auth``, outside production only."""
    if not discovery.embedded(state.settings):
        return []
    if not state.settings.secret_key_base:  # its tokens are signed with a key derived from it
        log.error("the embedded SMART authorization server needs SECRET_KEY_BASE")
        return []
    try:
        from healthstack.auth.endpoints import build
    except ImportError:  # the production image has no authlib: `pip install '.[local]'`
        log.error("the embedded SMART authorization server needs authlib (extra 'local')")
        return []
    return [Mount(discovery.AUTH_PREFIX, app=build(state))]
