"""Whatever arrives at the embedded authorization server, the answer is a 4xx with an OAuth error
(or the consent page), never a 500 or a traceback."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from tests.auth.conftest import APP
from tests.auth.keys import RSA_CLIENT, RSA_KEY
from tests.conftest import Service

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}."


def _signed(claims: dict[str, object]) -> str:
    return jwt.encode(claims, RSA_KEY, algorithm="RS384", headers={"kid": "rsa-1"})


NOW = int(time.time())
ODD_ASSERTIONS = [
    "", "a.b.c", "not-a-jwt", "x" * 10_000,
    _unsigned({"iss": RSA_CLIENT, "sub": RSA_CLIENT, "aud": "x", "exp": NOW + 60, "jti": "n"}),
    _signed({"iss": RSA_CLIENT, "sub": RSA_CLIENT, "aud": "x", "exp": "soon", "jti": "s"}),
    _signed({"iss": RSA_CLIENT, "sub": 12, "aud": "x", "exp": NOW + 60, "jti": "i"}),
    _signed({"iss": RSA_CLIENT, "sub": RSA_CLIENT, "exp": NOW + 60, "jti": {"a": 1}}),
    _signed({"iss": "x" * 5000, "sub": "x" * 5000, "exp": NOW + 60, "jti": "l"}),
]  # fmt: skip
ODD_TOKEN_FORMS = [
    "", "grant_type=", "grant_type=password&username=a&password=b",
    "grant_type=authorization_code", f"grant_type=authorization_code&client_id={APP}&code=" + "c" * 10_000,
    f"grant_type=authorization_code&client_id={'x' * 5000}&code=abc&code_verifier=v",
    f"grant_type=refresh_token&client_id={APP}&refresh_token=unknown",
    "grant_type=client_credentials&grant_type=client_credentials",
    "%ff%fe=%00", "grant_type=client_credentials&scope=system/*.rs",
] + [urlencode({"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": a}) for a in ODD_ASSERTIONS]  # fmt: skip


@pytest.mark.parametrize("body", ODD_TOKEN_FORMS)
def test_odd_token_requests_are_oauth_errors(smart_service: Service, body: str) -> None:
    response = httpx.post(f"{smart_service.base_url}/auth/token", content=body, headers=FORM)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]
    assert response.headers["cache-control"] == "no-store"


def test_a_json_token_request_is_refused(smart_service: Service) -> None:
    response = httpx.post(f"{smart_service.base_url}/auth/token", json={"grant_type": "x"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "query",
    ["", "client_id=" + "x" * 5000, f"client_id={APP}&client_id={APP}&response_type=code",
     f"client_id={APP}&response_type=token", "response_type=code&client_id=%00%ff",
     f"client_id={APP}&response_type=code&redirect_uri=javascript:alert(1)"],
)  # fmt: skip
def test_odd_authorization_requests_are_refused(smart_service: Service, query: str) -> None:
    response = httpx.get(f"{smart_service.base_url}/auth/authorize?{query}")
    assert 300 <= response.status_code < 500, response.text
    location = response.headers.get("location", "")
    assert not location.startswith("javascript")


@pytest.mark.parametrize("body", ["", "ticket=x&decision=approve", "%ff=%00"])
def test_forged_decisions_are_refused(smart_service: Service, body: str) -> None:
    response = httpx.post(f"{smart_service.base_url}/auth/authorize", content=body, headers=FORM)
    assert response.status_code == 400


@pytest.mark.parametrize("query", ["", f"client_id={APP}&patient=" + "p" * 5000, "client_id=x"])
def test_odd_launches_are_refused(smart_service: Service, query: str) -> None:
    assert httpx.get(f"{smart_service.base_url}/auth/launch?{query}").status_code == 400
