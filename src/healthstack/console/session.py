"""Who is using the console: a bearer token, or a short-lived cookie session holding one.

The cookie is ``base64url(json{token, sid, exp}) . hmac``: signed with a key derived from the PHI
keyring (every replica has it, so a session works on any pod), limited to ``SESSION_SECONDS``
whatever the token's own lifetime, and the token inside is verified again on every request (a
revoked or expired token ends the session). ``HttpOnly; Secure; SameSite=Strict; Path=/console``:
scripts cannot read it and no other site's page can send it. Form posts also carry a CSRF token
derived from the session id; a bearer-token caller needs none (a browser never adds the header).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from starlette.requests import Request

from healthstack.core.outcome import FhirError
from healthstack.security import audit, authz
from healthstack.security.principal import Principal
from healthstack.security.verifier import AuthError, TokenVerifier
from healthstack.service.state import ServiceState

COOKIE = "hs_console"
SESSION_SECONDS = 900
MAX_TOKEN = 8192


class ConsoleError(Exception):
    """A refusal shown as an HTML page with ``status``; ``message`` never contains PHI."""

    def __init__(self, status: int, message: str, *, outcome: str | None = None,
                 principal: Principal | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = message
        self.outcome = outcome or {401: "unauthenticated", 403: "denied"}.get(status, "failed")
        self.principal = principal  # who was refused, when known (audited as them)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    sid: str | None  # the cookie session's id; None for a bearer-token caller (no CSRF needed)


def _key(state: ServiceState) -> bytes:
    keyring = audit.reason_keyring(state)
    if keyring is None:
        raise ConsoleError(503, "the console needs the PHI key (ENCRYPTION_KEY)", outcome="error")
    return keyring.active.digest("console-session", "v1")


def _mac(state: ServiceState, text: str) -> str:
    digest = hmac.new(_key(state), text.encode(), "sha256").digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_cookie(state: ServiceState, token: str, now: float | None = None) -> str:
    payload = {"t": token, "sid": secrets.token_urlsafe(16),
               "exp": int((time.time() if now is None else now) + SESSION_SECONDS)}  # fmt: skip
    body = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
    return f"{body}.{_mac(state, body)}"


def _open_cookie(state: ServiceState, value: str) -> tuple[str, str]:
    body, _, mac = value.partition(".")
    if not mac or len(value) > MAX_TOKEN * 2 or not hmac.compare_digest(mac, _mac(state, body)):
        raise ConsoleError(401, "the console session is not valid; log in again")
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        token, sid, exp = str(payload["t"]), str(payload["sid"]), int(payload["exp"])
    except (ValueError, KeyError, TypeError):
        raise ConsoleError(401, "the console session is not valid; log in again") from None
    if exp <= time.time():
        raise ConsoleError(401, "the console session has expired; log in again")
    return token, sid


def csrf_token(state: ServiceState, sid: str) -> str:
    return _mac(state, f"csrf:{sid}")


def check_csrf(state: ServiceState, caller: Caller, submitted: str | None) -> None:
    if caller.sid is None:
        return
    if not submitted or not hmac.compare_digest(submitted, csrf_token(state, caller.sid)):
        raise ConsoleError(403, "the form could not be verified (CSRF); reload the page and retry")


def _verifier(state: ServiceState) -> TokenVerifier:
    verifier = state.extras.get("token_verifier")
    if not isinstance(verifier, TokenVerifier):
        verifier = state.extras["token_verifier"] = TokenVerifier(state.settings)
    return verifier


def bearer(request: Request) -> str | None:
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if kind.lower() == "bearer" and token.strip() else None


async def verified(state: ServiceState, token: str) -> Principal:
    """The token's principal, if it may use the console (auditor scope, no patient context)."""
    if len(token) > MAX_TOKEN:
        raise ConsoleError(401, "the token was refused")
    try:
        principal = await _verifier(state).verify(token)
    except AuthError as failure:
        raise ConsoleError(401, f"the token was refused: {failure.message}") from None
    try:
        require_auditor(principal)
    except ConsoleError as refusal:
        refusal.principal = principal
        raise
    return principal


def require_auditor(principal: Principal) -> None:
    # The same authorization as the AuditEvent API: a scope naming AuditEvent, read and search.
    try:
        authz.require(principal, authz.AUDIT_TYPE, "search")
        authz.require(principal, authz.AUDIT_TYPE, "read")
    except FhirError:
        raise ConsoleError(403, "the console is for auditors: the token's scopes do not permit "
                           "read and search on AuditEvent") from None  # fmt: skip
    if principal.patient is not None:
        raise ConsoleError(403, "the console is for auditors, not patient-context tokens")


async def authenticate(state: ServiceState, request: Request) -> Caller:
    token = bearer(request)
    if token is not None:
        return Caller(await verified(state, token), None)
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        raise ConsoleError(401, "log in with an auditor token")
    token, sid = _open_cookie(state, cookie)
    return Caller(await verified(state, token), sid)
