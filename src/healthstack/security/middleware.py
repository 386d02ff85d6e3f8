"""Authentication for the FHIR API: one pure-ASGI layer in front of every handler.

On success the :class:`Principal` is in ``scope["state"]["principal"]`` (``principal_of``) and the
user id is in the log context. On failure: 401 OperationOutcome with ``WWW-Authenticate``, a
``healthstack_auth_failures`` count and an audit record. Break-glass requests are checked here
(permission + ``X-Break-Glass-Reason``); what they unlock is decided in ``authz``.
``/metadata`` stays public: the CapabilityStatement holds no PHI and SMART clients read it before
they have a token.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthstack.core.outcome import FhirError, issue, outcome_body
from healthstack.security import audit, authz
from healthstack.security.audit_event import AuditEvent
from healthstack.security.principal import Principal
from healthstack.security.ratelimit import Aggregate, FailureLimiter
from healthstack.security.verifier import AuthError, TokenVerifier
from healthstack.service.logs import user_id_var
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.auth")
PUBLIC_PATHS = frozenset({"/metadata", "/.well-known/smart-configuration"})
BREAK_GLASS_HEADER = b"x-break-glass-reason"
CHALLENGE = b'Bearer realm="healthstack", error="invalid_token"'
# RFC 6750 section 3.1: no error code when the request carried no credentials at all.
CHALLENGE_NO_TOKEN = b'Bearer realm="healthstack"'


def route_path(scope: Scope) -> str:
    """The path inside the mount (Starlette keeps the full path and appends to root_path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def client_ip(scope: Scope, trusted_hops: int) -> str | None:
    """The caller's address: the ASGI peer, or with N trusted proxies the N-th X-Forwarded-For
    entry from the right (entries further left are client-supplied and cannot be trusted)."""
    peer = scope.get("client")
    address = peer[0] if peer else None
    if trusted_hops <= 0:
        return address
    forwarded = b",".join(v for k, v in scope["headers"] if k == b"x-forwarded-for")
    hops = [h.strip() for h in forwarded.decode("latin-1").split(",") if h.strip()]
    return hops[-trusted_hops] if len(hops) >= trusted_hops else address


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    kind, _, token = value.partition(" ")
    return token.strip() if kind.lower() == "bearer" and token.strip() else None


_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def _resource_type(path: str) -> str | None:
    first = path.strip("/").split("/", 1)[0]
    return first if _TYPE_NAME.match(first) else None


def _fallback_event(scope: Scope, principal: Principal, path: str, status: int) -> AuditEvent:
    parts = path.strip("/").split("/")
    rtype = _resource_type(path)
    rid = parts[1] if len(parts) > 1 and parts[1][:1] not in ("$", "_") else None
    outcome = ("success" if status < 400 else "denied" if status in (401, 403)
               else "failed" if status < 500 else "error")  # fmt: skip
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), True):
        params.setdefault(name, []).append(value)
    return audit.event_for(
        principal, _interaction(scope["method"], rtype, rid, parts), outcome,
        resource_type=rtype, resource_id=rid, query=audit.redact_query(rtype, params),
        detail=f"HTTP {status}",
    )  # fmt: skip


def _interaction(method: str, rtype: str | None, rid: str | None, parts: list[str]) -> str:
    if rtype is None:
        return "batch" if method == "POST" else "operation"
    if any(p.startswith("$") for p in parts):
        return "operation"
    if "_history" in parts:
        return "vread" if len(parts) > 3 else "history"
    if method == "GET":
        return "read" if rid else "search"
    return {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, "operation")


