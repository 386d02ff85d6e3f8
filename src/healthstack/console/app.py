"""The console as a Starlette sub-application, mounted by the service at ``/console``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthstack.console import pages, review, status, views
from healthstack.security import audit
from healthstack.security.middleware import aggregate_event
from healthstack.service.state import ServiceState

# On every console answer, refusals and redirects included: nothing cached, framed or sniffed.
HEADERS = [
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", pages.CSP.encode()),
]


class NoStore:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_console_app(state: ServiceState) -> ASGIApp:
    def route(path: str, interaction: str, handler: views.Handler, method: str = "GET") -> Route:
        return Route(path, views.guarded(state, interaction, handler), methods=[method])

    app = Starlette(
        routes=[
            route("/", "search", views.trail),
            route("/login", "login", views.login_form),
            route("/login", "login", views.login, "POST"),
            route("/logout", "logout", views.logout, "POST"),
            route("/break-glass", "read", review.queue),
            route("/break-glass/{id}/review", "review", review.review, "POST"),
            route("/disclosures", "search", review.disclosures),
            route("/status", "read", status.status),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    _flush_at_shutdown(state)
    return NoStore(app)


def _flush_at_shutdown(state: ServiceState) -> None:
    """Counted login failures still in an open window are written when the service stops,
    after the API's own (the service calls ``auth_failure_flush`` at shutdown)."""
    previous = state.extras.get("auth_failure_flush")

    async def flush() -> None:
        if previous is not None:
            await previous()
        for aggregate in views.limiter(state).drain():
            await audit.record_detached(state, aggregate_event(aggregate))

    state.extras["auth_failure_flush"] = flush


async def _http_error(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    text = {404: "No such console page.", 405: "Method not allowed."}.get(status, "Error.")
    return HTMLResponse(pages.error_page(status, text), status_code=status)
