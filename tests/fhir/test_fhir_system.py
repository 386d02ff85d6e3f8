"""System-level interactions (issue 15, item 5): GET /_history, GET /?_type= and $meta; history
Bundles carry total."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import psycopg
from tests.conftest import Database, Service
from tests.fhir.conftest import FHIR_JSON, client_for, token

from healthstack.fhir import ops, system_api


def _pair(fhir: httpx.Client) -> tuple[str, str]:
    """A Patient (updated once) and an Observation about it: three versions."""
    body = {"resourceType": "Patient", "gender": "female",
            "identifier": [{"system": "urn:system", "value": uuid.uuid4().hex}]}  # fmt: skip
    pid = fhir.post("/Patient", json=body).json()["id"]
    assert fhir.put(f"/Patient/{pid}", json={**body, "id": pid, "gender": "other"}).is_success
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
           "subject": {"reference": f"Patient/{pid}"}}  # fmt: skip
    oid = fhir.post("/Observation", json=obs).json()["id"]
    return pid, oid


def _all_pages(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    bundles = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        bundles.append(response.json())
        url = next((link["url"] for link in bundles[-1]["link"] if link["relation"] == "next"), "")
    return bundles


def _keys(bundles: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["resource"]["resourceType"], e["resource"]["id"], e["resource"]["meta"]["versionId"])
            for b in bundles for e in b.get("entry", []) if "resource" in e]  # fmt: skip


def test_system_history_pages_newest_first_with_a_total(fhir: httpx.Client) -> None:
    pid, oid = _pair(fhir)
    first = fhir.get("/_history", params={"_count": 2})
    assert first.status_code == 200, first.text
    bundle = first.json()
    assert bundle["type"] == "history"
    assert bundle["total"] >= 3
    assert _keys([bundle]) == [("Observation", oid, "1"), ("Patient", pid, "2")]
    assert bundle["entry"][1]["request"] == {"method": "PUT", "url": f"Patient/{pid}"}
    pages = _all_pages(fhir, next(li["url"] for li in bundle["link"] if li["relation"] == "next"))
    later = _keys(pages)
    assert later[0] == ("Patient", pid, "1")
    assert len(later) + 2 == bundle["total"]  # every version once, nothing skipped
    since = fhir.get("/_history", params={"_since": "2999-01-01"}).json()
    assert (since["total"], "entry" in since) == (0, False)
    assert fhir.get("/_history", params={"name": "x"}).status_code == 400
    assert fhir.get("/_history", params={"_cursor": "forged"}).status_code == 400


def test_system_history_shows_only_what_the_token_may_see(
    live_service: Service, fhir: httpx.Client, module_database: Database
) -> None:
    mine, my_obs = _pair(fhir)
    theirs, _ = _pair(fhir)
    with client_for(live_service, "patient/*.rs", patient=mine) as own:
        seen = _keys(_all_pages(own, "/_history?_count=100"))
    assert {(t, i) for t, i, _ in seen} == {("Patient", mine), ("Observation", my_obs)}
    with client_for(live_service, "user/Patient.rs") as patients_only:
        kinds = {t for t, _, _ in _keys([patients_only.get("/_history").json()])}
    assert kinds == {"Patient"}
    assert theirs  # (theirs is in the unrestricted history, as the first test shows)
    with client_for(live_service, "user/Patient.c") as writer:
        denied = writer.get("/_history")
    assert (denied.status_code, denied.json()["resourceType"]) == (403, "OperationOutcome")
    with psycopg.connect(module_database.owner_url) as conn:
        rows = conn.execute("SELECT outcome, resource_type, content::jsonb->'query'->'_type' "
                            "FROM audit_log WHERE interaction = 'history-system' "
                            "ORDER BY recorded_at DESC, seq DESC LIMIT 2").fetchall()  # fmt: skip
    assert rows == [("denied", None, None), ("success", None, ["Patient"])]


def test_instance_and_type_history_carry_total(fhir: httpx.Client) -> None:
    pid, _ = _pair(fhir)
    instance = fhir.get(f"/Patient/{pid}/_history", params={"_count": 1}).json()
    assert (instance["total"], len(instance["entry"])) == (2, 1)
    typed = fhir.get("/Patient/_history", params={"_count": 1}).json()
    assert typed["total"] >= 2
    assert len(typed["entry"]) == 1


def test_search_across_types_pages_each_type(live_service: Service, fhir: httpx.Client) -> None:
    pid, oid = _pair(fhir)
    ids = f"{pid},{oid}"
    response = fhir.get("/", params={"_type": "Patient,Observation", "_id": ids,
                                     "_total": "accurate"})  # fmt: skip
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["total"] == 2
    assert sorted(_keys([bundle])) == [("Observation", oid, "1"), ("Patient", pid, "2")]
    paged = _all_pages(fhir, f"/?_type=Patient&_type=Observation&_id={ids}&_count=1")
    assert sorted(_keys(paged)) == sorted(_keys([bundle]))
    # The base without its trailing slash, as HAPI and Medplum clients send it.
    bare = httpx.get(f"{live_service.base_url}/api/fhir", params={"_type": "Patient", "_id": pid},
                     headers={"Authorization": f"Bearer {token()}", "Accept": FHIR_JSON})  # fmt: skip
    assert _keys([bare.json()]) == [("Patient", pid, "2")]


def test_search_across_types_is_authorized_per_type(
    live_service: Service, fhir: httpx.Client, module_database: Database
) -> None:
    mine, _ = _pair(fhir)
    theirs, their_obs = _pair(fhir)
    with client_for(live_service, "user/Patient.rs") as patients_only:
        denied = patients_only.get("/", params={"_type": "Patient,Observation", "_id": theirs})
        assert denied.status_code == 403
        assert patients_only.get("/", params={"_type": "Patient", "_id": theirs}).is_success
    with client_for(live_service, "patient/*.rs", patient=mine) as own:
        found = own.get("/", params={"_type": "Patient,Observation",
                                     "_id": f"{theirs},{their_obs},{mine}"}).json()  # fmt: skip
    assert [i for _, i, _ in _keys([found])] == [mine]
    with psycopg.connect(module_database.owner_url) as conn:
        rows = conn.execute("SELECT interaction, outcome, resource_type FROM audit_log "
                            "ORDER BY recorded_at DESC, seq DESC LIMIT 2").fetchall()  # fmt: skip
    assert sorted(rows) == [("search", "success", "Observation"), ("search", "success", "Patient")]


def test_bad_searches_across_types_are_4xx(fhir: httpx.Client) -> None:
    many = ",".join(sorted(ops.TYPES)[: system_api.MAX_TYPES + 1])
    for params, status in (({}, 400), ({"_type": "NoSuchType"}, 400), ({"_type": many}, 422),
                           ({"_type": "Patient", "_cursor": "x"}, 400),
                           ({"_cursor": "forged"}, 400),
                           ({"_type": "Patient", "nosuchparam": "1"}, 400)):  # fmt: skip
        response = fhir.get("/", params=params)
        assert response.status_code == status, (params, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"


def test_meta_answers_the_current_meta_as_parameters(
    live_service: Service, fhir: httpx.Client
) -> None:
    mine, _ = _pair(fhir)
    theirs, _ = _pair(fhir)
    for method in ("GET", "POST"):
        response = fhir.request(method, f"/Patient/{mine}/$meta")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["resourceType"] == "Parameters"
        assert body["parameter"][0]["name"] == "return"
        assert body["parameter"][0]["valueMeta"]["versionId"] == "2"
        assert "gender" not in orjson.dumps(body).decode()
    with client_for(live_service, "patient/*.rs", patient=mine) as own:
        assert own.get(f"/Patient/{theirs}/$meta").status_code == 404
        assert own.get(f"/Patient/{mine}/$meta").status_code == 200
    with client_for(live_service, "user/Observation.rs") as other_type:
        assert other_type.get(f"/Patient/{mine}/$meta").status_code == 403
    assert fhir.delete(f"/Patient/{theirs}").status_code == 204
    assert fhir.get(f"/Patient/{theirs}/$meta").status_code == 410


def test_the_capability_statement_advertises_what_these_tests_exercise(fhir: httpx.Client) -> None:
    rest = fhir.get("/metadata").json()["rest"][0]
    assert {"search-system", "history-system"} <= {i["code"] for i in rest["interaction"]}
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert "patch" in {i["code"] for i in patient["interaction"]}
    assert {"validate", "meta"} <= {o["name"] for o in patient["operation"]}
    assert (patient["conditionalUpdate"], patient["conditionalDelete"]) == (True, "multiple")


def test_a_moved_resource_shows_each_patient_only_the_versions_that_were_theirs(
    fhir: httpx.Client, live_service: Service
) -> None:
    """An Observation filed under A, corrected to B: B's history must not hold A's version."""
    a, b = (fhir.post("/Patient", json={"resourceType": "Patient"}).json()["id"] for _ in "ab")
    obs = {"resourceType": "Observation", "status": "final",
           "code": {"text": "moved"}, "subject": {"reference": f"Patient/{a}"}}  # fmt: skip
    oid = fhir.post("/Observation", json=obs).json()["id"]
    moved = {**obs, "id": oid, "subject": {"reference": f"Patient/{b}"}}
    assert fhir.put(f"/Observation/{oid}", json=moved).status_code == 200
    scopes = "patient/Observation.rs"
    with client_for(live_service, scopes, patient=b) as patient_b:
        for url in (f"/Observation/{oid}/_history", "/Observation/_history", "/_history"):
            entries = patient_b.get(url, params={"_count": 100}).json().get("entry", [])
            mine = [e["resource"] for e in entries if e["resource"]["id"] == oid]
            assert [r["meta"]["versionId"] for r in mine] == ["2"], url
            assert all(r["subject"]["reference"] == f"Patient/{b}" for r in mine), url
    assert len(fhir.get(f"/Observation/{oid}/_history").json()["entry"]) == 2  # unconfined: both
