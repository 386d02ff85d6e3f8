"""The console's routes: the guard every view goes through, login/logout and the trail search.

Every route but the login page answers only an auditor (``session.require_auditor``); every
answer is ``Cache-Control: no-store``; every view, refusal and review is an audit record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from healthstack.console import filters, pages
from healthstack.console.session import (
    COOKIE,
    SESSION_SECONDS,
    Caller,
    ConsoleError,
    authenticate,
    check_csrf,
    csrf_token,
    new_cookie,
    verified,
)  # fmt: skip
from healthstack.security import audit, authz
from healthstack.security.middleware import aggregate_event, client_ip
from healthstack.security.principal import Principal
from healthstack.security.ratelimit import FailureLimiter
from healthstack.service.db import DATABASE_ERRORS, ClientDataError, unavailable
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.console")
MAX_FORM = 16 * 1024
Handler = Callable[[ServiceState, Request], Awaitable[Response]]
TRAIL_SELECT = "SELECT chain_id, seq, content, recorded_at FROM audit_log"
ORDER = " ORDER BY recorded_at DESC, chain_id DESC, seq DESC"
LOGIN_REASONS = {"expired": "Your console session has expired; log in again.",
                 "required": "Log in with an auditor access token."}  # fmt: skip


def guarded(
    state: ServiceState, interaction: str, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Runs ``handler``; a refusal becomes an HTML page (or, for a browser's GET without a
    session, a redirect to the login page) and an audit record. Never a stack trace."""

    async def endpoint(request: Request) -> Response:
        audit.source_ip_var.set(client_ip(request.scope, state.settings.trusted_proxy_hops))
        try:
            return await handler(state, request)
        except ConsoleError as error:
            return await _refused(state, request, interaction, error)
        except audit.AuditWriteError as error:
            return _page(error.status, "The audit trail could not be written; nothing was done.")
        except (asyncpg.DataError, asyncpg.ProgramLimitExceededError, ClientDataError):
            # A value the database (or asyncpg, encoding it) cannot take: the filter's fault.
            return _page(400, "A filter value is out of range.")
        except DATABASE_ERRORS as error:
            # One definition of an outage for the whole service (service.db.unavailable).
            if unavailable(error):
                log.error("database unavailable", extra={"error": type(error).__name__})
                return _page(503, "The database is unavailable; retry shortly.")
            if not isinstance(error, asyncpg.PostgresError):  # asyncpg's own: a bug, audited
                return await _failed(state, request, interaction, error)
            log.error("console database error", extra={"error": type(error).__name__})
            return _page(500, "Internal database error.")
        except Exception as error:  # a bug: a plain 500 page, audited, never a stack trace
            return await _failed(state, request, interaction, error)

    return endpoint


async def _failed(state: ServiceState, request: Request, interaction: str,
                  error: Exception) -> Response:  # fmt: skip
    log.error("console error", extra={"error": type(error).__name__})  # no message: PHI
    failure = ConsoleError(500, "Internal error.", outcome="error")
    return await _refused(state, request, interaction, failure)


