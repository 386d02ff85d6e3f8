"""REST interactions clients rely on (issue 15, first part): conditional read, POST _search,
$validate, format negotiation."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import orjson
import pytest
from tests.conftest import Database
from tests.fhir.conftest import client_for

from healthstack.core.dates import http_date


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
    assert fhir.get("/Patient", params={"_format": "turtle"}).status_code == 406
    response = fhir.get("/Patient", headers={"Accept": "text/turtle"})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"
    assert fhir.get("/Patient", headers={"Accept": "text/turtle, */*;q=0.1"}).status_code == 200


def test_lenient_handling_ignores_unknown_parameters_and_says_so(fhir: httpx.Client) -> None:
    patient = _patient(fhir)
    params = {"_id": str(patient["id"]), "shoe-size": "44", "mystery:exact": "Jane Q"}
    assert fhir.get("/Patient", params=params).status_code == 400  # strict stays the default
    lenient = fhir.get("/Patient", params=params, headers={"Prefer": "handling=lenient"}).json()
    matches = [e for e in lenient["entry"] if e["search"]["mode"] == "match"]
    assert [e["resource"]["id"] for e in matches] == [patient["id"]]
    notes = [e["resource"] for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    text = notes[0]["issue"][0]["diagnostics"]
    assert "shoe-size" in text
    assert "Jane Q" not in text  # names only, never values
    strict = fhir.get("/Patient", params=params, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


def test_conditional_update_creates_updates_or_refuses(fhir: httpx.Client) -> None:
    system = f"urn:cond-{uuid.uuid4().hex[:8]}"
    body = {"resourceType": "Patient", "gender": "male",
            "identifier": [{"system": system, "value": "A-1"}]}  # fmt: skip
    url = f"/Patient?identifier={system}|A-1"
    created = fhir.put(url, json=body)
    assert created.status_code == 201  # no match: created, the server assigns the id
    pid = created.json()["id"]
    updated = fhir.put(url, json={**body, "gender": "other"})
    assert updated.status_code == 200
    assert updated.json()["id"] == pid
    assert updated.json()["meta"]["versionId"] == "2"
    assert fhir.put(url, json={**body, "id": "someone-else"}).status_code == 400
    assert fhir.post("/Patient", json=body).status_code == 201  # now two match
    assert fhir.put(url, json=body).status_code == 412
    assert fhir.put("/Patient", json=body).status_code == 400  # criteria are required


def test_conditional_delete_is_bounded(fhir: httpx.Client) -> None:
    system = f"urn:del-{uuid.uuid4().hex[:8]}"
    for n in range(3):
        body = {"resourceType": "Patient", "identifier": [{"system": system, "value": str(n)}],
                "gender": "unknown"}  # fmt: skip
        assert fhir.post("/Patient", json=body).status_code == 201
    assert fhir.delete(f"/Patient?identifier={system}|0").status_code == 204
    assert fhir.get("/Patient", params={"identifier": f"{system}|0"}).json().get("entry") is None
    everyone = f"/Patient?identifier={system}|1,{system}|2"
    assert fhir.delete(everyone).status_code == 412  # two match, one allowed: nothing deleted
    assert len(fhir.get(everyone.replace("/Patient?", "/Patient?_count=10&")).json()["entry"]) == 2
    assert fhir.delete(everyone + "&_count=2").status_code == 204
    assert fhir.delete(everyone).status_code == 204  # no match: nothing to do
    assert fhir.delete(everyone + "&_count=0").status_code == 400


def test_conditional_writes_stay_in_the_callers_compartment(live_service: object,
                                                           fhir: httpx.Client) -> None:  # fmt: skip
    mine, theirs = _patient(fhir), _patient(fhir)
    theirs_identifier = theirs["identifier"][0]["value"]  # type: ignore[index]
    with client_for(live_service, "patient/Patient.cruds", patient=str(mine["id"])) as own:  # type: ignore[arg-type]
        url = f"/Patient?identifier=urn:rest-more|{theirs_identifier}"
        # The other patient's record is invisible: no match, and a new Patient is not this
        # token's own, so the create is refused; the other record is untouched.
        assert own.put(url, json={"resourceType": "Patient", "gender": "male"}).status_code == 403
        assert own.delete(url).status_code == 204
    assert fhir.get(f"/Patient/{theirs['id']}").json()["meta"]["versionId"] == "1"


PATCH_JSON = {"Content-Type": "application/json-patch+json"}


def test_json_patch_is_applied_validated_and_versioned(fhir: httpx.Client) -> None:
    patient = _patient(fhir)
    path = f"/Patient/{patient['id']}"
    ops = [{"op": "test", "path": "/gender", "value": "female"},
           {"op": "replace", "path": "/gender", "value": "other"},
           {"op": "add", "path": "/name", "value": [{"family": "Patched"}]},
           {"op": "add", "path": "/name/0/given", "value": ["Ana"]},
           {"op": "copy", "from": "/name/0", "path": "/name/-"},
           {"op": "remove", "path": "/name/1"}]  # fmt: skip
    response = fhir.patch(
        path, content=orjson.dumps(ops), headers={**PATCH_JSON, "If-Match": 'W/"1"'}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["gender"], body["name"], body["meta"]["versionId"]) == (
        "other", [{"family": "Patched", "given": ["Ana"]}], "2")  # fmt: skip
    stale = fhir.patch(
        path, content=orjson.dumps(ops[1:2]), headers={**PATCH_JSON, "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412


@pytest.mark.parametrize(("ops", "status"), [
    ([{"op": "test", "path": "/gender", "value": "male"}], 422),        # test fails: no write
    ([{"op": "replace", "path": "/gender", "value": "robot"}], 422),   # result invalid
    ([{"op": "remove", "path": "/nope"}], 400),
    ([{"op": "add", "path": "/name/7", "value": {}}], 400),
    ([{"op": "replace", "path": "/resourceType", "value": "Observation"}], 422),
    ([{"op": "move", "from": "/name", "path": "/name/0"}], 400),
    ([{"op": "explode", "path": "/gender"}], 400),
    ({"op": "remove", "path": "/gender"}, 400),
    ([{"op": "add", "path": "", "value": {}}], 400),
])  # fmt: skip
def test_bad_patches_change_nothing(fhir: httpx.Client, ops: object, status: int) -> None:
    patient = _patient(fhir)
    path = f"/Patient/{patient['id']}"
    response = fhir.patch(path, content=orjson.dumps(ops), headers=PATCH_JSON)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert fhir.get(path).json()["meta"]["versionId"] == "1"


def test_patch_needs_read_and_update_and_json_patch(
    live_service: object, fhir: httpx.Client
) -> None:
    patient = _patient(fhir)
    ops = orjson.dumps([{"op": "replace", "path": "/gender", "value": "male"}])
    with client_for(live_service, "user/Patient.u") as writer:  # type: ignore[arg-type]
        assert (
            writer.patch(f"/Patient/{patient['id']}", content=ops, headers=PATCH_JSON).status_code
            == 403
        )
    # An empty FHIRPath Patch (tests/fhir/test_fhir_patch_fhirpath.py has the rest).
    fhirpath_patch = fhir.patch(f"/Patient/{patient['id']}", json={"resourceType": "Parameters"})
    assert fhirpath_patch.status_code == 400


def test_patch_with_a_huge_array_index_is_a_400(fhir: httpx.Client) -> None:
    patient = _patient(fhir)
    ops = [{"op": "remove", "path": "/identifier/" + "9" * 5000}]
    response = fhir.patch(
        f"/Patient/{patient['id']}", content=orjson.dumps(ops), headers=PATCH_JSON
    )
    assert response.status_code == 400
