"""AuthMiddleware in front of a small FHIR-like app, with a real pool and the real audit trail."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import jwt
import psycopg
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from tests.conftest import TEST_SECRET_KEY_BASE, Database
from tests.security.conftest import make_state, mint

from healthstack.security import tokens
from healthstack.security.middleware import AuthMiddleware, client_ip, principal_of
from healthstack.service.logs import user_id_var
from healthstack.service.state import ServiceState


async def whoami(request: Request) -> Response:
    principal = principal_of(request)
    return JSONResponse({"sub": principal.subject, "patient": principal.patient,
                         "reason": principal.break_glass_reason, "log_user": user_id_var.get()})  # fmt: skip


async def metadata(request: Request) -> Response:
    return JSONResponse({"resourceType": "CapabilityStatement"})


def call(db: Database, requests: Callable[[httpx.AsyncClient], Awaitable[Any]],
         state: ServiceState | None = None) -> Any:  # fmt: skip
    state = state or make_state(db.url)

    async def main() -> Any:
        state.pool = await asyncpg.create_pool(db.url, min_size=1, max_size=2)
        app = AuthMiddleware(Router([Route("/metadata", metadata),
                                     Route("/Patient/{id}", whoami)]), state)  # fmt: skip
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await requests(client)
        finally:
            await state.pool.close()

    return asyncio.run(main())


def audit_rows(db: Database) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.owner_url) as conn:
        return conn.execute(
            "SELECT interaction, outcome, subject, break_glass, content FROM audit_log "
            "ORDER BY recorded_at"
        ).fetchall()


def get(path: str, token: str | None = None, **headers: str) -> Callable[..., Awaitable[Any]]:
    if token:
        headers["Authorization"] = f"Bearer {token}"

    async def go(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(path, headers=headers)

    return go


def test_valid_token_reaches_the_handler_with_its_principal(database: Database) -> None:
    response = call(database, get("/Patient/1", mint("dr-a", "user/Patient.rs", patient="p9")))
    assert response.status_code == 200
    assert response.json() == {"sub": "dr-a", "patient": "p9", "reason": None, "log_user": "dr-a"}


def test_metadata_is_public(database: Database) -> None:
    assert call(database, get("/metadata")).status_code == 200
    assert audit_rows(database) == []


def _expired() -> str:
    now = int(time.time())
    claims = {"iss": tokens.DEV_ISSUER, "aud": tokens.DEV_AUDIENCE, "sub": "x", "iat": now - 900,
              "exp": now - 300}  # fmt: skip
    return jwt.encode(claims, tokens.dev_signing_key(TEST_SECRET_KEY_BASE), algorithm="HS256")


# Tokens are minted when the test runs, not at collection: a suite that takes longer than a
# token's lifetime would otherwise see them all as expired.
REFUSED: list[tuple[Callable[[], str | None], str]] = [
    (lambda: None, "missing"),
    (lambda: "not-a-jwt", "malformed"),
    (lambda: tokens.mint_dev_token("x" * 64, "someone", "user/Patient.rs"), "invalid"),
    (_expired, "expired"),
    (lambda: mint("someone", "user/Patient.rs", ttl=7200), "lifetime"),
    (lambda: mint("someone", "user/Patient.rs", aud="elsewhere"), "invalid"),
    (lambda: mint("someone", "user/Patient.rs", nbf=int(time.time()) + 600), "not_yet_valid"),
]


@pytest.mark.parametrize(("make_token", "reason"), REFUSED)
def test_refused_tokens_get_401_and_are_audited(database: Database,
                                                make_token: Callable[[], str | None],
                                                reason: str) -> None:  # fmt: skip
    token = make_token()
    state = make_state(database.url)
    response = call(database, get("/Patient/1", token), state)
    assert response.status_code == 401
    # RFC 6750: an error code only when a token was presented.
    expected = 'Bearer realm="healthstack"' + ("" if token is None else ', error="invalid_token"')
    assert response.headers["www-authenticate"] == expected
    assert response.json()["resourceType"] == "OperationOutcome"
    assert state.metrics.auth_failures.labels(reason)._value.get() == 1
    [(interaction, outcome, subject, _, content)] = audit_rows(database)
    assert (interaction, outcome, subject) == ("login", "unauthenticated", None)
    assert json.loads(content)["detail"] == reason


def test_production_refuses_hs256(database: Database) -> None:
    state = make_state(database.url, env="production", oidc_issuer="https://idp",
                       oidc_audience="healthstack", oidc_jwks_url="http://127.0.0.1:9/jwks")  # fmt: skip
    response = call(database, get("/Patient/1", mint("dr-a", "user/Patient.rs")), state)
    assert response.status_code == 401
    assert state.metrics.auth_failures.labels("algorithm")._value.get() == 1


def test_break_glass_needs_the_permission(database: Database) -> None:
    token = mint("dr-a", "user/Patient.rs")
    response = call(
        database, get("/Patient/1", token, **{"X-Break-Glass-Reason": "cardiac arrest"})
    )
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    [(interaction, outcome, subject, _, _)] = audit_rows(database)
    assert (interaction, outcome, subject) == ("break-glass", "denied", "dr-a")


def test_break_glass_needs_a_reason(database: Database) -> None:
    token = mint("dr-a", "user/Patient.rs break-glass")
    response = call(database, get("/Patient/1", token, **{"X-Break-Glass-Reason": "  "}))
    assert response.status_code == 403
    assert "reason" in response.json()["issue"][0]["diagnostics"]


def test_break_glass_with_reason_reaches_the_handler(database: Database) -> None:
    token = mint("dr-a", "patient/Patient.rs break-glass", patient="p1")
    response = call(
        database, get("/Patient/1", token, **{"X-Break-Glass-Reason": "cardiac arrest"})
    )
    assert response.status_code == 200
    assert response.json()["reason"] == "cardiac arrest"


@pytest.mark.parametrize(
    ("forwarded", "hops", "expected"),
    [
        (None, 0, "10.0.0.9"),
        ("203.0.113.7", 0, "10.0.0.9"),  # untrusted header ignored
        ("198.51.100.1, 203.0.113.7", 1, "203.0.113.7"),  # client-written entry ignored
        ("198.51.100.1, 203.0.113.7", 2, "198.51.100.1"),
        (None, 1, "10.0.0.9"),
    ],
)
def test_client_ip_trusts_only_configured_hops(forwarded: str | None, hops: int,
                                               expected: str) -> None:  # fmt: skip
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = {"client": ("10.0.0.9", 5000), "headers": headers}
    assert client_ip(scope, hops) == expected