def _page(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(pages.error_page(status, message), status_code=status)


def limiter(state: ServiceState) -> FailureLimiter:
    found = state.extras.get("console_failures")
    if not isinstance(found, FailureLimiter):
        found = state.extras["console_failures"] = FailureLimiter()
    return found


async def _refused(state: ServiceState, request: Request, interaction: str,
                   error: ConsoleError) -> Response:  # fmt: skip
    event = audit.event_for(error.principal, interaction, error.outcome,
                            resource_type=authz.AUDIT_TYPE, detail=f"console: {error.message}")  # fmt: skip
    events, retry = [event], None
    if error.outcome == "unauthenticated":
        # A flood of bad tokens adds a bounded number of rows: the first few one by one, the
        # rest counted into one aggregate record per window (security/ratelimit.py).
        now, failures, source = time.time(), limiter(state), audit.source_ip_var.get()
        retry = failures.retry_after(source, now)
        if retry is not None:  # as the API does: refused without more work (docs/audit.md)
            error = ConsoleError(429, "too many failed logins from this address; retry later",
                                 outcome="unauthenticated")  # fmt: skip
            event = dataclasses.replace(event, detail=f"console: {error.message}")
        events = [event] if failures.failed(source, "console", now) else []
        events += [aggregate_event(a) for a in failures.closed(now)]
    try:
        for each in events:
            await audit.record_detached(state, each)
    except audit.AuditWriteError:
        return _page(503, "The audit trail could not be written; nothing was done.")
    if error.status == 401 and request.method == "GET" and interaction != "login":
        reason = "expired" if "expired" in error.message else "required"
        response: Response = RedirectResponse(f"/console/login?reason={reason}", 303)
    elif interaction == "login":
        response = HTMLResponse(pages.login_page(error.message), status_code=error.status)
    else:
        response = _page(error.status, error.message)
    if error.status == 429:
        response.headers["Retry-After"] = str(retry or 60)
    if error.status == 401:
        response.delete_cookie(COOKIE, path="/console", secure=True, httponly=True,
                               samesite="strict")  # fmt: skip
    return response


async def record(conn: asyncpg.Connection, state: ServiceState, principal: Principal,
                 interaction: str, detail: str, **fields: Any) -> None:  # fmt: skip
    await audit.record(conn, state, audit.event_for(
        principal, interaction, "success", resource_type=authz.AUDIT_TYPE,
        detail=f"console: {detail}", **fields))  # fmt: skip


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body (bounded); a field given twice is refused."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise ConsoleError(415, "expected a form post (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise ConsoleError(413, "the form is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ConsoleError(400, "the form is not UTF-8") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields or "\x00" in value:
            raise ConsoleError(400, f"{name[:32]}: invalid form field")
        fields[name] = value
    return fields


def csrf_of(state: ServiceState, caller: Caller) -> str | None:
    return csrf_token(state, caller.sid) if caller.sid else None


async def login_form(state: ServiceState, request: Request) -> Response:
    reason = request.query_params.get("reason", "")
    return HTMLResponse(pages.login_page(LOGIN_REASONS.get(reason)))


async def login(state: ServiceState, request: Request) -> Response:
    token = (await form(request)).get("token", "").strip()
    if not token:
        raise ConsoleError(401, "enter an access token")
    principal = await verified(state, token)
    async with state.require_pool().acquire() as conn:
        await record(conn, state, principal, "login", "session started")
    response = RedirectResponse("/console/", 303)
    response.set_cookie(COOKIE, new_cookie(state, token), max_age=SESSION_SECONDS,
                        path="/console", secure=True, httponly=True, samesite="strict")  # fmt: skip
    return response


async def logout(state: ServiceState, request: Request) -> Response:
    caller = await authenticate(state, request)
    check_csrf(state, caller, (await form(request)).get("csrf"))
    async with state.require_pool().acquire() as conn:
        await record(conn, state, caller.principal, "logout", "session ended")
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(COOKIE, path="/console", secure=True, httponly=True, samesite="strict")
    return response


async def trail(state: ServiceState, request: Request) -> Response:
    caller = await authenticate(state, request)
    found = filters.parse(request.query_params)
    sql = TRAIL_SELECT + (" WHERE " + " AND ".join(found.where) if found.where else "")
    async with state.require_pool().acquire() as conn:
        rows = await conn.fetch(f"{sql}{ORDER} LIMIT {filters.PAGE + 1}", *found.args)
        await record(conn, state, caller.principal, "search", "trail search",
                     query=audit.redact_query(authz.AUDIT_TYPE, _grouped(found.values)))  # fmt: skip
    more = rows[filters.PAGE - 1] if len(rows) > filters.PAGE else None
    body = _filter_form(found.values) + pages.table(
        f"Audit records, newest first ({min(len(rows), filters.PAGE)} shown)",
        ("Time (UTC)", "Who", "Interaction", "Resource", "Outcome", "Break-glass", "Detail"),
        (_trail_cells(r) for r in rows[: filters.PAGE]),
    )
    if more is not None:
        values = {k: v for k, v in found.values.items() if k != "cursor"}
        values["cursor"] = filters.cursor_of(more["recorded_at"], more["chain_id"], more["seq"])
        body += f'<p><a href="/console/?{escape(urlencode(values))}">Next page</a></p>'
    return HTMLResponse(pages.layout("Audit trail", body, csrf=csrf_of(state, caller)))


def _grouped(values: dict[str, str]) -> dict[str, list[str]]:
    return {k: [v] for k, v in values.items() if k != "cursor"}


def _filter_form(values: dict[str, str]) -> str:
    v = values.get
    return (
        '<form method="get" action="/console/" aria-label="Filter the trail"><p>'
        + pages.field("who", "Who (user or client id)", v("who", ""))
        + pages.field("patient", "Patient id", v("patient", ""))
        + pages.field("type", "Resource type", v("type", ""))
        + pages.field("interaction", "Interaction", v("interaction", ""))
        + pages.select("outcome", "Outcome", v("outcome", ""), filters.OUTCOMES)
        + "</p><p>"
        + pages.field("from", "From (UTC)", v("from", ""))
        + pages.field("to", "To (UTC)", v("to", ""))
        + pages.select("break_glass", "Break-glass", v("break_glass", ""), ("yes", "no"))
        + ' <button type="submit">Search</button></p></form>'
    )


def _trail_cells(row: asyncpg.Record) -> list[str]:
    doc = orjson.loads(row["content"])
    who = escape(doc.get("subject") or "anonymous")
    if doc.get("client_id"):
        who += f"<br><small>client {escape(doc['client_id'])}</small>"
    resource = "/".join(str(doc[k]) for k in ("resource_type", "resource_id") if doc.get(k))
    flag = '<span class="flag">yes</span>' if doc.get("break_glass_reason") else ""
    when = row["recorded_at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return [escape(when), who, escape(doc["interaction"]), escape(resource),
            escape(doc["outcome"]), flag, escape(doc.get("detail") or "")]  # fmt: skip
