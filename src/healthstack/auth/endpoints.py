"""HTTP for the embedded authorization server: ``/auth/authorize``, ``/auth/token``,
``/auth/jwks`` and ``/auth/launch`` (an EHR launch, as the EHR would start it).

Every decision is audited: consent given or refused (``consent``, with the patient picked), each
token issued or refused (``token``, with the OAuth error code). Never a token, code or verifier in
the trail or the logs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt as pyjwt
import orjson
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError, OAuth2Error
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from healthstack.auth import backend, discovery
from healthstack.auth.clients import load_clients
from healthstack.auth.pages import consent_page
from healthstack.auth.server import Launch, SmartServer, User, issuer_var
from healthstack.auth.server import Request as OAuthRequest
from healthstack.core.crypto import Keyring, aad
from healthstack.security import audit
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.auth")
FORM_FIELDS = ("ticket", "patient", "fhir_user", "decision")
GRANT_TYPES = frozenset({"authorization_code", "refresh_token", "client_credentials"})
LAUNCH_TTL = 300
PICKER_SIZE = 50
PATIENTS_SQL = """
SELECT id, version, key_id, body FROM fhir_resource
WHERE resource_type = 'Patient' AND NOT deleted ORDER BY last_updated DESC LIMIT $1
"""
PATIENT_EXISTS_SQL = """
SELECT 1 FROM fhir_resource WHERE resource_type = 'Patient' AND id = $1 AND NOT deleted
"""


class Endpoints:
    def __init__(self, state: ServiceState) -> None:
        settings = state.settings
        assert settings.secret_key_base  # auth.routes mounts this server only with one
        self.state = state
        self.assertion = backend.KeyAssertion()
        self.server = SmartServer(load_clients(settings.smart_clients_file),
                                  settings.secret_key_base, settings.token_max_lifetime,
                                  self.assertion)  # fmt: skip
        self.ticket_key = hashlib.sha256(
            b"smart-consent/" + settings.secret_key_base.encode()
        ).digest()

    # -- helpers ---------------------------------------------------------------------------------
    def origin(self, request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    def oauth_request(self, request: Request, pairs: list[tuple[str, str]]) -> OAuthRequest:
        issuer_var.set(self.origin(request) + discovery.AUTH_PREFIX)
        return OAuthRequest(request.method, str(request.url), dict(request.headers), pairs)

    def ticket(self, pairs: list[tuple[str, str]]) -> str:
        return hmac.new(self.ticket_key, urlencode(sorted(pairs)).encode(), "sha256").hexdigest()

    def respond(self, result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
        status, body, headers = result
        headers = [*headers, ("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        if status in (301, 302, 303, 307):
            location = dict(headers)["Location"]
            return RedirectResponse(
                location, status_code=302, headers={"Cache-Control": "no-store"}
            )
        return JSONResponse(body, status_code=status, headers=dict(headers))

    def known(self, oauth: OAuthRequest) -> str | None:
        """The request's client_id when it is a registered one (never client-typed text)."""
        client_id = oauth.payload.client_id
        return client_id if self.server.query_client(str(client_id or "")) else None

    async def audit(self, interaction: str, outcome: str, client_id: str | None,
                    subject: str | None = None, **fields: Any) -> None:  # fmt: skip
        event = audit.event_for(None, interaction, outcome, client_id=client_id, **fields)
        event = dataclasses.replace(event, subject=subject)
        await audit.record_detached(self.state, event)

    # -- authorize --------------------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.decide(request)
        pairs = list(request.query_params.multi_items())
        oauth = self.oauth_request(request, pairs)
        try:
            grant = self.server.get_consent_grant(oauth)
            self.check_aud(request, oauth, grant)
            launch = self.launch_of(oauth)
        except OAuth2Error as error:
            await self.audit("consent", "denied", self.known(oauth), detail=error.error)
            return self.respond(self.server.handle_error_response(oauth, error))
        wants_picker = launch is None and "launch/patient" in oauth.scope.split()
        patients = await self.patients(grant.client.client_id) if wants_picker else None
        hidden = [*pairs, ("ticket", self.ticket(pairs))]
        page = consent_page(grant.client.client_id, oauth.scope, hidden, patients)
        return HTMLResponse(page, headers={"Cache-Control": "no-store",
                                           "X-Frame-Options": "DENY"})  # fmt: skip

    def check_aud(self, request: Request, oauth: OAuthRequest, grant: Any) -> None:
        """SMART: ``aud`` names the FHIR server the token is for; it must be this one."""
        expected = self.origin(request) + discovery.FHIR_PREFIX
        if oauth.payload.data.get("aud", "").rstrip("/") != expected:
            raise InvalidRequestError(f"aud must be this FHIR server's base URL ({expected})",
                                      redirect_uri=grant.redirect_uri)  # fmt: skip

    def launch_of(self, oauth: OAuthRequest) -> Launch | None:
        """The EHR launch the request names, if any; an unknown, expired or another client's
        ``launch`` is refused (invalid_request), never silently ignored."""
        value = oauth.payload.data.get("launch")
        if value is None:
            return None
        found = self.server.launches.get(value)
        if found is None or found.expires_at < time.time():
            found = None
        if found is None or found.client_id != oauth.payload.client_id:
            raise InvalidRequestError("the launch is unknown or has expired",
                                      redirect_uri=oauth.payload.redirect_uri)  # fmt: skip
        return found

    async def patients(self, client_id: str) -> list[tuple[str, str]]:
        keyring = Keyring.from_settings(self.state.settings)
        async with self.state.require_pool().acquire() as conn:
            rows = await conn.fetch(PATIENTS_SQL, PICKER_SIZE)
            event = audit.event_for(None, "search", "success", resource_type="Patient",
                                    client_id=client_id, detail="smart patient picker")  # fmt: skip
            await audit.record(conn, self.state, event)
        out = []
        for row in rows:
            body = keyring.decrypt(row["key_id"], row["body"], aad("Patient", row["id"],
                                                                   row["version"]))  # fmt: skip
            out.append((row["id"], label_of(orjson.loads(body))))
        return out

    async def decide(self, request: Request) -> Response:
        all_pairs = await form_pairs(request)
        pairs = [(k, v) for k, v in all_pairs if k not in FORM_FIELDS]
        fields = {k: v for k, v in all_pairs if k in FORM_FIELDS}
        if not hmac.compare_digest(fields.get("ticket", ""), self.ticket(pairs)):
            return JSONResponse({"error": "invalid_request", "error_description":
                                 "the consent form was not issued by this server"}, 400)  # fmt: skip
        oauth = self.oauth_request(request, pairs)
        try:
            grant = self.server.get_consent_grant(oauth)
            user = await self.user_for(oauth, fields)
        except OAuth2Error as error:
            await self.audit("consent", "denied", self.known(oauth), detail=error.error)
            return self.respond(self.server.handle_error_response(oauth, error))
        approved = fields.get("decision") == "approve"
        # Only registered scopes reach the trail: the requested text is whatever the client typed.
        await self.audit("consent", "success" if approved else "denied", grant.client.client_id,
                         subject=user.sub, resource_type="Patient" if user.patient else None,
                         resource_id=user.patient,
                         detail=f"scope: {grant.client.get_allowed_scope(oauth.scope)}"[:500])  # fmt: skip
        result = self.server.create_authorization_response(
            oauth, grant_user=user if approved else None, grant=grant
        )
        return self.respond(result)

    async def user_for(self, oauth: OAuthRequest, fields: dict[str, str]) -> User:
        fhir_user = fields.get("fhir_user", "")
        kind, _, ident = fhir_user.partition("/")
        if kind not in ("Practitioner", "Patient", "RelatedPerson", "Person") or not (
            ident and len(ident) <= 64 and ident.replace("-", "").replace(".", "").isalnum()
        ):
            raise InvalidRequestError("fhir_user must be a reference like Practitioner/123")
        launch = self.launch_of(oauth)
        patient = launch.patient if launch is not None else None
        if patient is None and "launch/patient" in oauth.scope.split():
            patient = fields.get("patient") or None
            if patient is None or not await self.patient_exists(patient):
                raise InvalidRequestError("pick a patient")
        return User(fhir_user, fhir_user, patient)

    async def patient_exists(self, pid: str) -> bool:
        async with self.state.require_pool().acquire() as conn:
            return await conn.fetchval(PATIENT_EXISTS_SQL, pid[:64]) is not None

    # -- token -------------------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        pairs = await form_pairs(request)
        oauth = self.oauth_request(request, pairs)
        backend.audience_var.set(self.origin(request) + discovery.AUTH_PREFIX + "/token")
        seen: list[tuple[str, str, float]] = []
        backend.seen_var.set(seen)
        await self.assertion.prefetch(self.server.query_client(asserted_client(oauth)))
        status, body, headers = self.server.create_token_response(oauth)
        client_id = oauth.client.client_id if oauth.client is not None else self.known(oauth)
        if status == 200 and not await self.fresh(seen):
            status, body, headers = self.server.handle_error_response(
                oauth, InvalidClientError(description="the assertion's jti was used before"))  # fmt: skip
        grant_type = oauth.payload.grant_type
        grant_type = grant_type if grant_type in GRANT_TYPES else "other"  # client-typed text
        if status == 200:
            await self.audit("token", "success", client_id, detail=f"grant: {grant_type}"[:80])
        else:
            error = body.get("error", "error") if isinstance(body, dict) else "error"
            await self.audit("token", "denied", client_id, detail=f"{grant_type}: {error}"[:120])
        return self.respond((status, body, headers))

    async def fresh(self, seen: list[tuple[str, str, float]]) -> bool:
        async with self.state.require_pool().acquire() as conn:
            for client_id, jti, exp in seen:
                if not await backend.remember_jti(conn, client_id, jti, exp):
                    return False
        return True

    # -- keys and launches ---------------------------------------------------------------------------
    async def jwks(self, request: Request) -> Response:
        key = self.server.id_key.as_dict(private=False)
        key |= {"use": "sig", "alg": "RS256"}
        return JSONResponse({"keys": [key]}, headers={"Cache-Control": "public, max-age=300"})

    async def launch(self, request: Request) -> Response:
        """Start an EHR launch: ``?client_id=&patient=``, as the EHR would; redirects to the
        app's launch_uri with ``iss`` and an opaque ``launch`` bound to the patient."""
        client = self.server.query_client(request.query_params.get("client_id", ""))
        patient = request.query_params.get("patient", "")
        if client is None or client.launch_uri is None or not await self.patient_exists(patient):
            return JSONResponse({"error": "invalid_request", "error_description":
                                 "unknown client, no launch_uri, or no such patient"}, 400)  # fmt: skip
        value = secrets.token_urlsafe(24)
        self.server.launches[value] = Launch(client.client_id, patient, time.time() + LAUNCH_TTL)
        iss = self.origin(request) + discovery.FHIR_PREFIX
        return RedirectResponse(f"{client.launch_uri}?{urlencode({'iss': iss, 'launch': value})}",
                                status_code=302)  # fmt: skip


