"""Which authorization server discovery names: the identity provider in production (by URL), the
embedded development server elsewhere, and never the embedded one in production."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_config import GOOD

from healthstack import auth
from healthstack.auth import discovery
from healthstack.auth.backend import KeyAssertion
from healthstack.auth.clients import load_clients
from healthstack.auth.server import Request as OAuthRequest
from healthstack.auth.server import SmartServer, User
from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.service.state import ServiceState

PROD = {**GOOD, "OIDC_JWKS_URL": f"{GOOD['OIDC_ISSUER']}/protocol/openid-connect/certs"}
KEYCLOAK = "https://login.example.com/realms/healthcare/protocol/openid-connect"
BASE = "https://fhir.example.com/api/fhir"


def test_production_refuses_the_embedded_server_naming_the_variable() -> None:
    with pytest.raises(HealthstackError, match="SMART_EMBEDDED_AS"):
        Settings.from_env({**PROD, "SMART_EMBEDDED_AS": "true"})
    settings = Settings.from_env(PROD)
    assert not discovery.embedded(settings)
    assert auth.routes(ServiceState(settings=settings, database_url="postgresql://x")) == []
    assert discovery.smart_configuration(settings, BASE) is None  # answered 404: none configured


def test_production_names_the_identity_provider() -> None:
    settings = Settings.from_env({**PROD, "SMART_AUTHORIZE_URL": f"{KEYCLOAK}/auth",
                                  "SMART_TOKEN_URL": f"{KEYCLOAK}/token",
                                  "SMART_CAPABILITIES": "launch-standalone client-public"})  # fmt: skip
    document = discovery.smart_configuration(settings, BASE)
    assert document is not None
    assert document["authorization_endpoint"] == f"{KEYCLOAK}/auth"
    assert document["issuer"] == PROD["OIDC_ISSUER"]
    assert document["jwks_uri"] == PROD["OIDC_JWKS_URL"]
    # What the IdP does is the operator's to declare; what the FHIR server enforces is ours.
    assert document["capabilities"] == ["client-public", "launch-standalone", "permission-patient",
                                        "permission-user", "permission-v2"]  # fmt: skip
    assert document["grant_types_supported"] == ["authorization_code"]
    assert document["token_endpoint_auth_methods_supported"] == ["none"]
    extension = discovery.oauth_uris_extension(settings, BASE)
    assert extension is not None
    assert {e["url"]: e["valueUri"] for e in extension["extension"]} == {
        "authorize": f"{KEYCLOAK}/auth", "token": f"{KEYCLOAK}/token"}  # fmt: skip


def test_development_names_the_embedded_server() -> None:
    settings = Settings.from_env({"HEALTHSTACK_ENV": "development"})
    document = discovery.smart_configuration(settings, "http://127.0.0.1:4000/api/fhir")
    assert document is not None
    assert document["token_endpoint"] == "http://127.0.0.1:4000/auth/token"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["grant_types_supported"] == [
        "authorization_code", "client_credentials", "refresh_token"]  # fmt: skip
    assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "none"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{", "is not JSON"),
        ('{"clients": {}}', "needs"),
        ('{"clients": [{"client_id": ""}]}', "client 1: client_id"),
        ('{"clients": [{"client_id": "a", "redirect_uris": ["ftp://x"]}]}', "redirect_uris"),
        ('{"clients": [{"client_id": "a", "jwks": {"k": 1}}]}', "jwks must be a JWK Set"),
        ('{"clients": [{"client_id": "a"}, {"client_id": "a"}]}', "registered twice"),
    ],
)
def test_a_malformed_clients_file_names_the_file_and_entry(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "clients.json"
    path.write_text(body)
    with pytest.raises(HealthstackError, match="SMART_CLIENTS_FILE") as raised:
        load_clients(path)
    assert message in str(raised.value)


def test_a_public_client_cannot_use_client_credentials(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [{"client_id": "app", "redirect_uris": [
        "https://app.example/cb"]}]}))  # fmt: skip
    client = load_clients(path)["app"]
    assert not client.check_grant_type("client_credentials")
    assert client.check_endpoint_auth_method("none", "token")
    assert not client.check_redirect_uri("https://app.example/cb/../evil")


@pytest.mark.parametrize(("scope", "days"), [("offline_access", 30.0), ("online_access", 1 / 24)])
def test_refresh_tokens_live_as_their_scope_says(tmp_path: Path, scope: str, days: float) -> None:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [{"client_id": "app", "scope": f"{scope} user/*.rs",
                                             "redirect_uris": ["https://app.example/cb"]}]}))  # fmt: skip
    server = SmartServer(load_clients(path), "k" * 64, 3600, KeyAssertion())
    user = User("Practitioner/1", "Practitioner/1", None)
    token = server.mint("authorization_code", server.clients["app"], user, f"{scope} user/*.rs")
    lifetime = server.refreshes[token["refresh_token"]].get_expires_in()
    assert abs(lifetime - days * 86400) < 60
    assert "refresh_token" not in server.mint("authorization_code", server.clients["app"], user,
                                              "user/*.rs")  # fmt: skip


def test_refreshing_never_extends_the_session(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [{"client_id": "app", "scope": "offline_access user/*.rs",
                                             "redirect_uris": ["https://app.example/cb"]}]}))  # fmt: skip
    server = SmartServer(load_clients(path), "k" * 64, 3600, KeyAssertion())
    user = User("Practitioner/1", "Practitioner/1", None)
    first = server.mint(
        "authorization_code", server.clients["app"], user, "offline_access user/*.rs"
    )
    consented = server.refreshes[first["refresh_token"]]
    consented.expires_at -= 29 * 86400  # the session the user consented to has a day left
    refresh_token = first["refresh_token"]
    for _ in range(3):
        body = [("grant_type", "refresh_token"), ("client_id", "app"),
                ("refresh_token", refresh_token)]  # fmt: skip
        request = OAuthRequest("POST", "https://fhir.example/auth/token",
                               {"Content-Type": "application/x-www-form-urlencoded"}, body)  # fmt: skip
        status, answer, _ = server.create_token_response(request)
        assert status == 200, answer
        refresh_token = answer["refresh_token"]
        assert server.refreshes[refresh_token].expires_at == consented.expires_at
