"""SMART Backend Services against a live service: client_credentials with private_key_jwt
(RS384, ES384), short-lived tokens the FHIR API accepts, and each bad assertion refused."""

from __future__ import annotations

import time

import httpx
import pytest
from tests.auth.keys import EC_CLIENT, RSA_CLIENT, URL_CLIENT, assertion
from tests.conftest import Service

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def request_token(service: Service, signed: str, scope: str = "system/*.rs") -> httpx.Response:
    return httpx.post(f"{service.base_url}/auth/token", data={
        "grant_type": "client_credentials", "scope": scope,
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed})  # fmt: skip


@pytest.mark.parametrize("client_id", [RSA_CLIENT, EC_CLIENT, URL_CLIENT])
def test_a_backend_client_gets_a_short_lived_token_the_api_accepts(
    smart_service: Service, client_id: str
) -> None:
    audience = f"{smart_service.base_url}/auth/token"
    response = request_token(smart_service, assertion(client_id, audience))
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] <= 300
    assert "refresh_token" not in token
    assert token["scope"] == "system/*.rs"
    search = httpx.get(f"{smart_service.base_url}/api/fhir/Patient",
                       headers={"Authorization": f"Bearer {token['access_token']}"})  # fmt: skip
    assert search.status_code == 200, search.text


def test_a_replayed_jti_is_refused(smart_service: Service) -> None:
    audience = f"{smart_service.base_url}/auth/token"
    signed = assertion(RSA_CLIENT, audience, jti="once-only-jti")
    assert request_token(smart_service, signed).status_code == 200
    replay = request_token(smart_service, signed)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_client"
    # A new assertion with the same jti is the same replay.
    again = request_token(smart_service, assertion(RSA_CLIENT, audience, jti="once-only-jti"))
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "bad",
    ["wrong-aud", "expired", "too-long", "unregistered-scope-only"],
)
def test_bad_assertions_are_invalid_client(smart_service: Service, bad: str) -> None:
    audience = f"{smart_service.base_url}/auth/token"
    scope = "system/*.rs"
    if bad == "wrong-aud":
        signed = assertion(RSA_CLIENT, "https://elsewhere.example/token")
    elif bad == "expired":
        signed = assertion(RSA_CLIENT, audience, now=time.time() - 600)
    elif bad == "too-long":
        signed = assertion(RSA_CLIENT, audience, lifetime=3600)
    else:
        signed, scope = assertion(EC_CLIENT, audience), "system/Patient.cruds"
    response = request_token(smart_service, signed, scope)
    expected = "invalid_scope" if bad == "unregistered-scope-only" else "invalid_client"
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == expected