async def form_pairs(request: Request) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body (RFC 6749 section 3.2); anything else is
    parsed as no parameters, which the grant then refuses as invalid_request."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return []
    try:
        return parse_qsl((await request.body()).decode(), keep_blank_values=True,
                         max_num_fields=64)  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        return []


def label_of(patient: dict[str, Any]) -> str:
    names = patient.get("name")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    given = " ".join(g for g in name.get("given", []) if isinstance(g, str))
    return f"{given} {name.get('family', '')}".strip() or "(no name)"


def asserted_client(oauth: OAuthRequest) -> str:
    """The client a ``private_key_jwt`` assertion claims to be (unverified: to prefetch keys)."""
    assertion = oauth.payload.data.get("client_assertion")
    if not assertion:
        return str(oauth.payload.data.get("client_id", ""))
    try:
        claims = pyjwt.decode(assertion, options={"verify_signature": False})
    except pyjwt.PyJWTError:
        return ""
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else ""


def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[..., Any]:
    """Never a traceback: an audit outage is a 503/500 saying so, a bug a logged 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except audit.AuditWriteError as error:
            return JSONResponse({"error": "server_error", "error_description": str(error)},
                                error.status)  # fmt: skip
        except Exception as error:
            log.error("unexpected error in the authorization server",
                      extra={"error": type(error).__name__})  # fmt: skip
            return JSONResponse({"error": "server_error"}, 500)

    return endpoint


def build(state: ServiceState) -> Starlette:
    endpoints = Endpoints(state)
    return Starlette(routes=[
        Route("/authorize", guarded(endpoints.authorize), methods=["GET", "POST"]),
        Route("/token", guarded(endpoints.token), methods=["POST"]),
        Route("/jwks", guarded(endpoints.jwks), methods=["GET"]),
        Route("/launch", guarded(endpoints.launch), methods=["GET"]),
    ])  # fmt: skip
