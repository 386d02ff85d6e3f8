"""FHIR API fixtures: an authenticated HTTP client against the module's live service."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import TEST_SECRET_KEY_BASE, Service

from healthstack.security.tokens import mint_dev_token

FULL_SCOPES = "user/*.cruds system/*.cruds"
FHIR_JSON = "application/fhir+json"


def token(scopes: str = FULL_SCOPES, patient: str | None = None, sub: str = "tester") -> str:
    return mint_dev_token(TEST_SECRET_KEY_BASE, sub, scopes, patient=patient)


def client_for(
    service: Service, scopes: str = FULL_SCOPES, patient: str | None = None
) -> httpx.Client:
    return httpx.Client(
        base_url=f"{service.base_url}/api/fhir",
        headers={
            "Authorization": f"Bearer {token(scopes, patient)}",
            "Content-Type": FHIR_JSON,
            "Accept": FHIR_JSON,
        },
        timeout=30,
    )


@pytest.fixture(scope="module")
def fhir(live_service: Service) -> Iterator[httpx.Client]:
    with client_for(live_service) as client:
        yield client
