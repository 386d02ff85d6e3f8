"""SMART App Launch against a live service: discovery, a client library we did not write
(``fhirclient``) completing a standalone launch, EHR launch, refresh, and refused bad input."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psycopg
import pytest
from fhirclient import client as fhirclient
from tests.auth.conftest import APP, REDIRECT, create_patient
from tests.conftest import Database, Service

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


def consent(service: Service, authorize_url: str, **choices: str) -> httpx.Response:
    """Open the consent page like a browser and submit it; the answer is the redirect."""
    page = httpx.get(authorize_url)
    assert page.status_code == 200, page.text
    pairs = [(html.unescape(k), html.unescape(v)) for k, v in HIDDEN.findall(page.text)]
    form = [*pairs, ("fhir_user", "Practitioner/dev-user"), ("decision", "approve")]
    form += list(choices.items())
    return httpx.post(f"{service.base_url}/auth/authorize", content=urlencode(form),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authorize_url(service: Service, scope: str, challenge: str, **extra: str) -> str:
    params = {"response_type": "code", "client_id": APP, "redirect_uri": REDIRECT,
              "scope": scope, "state": "s1", "aud": f"{service.base_url}/api/fhir",
              "code_challenge": challenge, "code_challenge_method": "S256", **extra}  # fmt: skip
    return f"{service.base_url}/auth/authorize?{urlencode(params)}"


def query_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def exchange(service: Service, code: str, verifier: str) -> httpx.Response:
    return httpx.post(f"{service.base_url}/auth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": APP, "code_verifier": verifier})  # fmt: skip


def test_discovery_documents_name_the_embedded_server(smart_service: Service) -> None:
    base = f"{smart_service.base_url}/api/fhir"
    config = httpx.get(f"{base}/.well-known/smart-configuration").json()
    assert config["authorization_endpoint"] == f"{smart_service.base_url}/auth/authorize"
    assert config["token_endpoint"] == f"{smart_service.base_url}/auth/token"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"launch-ehr", "launch-standalone", "client-public", "permission-v2",
            "client-confidential-asymmetric", "sso-openid-connect"} <= set(config["capabilities"])  # fmt: skip
    assert httpx.get(config["jwks_uri"]).json()["keys"][0]["alg"] == "RS256"
    security = httpx.get(f"{base}/metadata").json()["rest"][0]["security"]
    (extension,) = [e for e in security["extension"] if e["url"] == OAUTH_URIS]
    uris = {e["url"]: e["valueUri"] for e in extension["extension"]}
    assert uris == {"authorize": config["authorization_endpoint"],
                    "token": config["token_endpoint"]}  # fmt: skip


def test_fhirclient_completes_a_standalone_launch_and_reads_the_patient(
    smart_service: Service,
) -> None:
    pid = create_patient(smart_service.base_url, "Lovelace")
    settings = {"app_id": APP, "api_base": f"{smart_service.base_url}/api/fhir",
                "redirect_uri": REDIRECT, "scope": "openid fhirUser patient/*.rs"}  # fmt: skip
    smart = fhirclient.FHIRClient(settings=settings)
    answer = consent(smart_service, smart.authorize_url, patient=pid)
    smart.handle_callback(answer.headers["location"])
    assert smart.ready
    assert smart.patient_id == pid
    patient = smart.patient
    assert patient is not None
    assert patient.id == pid
    assert patient.name[0].family == "Lovelace"


def test_ehr_launch_carries_the_patient_and_id_token_names_the_user(
    smart_service: Service,
) -> None:
    pid = create_patient(smart_service.base_url, "Hopper")
    start = httpx.get(f"{smart_service.base_url}/auth/launch",
                      params={"client_id": APP, "patient": pid})  # fmt: skip
    launch = query_of(start)
    assert launch["iss"] == f"{smart_service.base_url}/api/fhir"
    verifier, challenge = pkce()
    url = authorize_url(smart_service, "launch openid fhirUser patient/*.rs offline_access",
                        challenge, launch=launch["launch"])  # fmt: skip
    answer = query_of(consent(smart_service, url))
    assert answer["state"] == "s1"
    token = exchange(smart_service, answer["code"], verifier).json()
    assert token["patient"] == pid
    assert "refresh_token" in token
    claims = _payload(token["id_token"])
    assert claims["fhirUser"] == "Practitioner/dev-user"
    assert claims["aud"] == [APP]
    refreshed = httpx.post(f"{smart_service.base_url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": APP})  # fmt: skip
    assert refreshed.status_code == 200, refreshed.text
    again = httpx.post(f"{smart_service.base_url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": APP})  # fmt: skip
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def _payload(token: str) -> dict[str, Any]:
    import orjson

    part = token.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_a_wrong_verifier_and_a_reused_code_are_invalid_grant(smart_service: Service) -> None:
    pid = create_patient(smart_service.base_url, "Noether")
    verifier, challenge = pkce()
    answer = query_of(consent(smart_service, authorize_url(
        smart_service, "launch/patient patient/*.rs", challenge), patient=pid))  # fmt: skip
    wrong = exchange(smart_service, answer["code"], pkce()[0])
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # The failed attempt consumed the code: the right verifier now finds nothing either.
    verifier2, challenge2 = pkce()
    answer2 = query_of(consent(smart_service, authorize_url(
        smart_service, "launch/patient patient/*.rs offline_access", challenge2), patient=pid))  # fmt: skip
    first = exchange(smart_service, answer2["code"], verifier2)
    assert first.status_code == 200
    reused = exchange(smart_service, answer2["code"], verifier2)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert exchange(smart_service, answer["code"], verifier).status_code == 400
    # The replay revoked what the first exchange issued.
    refresh = httpx.post(f"{smart_service.base_url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"],
        "client_id": APP})  # fmt: skip
    assert refresh.status_code == 400


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request"),
        ({"aud": "https://elsewhere.example/fhir"}, "invalid_request"),
        ({"launch": "not-a-launch-this-server-started"}, "invalid_request"),
    ],
)
def test_bad_authorization_requests_are_redirected_with_the_error(
    smart_service: Service, change: dict[str, str], error: str
) -> None:
    url = authorize_url(smart_service, "patient/*.rs", pkce()[1], **change)
    response = httpx.get(url)
    assert query_of(response)["error"] == error


def test_a_tampered_consent_form_is_refused(smart_service: Service) -> None:
    page = httpx.get(authorize_url(smart_service, "patient/*.rs", pkce()[1]))
    pairs = [(html.unescape(k), html.unescape(v)) for k, v in HIDDEN.findall(page.text)]
    widened = [(k, "user/*.cruds" if k == "scope" else v) for k, v in pairs]
    form = [*widened, ("fhir_user", "Practitioner/dev-user"), ("decision", "approve")]
    response = httpx.post(f"{smart_service.base_url}/auth/authorize", content=urlencode(form),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert response.status_code == 400
    assert "location" not in response.headers


def test_an_unregistered_redirect_uri_is_never_redirected_to(smart_service: Service) -> None:
    url = authorize_url(smart_service, "patient/*.rs", pkce()[1],
                        redirect_uri="https://attacker.example/cb")  # fmt: skip
    response = httpx.get(url)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.json()["error"] == "invalid_request"


def test_consent_and_refusals_are_in_the_audit_trail(
    smart_service: Service, module_database: Database
) -> None:
    """Runs after the tests above in this module: their consents and refusals are recorded,
    and no code, verifier or token value is in any record."""
    with psycopg.connect(module_database.owner_url) as conn:
        rows = conn.execute(
            "SELECT interaction, outcome, client_id, resource_id, content FROM audit_log "
            "WHERE interaction IN ('consent', 'token')"
        ).fetchall()
    kinds = {(r[0], r[1]) for r in rows}
    assert {("consent", "success"), ("consent", "denied"), ("token", "success"),
            ("token", "denied")} <= kinds  # fmt: skip
    assert any(r[0] == "consent" and r[1] == "success" and r[3] for r in rows)  # the patient
    details = " ".join(r[4] for r in rows)
    assert "invalid_grant" in details
    assert "invalid_request" in details
    assert "code_verifier" not in details
    assert "eyJ" not in details
