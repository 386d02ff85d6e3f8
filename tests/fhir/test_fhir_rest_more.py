"""REST interactions clients rely on (issue 15, first part): conditional read, POST _search,
$validate, format negotiation."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from tests.conftest import Database
from tests.fhir.conftest import client_for

from healthstack.fhir.dates import http_date


def _patient(fhir: httpx.Client) -> dict[str, object]:
    body = {"resourceType": "Patient", "gender": "female",
            "identifier": [{"system": "urn:rest-more", "value": uuid.uuid4().hex}]}  # fmt: skip
    response = fhir.post("/Patient", json=body)
    assert response.status_code == 201
    created: dict[str, object] = response.json()
    return created


def test_conditional_read_answers_304(fhir: httpx.Client) -> None:
    patient = _patient(fhir)
    path = f"/Patient/{patient['id']}"
    first = fhir.get(path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert fhir.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert fhir.get(path, headers={"If-None-Match": 'W/"99"'}).status_code == 200
    assert fhir.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    earlier = http_date(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert fhir.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    assert fhir.get(path, headers={"If-Modified-Since": "garbage"}).status_code == 200
    not_modified = fhir.get(path, headers={"If-None-Match": etag})
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag


def test_post_search_gives_the_same_results_as_get(fhir: httpx.Client) -> None:
    patient = _patient(fhir)
    identifier = patient["identifier"][0]["value"]  # type: ignore[index]
    query = {"identifier": f"urn:rest-more|{identifier}"}
    by_get = fhir.get("/Patient", params=query).json()
    by_post = fhir.post("/Patient/_search", content=f"identifier=urn:rest-more%7C{identifier}",
                        headers={"Content-Type": "application/x-www-form-urlencoded"}).json()  # fmt: skip
    ids = [[e["resource"]["id"] for e in b["entry"]] for b in (by_get, by_post)]
    assert ids[0] == ids[1] == [patient["id"]]
    assert fhir.post("/Patient/_search", json=query).status_code == 415
    bad = fhir.post("/Patient/_search", content=b"name=\xff",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert bad.status_code == 400


def test_validate_stores_nothing(fhir: httpx.Client, module_database: Database) -> None:
    import psycopg

    with psycopg.connect(module_database.owner_url) as conn:
        before = conn.execute("SELECT count(*) FROM fhir_resource").fetchone()
    good = fhir.post("/Encounter/$validate", json={
        "resourceType": "Encounter", "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}})  # fmt: skip
    assert good.status_code == 200
    assert good.json()["issue"][0]["severity"] == "information"
    wrapped = fhir.post("/Encounter/$validate", json={"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Encounter", "status": "nope"}}]})  # fmt: skip
    assert wrapped.status_code == 200
    expressions = {e for i in wrapped.json()["issue"] for e in i.get("expression", [])}
    assert {"Encounter.status", "Encounter.class"} <= expressions
    with psycopg.connect(module_database.owner_url) as conn:
        assert conn.execute("SELECT count(*) FROM fhir_resource").fetchone() == before


def test_validate_needs_a_write_permission(live_service: object) -> None:
    with client_for(live_service, "user/Encounter.rs") as reader:  # type: ignore[arg-type]
        assert (
            reader.post("/Encounter/$validate", json={"resourceType": "Encounter"}).status_code
            == 403
        )


@pytest.mark.parametrize("path", ["/Patient", "/Patient/_history", "/metadata"])
def test_format_and_pretty_are_accepted_everywhere(fhir: httpx.Client, path: str) -> None:
    for params in ({"_format": "json"}, {"_format": "application/fhir+json"}, {"_pretty": "true"}):
        assert fhir.get(path, params=params).status_code == 200, params


def test_formats_the_server_cannot_produce_are_406(fhir: httpx.Client) -> None:
    assert fhir.get("/Patient", params={"_format": "xml"}).status_code == 406
    response = fhir.get("/Patient", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"
    assert (
        fhir.get("/Patient", headers={"Accept": "application/fhir+xml, */*;q=0.1"}).status_code
        == 200
    )
