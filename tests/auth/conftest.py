"""A live service with the embedded SMART authorization server and registered test clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Database, Service, start_service
from tests.security.conftest import json_server, mint

APP = "test-app"
REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the test reads the Location header
LAUNCH_URI = "http://127.0.0.1:9/launch"
APP_SCOPES = ("launch launch/patient openid fhirUser offline_access online_access "
              "patient/*.rs patient/Patient.rs user/*.rs")  # fmt: skip


def clients_file(path: Path, extra: list[dict[str, Any]]) -> Path:
    public = {"client_id": APP, "redirect_uris": [REDIRECT], "launch_uri": LAUNCH_URI,
              "scope": APP_SCOPES}  # fmt: skip
    path.write_text(json.dumps({"clients": [public, *extra]}))
    return path


@pytest.fixture(scope="module")
def smart_service(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    from tests.auth.keys import BACKEND_CLIENTS, URL_JWKS, url_client

    folder = tmp_path_factory.mktemp("smart")
    with json_server(lambda: URL_JWKS) as jwks_uri:
        extra = [*BACKEND_CLIENTS, url_client(jwks_uri)]
        registered = clients_file(folder / "clients.json", extra)
        service = start_service(module_database, folder / "service.log",
                                SMART_CLIENTS_FILE=str(registered))  # fmt: skip
        yield service
        service.stop()


def create_patient(base: str, family: str) -> str:
    token = mint("admin", "user/Patient.cruds")
    body = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ada"]}],
            "gender": "female"}  # fmt: skip
    response = httpx.post(f"{base}/api/fhir/Patient", json=body,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