async def _send_outcome(send: Send, status: int, code: str, diagnostics: str,
                        extra_headers: list[tuple[bytes, bytes]]) -> None:  # fmt: skip
    body = orjson.dumps(outcome_body([issue(code, diagnostics)]))
    headers = [(b"content-type", b"application/fhir+json"),
               (b"content-length", str(len(body)).encode()), *extra_headers]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AuthMiddleware:
    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state
        self.verifier = TokenVerifier(state.settings)
        self.trusted_hops = state.settings.trusted_proxy_hops
        self.limiter = FailureLimiter()
        state.extras["token_verifier"] = self.verifier
        state.extras["auth_failure_flush"] = self.flush
        if state.settings.production and self.verifier.jwks is None:
            log.error("OIDC_ISSUER/OIDC_AUDIENCE/OIDC_JWKS_URL unset: every API request is refused")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        audit.source_ip_var.set(client_ip(scope, self.trusted_hops))
        if path in PUBLIC_PATHS and scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        principal = await self._authenticate(scope, send, path)
        if principal is None:
            return
        user_id_var.set(principal.subject)
        try:
            principal = self._break_glass(scope, principal, path)
        except FhirError as denial:
            await self._deny(send, principal, path, denial)
            return
        scope["state"] = {**scope.get("state", {}), "principal": principal}
        await self.app(scope, receive, self._audited(scope, send, principal, path))

    def _audited(self, scope: Scope, send: Send, principal: Principal, path: str) -> Send:
        """Safety net for completeness: a response whose handler wrote no audit record (a
        validation error, a 404 path, a forgotten case) gets one before its first byte is sent;
        if that write fails the response becomes a 500 (no unaudited PHI access)."""
        box = audit.Written()
        audit.written_var.set(box)
        failed = False

        async def wrapped(message: Message) -> None:
            nonlocal failed
            if failed:
                return
            if message["type"] == "http.response.start" and box.count == 0:
                try:
                    await audit.record_detached(self.state, _fallback_event(
                        scope, principal, path, message["status"]))  # fmt: skip
                except audit.AuditWriteError as error:
                    failed = True
                    # 503 when the database is down (transient), 500 otherwise: the error knows.
                    code = error.issues[0]["code"]
                    await _send_outcome(send, error.status, code, str(error), [])
                    return
            await send(message)

        return wrapped

    async def _authenticate(self, scope: Scope, send: Send, path: str) -> Principal | None:
        token = _bearer(scope)
        source, now = audit.source_ip_var.get(), time.time()
        retry = self.limiter.retry_after(source, now)
        if retry is not None and (token is None or not self.verifier.known(token)):
            await self._refuse(send, source, now, path, retry)
            return None
        try:
            if token is None:
                raise AuthError("missing", "a bearer token is required")
            return await self.verifier.verify(token)
        except AuthError as failure:
            await self._unauthenticated(send, failure, path, source, now)
            return None

    async def _unauthenticated(self, send: Send, failure: AuthError, path: str,
                               source: str | None, now: float) -> None:  # fmt: skip
        self.state.metrics.auth_failures.labels(failure.reason).inc()
        event = audit.event_for(
            None, "login", "unauthenticated", resource_type=_resource_type(path),
            detail=failure.reason,
        )  # fmt: skip
        individually = self.limiter.failed(source, failure.reason, now)
        status, code, text = 401, "login", failure.message
        try:
            await self._audit_failures(event if individually else None, now)
        except audit.AuditWriteError as error:  # never silent: the answer says so (503/500)
            status, code, text = error.status, error.issues[0]["code"], str(error)
        challenge = CHALLENGE_NO_TOKEN if failure.reason == "missing" else CHALLENGE
        await _send_outcome(send, status, code, text, [(b"www-authenticate", challenge)])

    async def _refuse(self, send: Send, source: str | None, now: float, path: str,
                      retry: int) -> None:  # fmt: skip
        self.state.metrics.auth_failures.labels("rate_limited").inc()
        event = audit.event_for(None, "login", "unauthenticated",
                                resource_type=_resource_type(path), detail="rate_limited")  # fmt: skip
        individually = self.limiter.failed(source, "rate_limited", now)
        status, code = 429, "throttled"
        text = "too many failed authentication attempts from this address; retry later"
        try:
            await self._audit_failures(event if individually else None, now)
        except audit.AuditWriteError as error:
            status, code, text = error.status, error.issues[0]["code"], str(error)
        await _send_outcome(send, status, code, text, [(b"retry-after", str(retry).encode())])

    async def _audit_failures(self, event: AuditEvent | None, now: float) -> None:
        """This failure's own record (when not aggregated) and any aggregates now due."""
        events = [event] if event is not None else []
        for aggregate in self.limiter.closed(now):
            events.append(aggregate_event(aggregate))
        for each in events:
            await audit.record_detached(self.state, each)

    async def flush(self) -> None:
        """Write every open aggregate (at shutdown): counted failures are never lost."""
        for aggregate in self.limiter.drain():
            await audit.record_detached(self.state, aggregate_event(aggregate))

    def _break_glass(self, scope: Scope, principal: Principal, path: str) -> Principal:
        reason = _header(scope, BREAK_GLASS_HEADER)
        if reason is None:
            return principal
        if not authz.has_break_glass_permission(principal):
            raise FhirError(403, "forbidden", "break-glass access is not permitted for this token")
        reason = authz.clean_reason(reason)
        problem = authz.reason_problem(reason)
        if problem is not None:
            raise FhirError(403, "forbidden", "break-glass access needs a written reason a "
                            f"reviewer can act on: X-Break-Glass-Reason {problem}")  # fmt: skip
        # The reason may name a patient: it goes to the audit trail, never to the logs.
        log.warning("break-glass access", extra={"resource_type": _resource_type(path),
                                                 "subject": principal.subject})  # fmt: skip
        return dataclasses.replace(principal, break_glass_reason=reason)

    async def _deny(self, send: Send, principal: Principal, path: str, denial: FhirError) -> None:
        self.state.metrics.auth_failures.labels("break_glass").inc()
        event = audit.event_for(principal, "break-glass", "denied",
                                resource_type=_resource_type(path), detail=str(denial))  # fmt: skip
        try:
            await audit.record_detached(self.state, event)
        except audit.AuditWriteError as failure:
            denial = failure
        await _send_outcome(send, denial.status, denial.issues[0]["code"], str(denial), [])


def aggregate_event(aggregate: Aggregate) -> AuditEvent:
    event = audit.event_for(None, "login", "unauthenticated", detail=aggregate.detail())
    return dataclasses.replace(event, source_ip=aggregate.source)


def principal_of(request: Request) -> Principal:
    """The authenticated caller; fails closed (401) for a route reached without the middleware."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise FhirError(401, "login", "authentication required",
                        headers={"WWW-Authenticate": CHALLENGE.decode()})  # fmt: skip
    return principal
